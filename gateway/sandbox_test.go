package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mailguard/mailguard/sandbox/capetest"
	"github.com/mailguard/mailguard/smtp"
	"github.com/mailguard/mailguard/store"
)

func sandboxFixture(t *testing.T, emu *capetest.Server, extra string) *fixture {
	t.Helper()
	f := newFixture(t, fmt.Sprintf(`
sandbox "cape" {
  url          = %q
  hold_timeout = "30m"
  search_first = false
  requests_per_minute = 6000
}
%s`, emu.URL, extra))
	return f
}

// scriptMessage is a message with a JScript attachment (a candidate of the
// default submit classes).
func scriptMessage(body string) string {
	return "From: Mallory <m@partner.example>\r\nTo: bob@corp.example\r\nSubject: invoice\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n" +
		"Content-Type: text/plain\r\n\r\nsee attached\r\n--b\r\n" +
		"Content-Type: application/octet-stream; name=invoice.js\r\nContent-Disposition: attachment; filename=invoice.js\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n" + base64.StdEncoding.EncodeToString([]byte(body)) + "\r\n--b--\r\n"
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func (f *fixture) send(t *testing.T, id, msg string) {
	t.Helper()
	e := &smtp.Envelope{ID: id, MailFrom: "m@partner.example", Rcpts: []string{"bob@corp.example"},
		Direction: smtp.Inbound, Received: f.clk.now(),
		Conn: smtp.ConnInfo{RemoteIP: netip.MustParseAddr("198.51.100.7"), HELO: "mail.partner.example"}}
	if err := f.g.Data(context.Background(), e, strings.NewReader(msg)); err != nil {
		t.Fatalf("Data(%s): %v", id, err)
	}
}

// settle runs scheduler cycles (advancing the clock past the poll backoff)
// and re-decides held messages until nothing changes.
func (f *fixture) settle(t *testing.T, rounds int) {
	t.Helper()
	ctx := context.Background()
	st := f.g.stage.Load()
	for range rounds {
		if _, err := st.sched.Cycle(ctx); err != nil {
			t.Logf("cycle: %v", err)
		}
		f.clk.add(90 * time.Second)
		for drained := false; !drained; {
			select {
			case id := <-f.g.recheck:
				f.g.redecide(ctx, id)
			default:
				drained = true
			}
		}
	}
}

func TestSandboxHoldThenVerdict(t *testing.T) {
	evil := "var s = new ActiveXObject('WScript.Shell'); s.Run('calc'); // evil"
	benign := "var total = 1 + 2; // benign"
	emu, err := capetest.Start(capetest.Config{Verdicts: map[string]capetest.Verdict{sha(evil): {Profile: "malicious"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	f := sandboxFixture(t, emu, "")
	f.send(t, "sbx1", scriptMessage(evil))
	f.send(t, "sbx2", scriptMessage(benign))
	f.send(t, "sbx3", scriptMessage(evil)) // same content again
	for _, id := range []string{"sbx1", "sbx2", "sbx3"} {
		if m := f.state(t, id); m.State != store.Held {
			t.Fatalf("%s: state %s, want held (%v)", id, m.State, m.Reasons)
		}
	}
	f.settle(t, 4)
	check := func(id string, want store.State, reason string) {
		t.Helper()
		m := f.state(t, id)
		if m.State != want || (reason != "" && !strings.Contains(strings.Join(m.Reasons, ","), reason)) {
			t.Errorf("%s: state %s reasons %v, want %s with %s", id, m.State, m.Reasons, want, reason)
		}
	}
	check("sbx1", store.Quarantined, "malware_sandbox")
	check("sbx3", store.Quarantined, "malware_sandbox")
	check("sbx2", store.Queued, "")
	if n := emu.Submissions(sha(evil)); n != 1 {
		t.Errorf("the same file was submitted %d times, want 1", n)
	}
	// A later message with known content is decided at once from the cache.
	f.send(t, "sbx4", scriptMessage(evil))
	check("sbx4", store.Quarantined, "malware_sandbox")
	if n := emu.TotalSubmissions(); n != 2 {
		t.Errorf("%d submissions in all, want 2", n)
	}
}

func TestSandboxTimeout(t *testing.T) {
	slow := "WScript.Echo('never judged')"
	emu, err := capetest.Start(capetest.Config{Verdicts: map[string]capetest.Verdict{sha(slow): {NeverFinish: true}}})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	for _, onTimeout := range []string{"quarantine", "tag"} {
		t.Run(onTimeout, func(t *testing.T) {
			f := newFixture(t, fmt.Sprintf(`sandbox "cape" {
  url          = %q
  hold_timeout = "10m"
  on_timeout   = %q
  search_first = false
  requests_per_minute = 6000
}`, emu.URL, onTimeout))
			f.send(t, "slow1", scriptMessage(slow))
			f.settle(t, 2)
			if m := f.state(t, "slow1"); m.State != store.Held {
				t.Fatalf("state %s before the deadline", m.State)
			}
			f.clk.add(10 * time.Minute)
			f.g.checkHeld(context.Background())
			m := f.state(t, "slow1")
			want := store.Quarantined
			if onTimeout == "tag" {
				want = store.Queued
			}
			if m.State != want || !strings.Contains(strings.Join(m.Reasons, ","), "sandbox_timeout") {
				t.Errorf("after the deadline: %s %v, want %s with sandbox_timeout", m.State, m.Reasons, want)
			}
		})
	}
}
