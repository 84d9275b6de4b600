package gateway

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailguard/mailguard/auth/dnstest"
	"github.com/mailguard/mailguard/policy"
	"github.com/mailguard/mailguard/reason"
	"github.com/mailguard/mailguard/smtp"
	"github.com/mailguard/mailguard/store"
	"github.com/mailguard/mailguard/store/sqlite"
	"github.com/mailguard/mailguard/thread"
)

// convFixture is a gateway with the SQLite conversation memory.
func convFixture(t *testing.T, extra string) *fixture {
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
	g, err := New(Options{Policy: p, Store: st, Sandbox: st.Sandbox(), Thread: st.Thread(), Resolver: &dnstest.Resolver{}, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return &fixture{g: g, st: st, clk: clk, dir: dir}
}

func zipP(t *testing.T, password, name, content string) []byte {
	t.Helper()
	if _, err := exec.LookPath("zip"); err != nil {
		if os.Getenv("MAILGUARD_E2E_STRICT") == "1" {
			t.Fatal("zip is not installed")
		}
		t.Skip("zip is not installed")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644)
	out := filepath.Join(dir, "a.zip")
	if b, err := exec.Command("zip", "-q", "-j", "-P", password, out, filepath.Join(dir, name)).CombinedOutput(); err != nil {
		t.Fatalf("zip: %v %s", err, b)
	}
	b, _ := os.ReadFile(out)
	return b
}

// deliver hands one message to Data as an SMTP session would.
func (f *fixture) deliver(t *testing.T, from, to, subject, body string, zip []byte) string {
	t.Helper()
	idSeq++
	id := fmt.Sprintf("c%05d", idSeq)
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@x.example>\r\nMIME-Version: 1.0\r\n", from, to, subject, id)
	if zip == nil {
		fmt.Fprintf(&b, "Content-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n", body)
	} else {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n"+
			"--B\r\nContent-Type: application/zip; name=a.zip\r\nContent-Transfer-Encoding: base64\r\n\r\n%s\r\n--B--\r\n",
			body, base64.StdEncoding.EncodeToString(zip))
	}
	e := &smtp.Envelope{ID: id, MailFrom: from, Rcpts: []string{to}, Direction: smtp.Inbound, Received: f.clk.now(),
		Conn: smtp.ConnInfo{RemoteIP: netip.MustParseAddr("198.51.100.7"), HELO: "mail.x.example"}}
	if strings.HasSuffix(from, "@corp.example") {
		e.Direction = smtp.Outbound
		e.Conn.RemoteIP = netip.MustParseAddr("10.1.2.3")
	}
	if err := f.g.Data(context.Background(), e, &b); err != nil {
		t.Fatalf("data %s: %v", id, err)
	}
	return id
}

func decision(t *testing.T, m *store.Message) *Report {
	t.Helper()
	var r Report
	if err := json.Unmarshal(m.Decision, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

func hasReason(r *Report, tag reason.Tag) bool {
	for _, x := range r.Reasons {
		if x == tag {
			return true
		}
	}
	return false
}

// TestThreadPasswordLinking: an archive waits for its password; the
// password mail asks for its re-decision (Recheck), which opens it with
// the thread password; without a password the window ends in
// encrypted_unscannable.
func TestThreadPasswordLinking(t *testing.T) {
	f := convFixture(t, "")
	// Our user wrote first: an established correspondent.
	f.deliver(t, "bob@corp.example", "sato@vendor.example", "request", "please send it", nil)
	arch := f.deliver(t, "sato@vendor.example", "bob@corp.example", "file", "password follows", zipP(t, "Pw-1234x", "a.txt", "hello"))
	m := f.state(t, arch)
	if m.State != store.Held || !m.HoldUntil.Equal(f.clk.now().Add(policy.DefaultPasswordWindow)) {
		t.Fatalf("archive: %s until %s", m.State, m.HoldUntil)
	}
	pw := f.deliver(t, "sato@vendor.example", "bob@corp.example", "パスワード", "パスワード：Pw-1234x", nil)
	if s := f.state(t, pw).State; s != store.Held {
		t.Errorf("password mail while its archive is held: %s, want held", s)
	}
	wantRecheck := func(want string) {
		t.Helper()
		select {
		case id := <-f.g.recheck:
			if id != want {
				t.Fatalf("recheck %s, want %s", id, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no re-decision of %s asked for", want)
		}
	}
	wantRecheck(arch)
	f.g.redecide(context.Background(), arch)
	m = f.state(t, arch)
	r := decision(t, m)
	if m.State != store.Queued || !hasReason(r, reason.PasswordFoundThread) || r.Files[0].PasswordSource != "thread" {
		t.Errorf("after the password: %s %v %+v", m.State, r.Reasons, r.Files)
	}
	// The archive was decided (clean): its password mail goes too.
	wantRecheck(pw)
	f.g.redecide(context.Background(), pw)
	if s := f.state(t, pw).State; s != store.Queued {
		t.Errorf("password mail after its clean archive: %s", s)
	}

	// No password: the window ends, encrypted_unscannable quarantines.
	lone := f.deliver(t, "sato@vendor.example", "ann@corp.example", "other file", "password follows", zipP(t, "Other-99z", "b.txt", "x"))
	if s := f.state(t, lone).State; s != store.Held {
		t.Fatalf("lone archive: %s", s)
	}
	f.clk.add(policy.DefaultPasswordWindow + time.Second)
	f.g.checkHeld(context.Background())
	m = f.state(t, lone)
	if r := decision(t, m); m.State != store.Quarantined || !hasReason(r, reason.EncryptedUnscannable) {
		t.Errorf("after the window: %s %v", m.State, r.Reasons)
	}
}

// TestThreadOfflineReadsOnly: scan (Offline) reads the memory but records
// nothing; signals that need no memory (VIP names) still work.
func TestThreadOfflineReadsOnly(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.hcl")
	os.WriteFile(path, []byte(testPolicy+"\nlists { vip_names = [\"Taro Yamada\"] }\n"), 0o644)
	p, diags := policy.Load(path)
	if diags.HasErrors() {
		t.Fatal(policy.FormatDiagnostics(diags))
	}
	mem := thread.NewMemory()
	g, err := New(Options{Policy: p, Thread: mem, Resolver: &dnstest.Resolver{}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	msg := "From: \"YAMADA, Taro\" <ceo.yamada@gmail.com>\r\nTo: bob@corp.example\r\nSubject: urgent\r\nMessage-ID: <v@x>\r\n\r\nplease call me\r\n"
	env := Envelope{ID: "scan", Direction: "inbound", MailFrom: "ceo.yamada@gmail.com", Rcpts: []string{"bob@corp.example"}, Received: time.Now()}
	rep, err := g.Inspect(context.Background(), env, strings.NewReader(msg), int64(len(msg)), InspectOptions{Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rep.Close()
	if !hasReason(rep, reason.DisplayNameImpersonation) || rep.Action != policy.Quarantine {
		t.Errorf("VIP: %s %v", rep.Action, rep.Reasons)
	}
	if !rep.facts.Thread.FirstContact {
		t.Error("first contact not seen")
	}
	h, _ := mem.Lookup(context.Background(), thread.Query{Sender: "ceo.yamada@gmail.com", Internal: []string{"bob@corp.example"}, Exclude: "scan"})
	if h.Self != nil || len(h.Pairs) != 0 {
		t.Errorf("offline inspection recorded: %+v", h)
	}
}

// TestThreadPasswordLinkingOffice: a password-protected workbook (written
// by LibreOffice) waits for its password mail like an archive does, and
// opens with the thread's password.
func TestThreadPasswordLinkingOffice(t *testing.T) {
	f := convFixture(t, "")
	xlsx, err := os.ReadFile("../attach/testdata/office/lo-standard.xlsx")
	if err != nil {
		t.Fatal(err)
	}
	f.deliver(t, "bob@corp.example", "sato@vendor.example", "request", "please send the estimate", nil)
	doc := f.deliver(t, "sato@vendor.example", "bob@corp.example", "見積書", "パスワードは別途お送りします。", xlsx)
	if m := f.state(t, doc); m.State != store.Held {
		t.Fatalf("locked workbook: %s, want held for its password", m.State)
	}
	f.deliver(t, "sato@vendor.example", "bob@corp.example", "パスワード", "パスワード：Xy7#kQ2p", nil)
	select {
	case id := <-f.g.recheck:
		if id != doc {
			t.Fatalf("recheck %s, want %s", id, doc)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no re-decision asked for")
	}
	f.g.redecide(context.Background(), doc)
	m := f.state(t, doc)
	r := decision(t, m)
	if m.State != store.Queued || !hasReason(r, reason.PasswordFoundThread) || !r.Files[0].Decrypted || r.Files[0].PasswordSource != "thread" {
		t.Errorf("after the password: %s %v %+v", m.State, r.Reasons, r.Files)
	}
}
