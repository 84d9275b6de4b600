package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailguard/mailguard/auth/dnstest"
	"github.com/mailguard/mailguard/policy"
	"github.com/mailguard/mailguard/smtp"
	"github.com/mailguard/mailguard/store"
	"github.com/mailguard/mailguard/store/sqlite"
)

// clock is a settable clock for tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

const testPolicy = `
gateway {
  hostname          = "mx.corp.example"
  listen            = ["127.0.0.1:0"]
  local_domains     = ["corp.example"]
  internal_networks = ["10.0.0.0/8"]
}
rule "force-hold" {
  when   = matches("HOLD ME", subject)
  action = "hold"
}
rule "force-reject" {
  when   = matches("REJECT ME", subject)
  action = "reject"
  reason = "blocked_sender"
}
rule "force-tempfail" {
  when   = matches("TEMPFAIL ME", subject)
  action = "tempfail"
}
rule "force-quarantine" {
  when   = matches("QUARANTINE ME", subject)
  action = "quarantine"
}
rule "force-tag" {
  when           = matches("TAG ME", subject)
  action         = "tag"
  subject_prefix = "[外部] "
}
`

type fixture struct {
	g   *Gateway
	st  *sqlite.DB
	clk *clock
	dir string
	dns *dnstest.Resolver
}

func newFixture(t *testing.T, extra string) *fixture {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.hcl")
	os.WriteFile(path, []byte(testPolicy+extra), 0o644)
	p, diags := policy.Load(path)
	if diags.HasErrors() {
		t.Fatal(policy.FormatDiagnostics(diags))
	}
	clk := &clock{t: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)}
	st, err := sqlite.Open(filepath.Join(dir, "var"), sqlite.Options{Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r := &dnstest.Resolver{}
	g, err := New(Options{Policy: p, Store: st, Sandbox: st.Sandbox(), Resolver: r, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return &fixture{g: g, st: st, clk: clk, dir: dir, dns: r}
}

var idSeq int

func (f *fixture) data(t *testing.T, subject string, extraHeader string) (string, error) {
	t.Helper()
	idSeq++
	id := fmt.Sprintf("t%05d", idSeq)
	msg := "From: Alice <alice@partner.example>\r\nTo: bob@corp.example\r\nSubject: " + subject + "\r\n" +
		extraHeader + "Message-ID: <" + id + "@partner.example>\r\n\r\nhello\r\n"
	e := &smtp.Envelope{ID: id, MailFrom: "alice@partner.example", Rcpts: []string{"bob@corp.example"},
		Direction: smtp.Inbound, Received: f.clk.now(),
		Conn: smtp.ConnInfo{RemoteIP: netip.MustParseAddr("198.51.100.7"), HELO: "mail.partner.example"}}
	return id, f.g.Data(context.Background(), e, strings.NewReader(msg))
}

func (f *fixture) state(t *testing.T, id string) *store.Message {
	t.Helper()
	m, err := f.st.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestDataActions: every action a rule can force leads to its reply and
// its persisted state.
func TestDataActions(t *testing.T) {
	f := newFixture(t, "")
	cases := []struct {
		subject   string
		state     store.State
		replyCode int // 0 = 250
	}{
		{"plain", store.Queued, 0},
		{"TAG ME please", store.Queued, 0},
		{"HOLD ME please", store.Held, 0},
		{"QUARANTINE ME please", store.Quarantined, 0},
		{"REJECT ME please", store.Rejected, 550},
		{"TEMPFAIL ME please", store.Rejected, 451},
	}
	for _, c := range cases {
		id, err := f.data(t, c.subject, "")
		var rej *smtp.Reject
		switch {
		case c.replyCode == 0 && err != nil:
			t.Errorf("%s: reply %v, want 250", c.subject, err)
		case c.replyCode != 0 && (!errors.As(err, &rej) || rej.Code != c.replyCode):
			t.Errorf("%s: reply %v, want %d", c.subject, err, c.replyCode)
		}
		m := f.state(t, id)
		if m.State != c.state {
			t.Errorf("%s: state %s, want %s", c.subject, m.State, c.state)
		}
		if len(m.Decision) == 0 || m.Action == "" {
			t.Errorf("%s: decision not persisted: %+v", c.subject, m)
		}
	}
	n, _ := f.st.PendingDeliveries(context.Background())
	if n != 2 {
		t.Errorf("%d deliveries queued, want 2 (deliver and tag)", n)
	}
}

// TestRejectTextNamesReasons: the 550 names the reasons, never internals.
func TestRejectText(t *testing.T) {
	f := newFixture(t, "")
	_, err := f.data(t, "REJECT ME", "")
	if err == nil || !strings.Contains(err.Error(), "blocked_sender") {
		t.Errorf("reject reply = %v", err)
	}
}

// TestHoldDeadline: a held message whose deadline passes while the policy
// still asks to hold is quarantined (fail closed), with sandbox_timeout.
func TestHoldDeadline(t *testing.T) {
	f := newFixture(t, "")
	id, err := f.data(t, "HOLD ME", "")
	if err != nil {
		t.Fatal(err)
	}
	m := f.state(t, id)
	if m.HoldUntil.IsZero() || !m.HoldUntil.After(f.clk.now()) {
		t.Fatalf("hold deadline %v", m.HoldUntil)
	}
	ctx := context.Background()
	f.g.checkHeld(ctx)
	if m := f.state(t, id); m.State != store.Held {
		t.Fatalf("released before the deadline: %s", m.State)
	}
	f.clk.add(policy.DefaultSandboxHold + time.Second)
	f.g.checkHeld(ctx)
	m = f.state(t, id)
	if m.State != store.Quarantined || !strings.Contains(strings.Join(m.Reasons, ","), "sandbox_timeout") {
		t.Errorf("after the deadline: state %s reasons %v", m.State, m.Reasons)
	}
}

// TestResumeInspectsReceived: a message received (durable) but not decided
// when the process died is inspected and decided by Resume.
func TestResumeInspectsReceived(t *testing.T) {
	f := newFixture(t, "")
	m := &store.Message{ID: "crashed1", Direction: "inbound", ClientIP: "198.51.100.7", MailFrom: "a@partner.example",
		Rcpts: []string{"bob@corp.example"}}
	if _, err := f.st.Accept(context.Background(), m, strings.NewReader("Subject: QUARANTINE ME\r\n\r\nx\r\n")); err != nil {
		t.Fatal(err)
	}
	// Just received: a session (maybe of another node) may still be
	// inspecting it, so Resume leaves it…
	if err := f.g.Resume(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := f.state(t, "crashed1"); got.State != store.Received {
		t.Errorf("state after an early Resume = %s, want received", got.State)
	}
	// …until no session can still hold it.
	f.clk.add(f.g.staleAfter() + time.Second)
	if err := f.g.Resume(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := f.state(t, "crashed1"); got.State != store.Quarantined {
		t.Errorf("state after Resume = %s", got.State)
	}
}

// TestInspectionFailureTempfails: when inspection fails inside mailguard
// (here the spool file vanished) the decision is tempfail, the row is marked
// rejected so Resume does not deliver it too, and nothing is queued.
func TestInspectionFailureTempfails(t *testing.T) {
	f := newFixture(t, "")
	ctx := context.Background()
	m := &store.Message{ID: "gone1", Direction: "inbound", ClientIP: "198.51.100.7", Rcpts: []string{"bob@corp.example"}}
	// Large enough to live in a spool file (small ones are in the database).
	big := "Subject: x\r\n\r\n" + strings.Repeat(strings.Repeat("x", 76)+"\r\n", 3000)
	if _, err := f.st.Accept(ctx, m, strings.NewReader(big)); err != nil {
		t.Fatal(err)
	}
	os.Remove(f.st.SpoolPath("gone1"))
	err := f.g.process(ctx, m, InspectOptions{}, []store.State{store.Received})
	var rej *smtp.Reject
	if !errors.As(err, &rej) || rej.Code != 451 || strings.Contains(rej.Text, "spool") {
		t.Errorf("reply = %v, want a generic 451", err)
	}
	if got := f.state(t, "gone1"); got.State != store.Rejected || got.Action != "tempfail" {
		t.Errorf("state %s action %s", got.State, got.Action)
	}
	if n, _ := f.st.PendingDeliveries(ctx); n != 0 {
		t.Errorf("%d deliveries queued", n)
	}
}

// TestPrependHeaders: the delivered header fields are well formed.
func TestPrependHeaders(t *testing.T) {
	f := newFixture(t, "")
	id, _ := f.data(t, "TAG ME", "")
	m := f.state(t, id)
	h := string(m.Prepend)
	for _, want := range []string{"Received: from mail.partner.example ([198.51.100.7])\r\n\tby mx.corp.example (mailguard) with ESMTP id " + id,
		"\r\n\tfor <bob@corp.example>;", "X-Mailguard-Id: " + id + "\r\n", "X-Mailguard-Action: tag\r\n", "X-Mailguard-Reasons: clean\r\n"} {
		if !strings.Contains(h, want) {
			t.Errorf("prepend lacks %q:\n%s", want, h)
		}
	}
	if !strings.HasSuffix(h, "\r\n") || strings.Contains(strings.ReplaceAll(h, "\r\n", ""), "\n") {
		t.Errorf("prepend has bare LF: %q", h)
	}
}

func TestPrefixSubject(t *testing.T) {
	cases := []struct{ in, prefix, want string }{
		{"From: a\r\nSubject: hello\r\n\r\n", "[EXT] ", "From: a\r\nSubject: [EXT] hello\r\n\r\n"},
		{"subject:hello\r\nX: y\r\n\r\n", "[EXT] ", "subject:[EXT] hello\r\nX: y\r\n\r\n"},
		{"From: a\r\n\r\n", "[EXT] ", "From: a\r\nSubject: [EXT]\r\n\r\n"},
		{"Subject: =?UTF-8?B?5pel5pys?=\r\n\r\n", "[外部] ", "Subject: =?UTF-8?b?W+WklumDqF0g?= =?UTF-8?B?5pel5pys?=\r\n\r\n"},
	}
	for _, c := range cases {
		if got := string(prefixSubject([]byte(c.in), c.prefix)); got != c.want {
			t.Errorf("prefixSubject(%q, %q) = %q, want %q", c.in, c.prefix, got, c.want)
		}
	}
}

// TestRenderRewrites: at delivery, a forged Authentication-Results is gone
// and the subject prefix is in; everything else is byte for byte.
func TestRenderRewrites(t *testing.T) {
	f := newFixture(t, "")
	forged := "Authentication-Results: mx.corp.example; dkim=pass header.d=bank.example\r\n"
	id, err := f.data(t, "TAG ME", forged)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := f.st.Claim(context.Background(), "t", time.Minute, 10)
	if err != nil || len(ds) != 1 {
		t.Fatalf("claim: %v %v", ds, err)
	}
	rc, err := f.g.render(context.Background(), ds[0])
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	out := string(b)
	if strings.Contains(out, "dkim=pass header.d=bank.example") {
		t.Errorf("forged Authentication-Results delivered:\n%s", out)
	}
	if !strings.Contains(out, "Subject: =?UTF-8?b?W+WklumDqF0g?= TAG ME\r\n") {
		t.Errorf("subject prefix missing:\n%s", out)
	}
	if !strings.HasSuffix(out, "Message-ID: <"+id+"@partner.example>\r\n\r\nhello\r\n") {
		t.Errorf("body changed:\n%s", out)
	}
	m := f.state(t, id)
	if !strings.Contains(strings.Join(m.Reasons, ","), "forged_auth_results") {
		t.Errorf("reasons %v lack forged_auth_results", m.Reasons)
	}
}
