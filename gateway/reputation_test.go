package gateway

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/mailguard/mailguard/smtp"
	"github.com/mailguard/mailguard/store"
)

const repPolicy = `
reputation {
  dnsbl        = ["bl.test"]
  uribl        = ["uribl.test"]
  reject_score = 2
  reject_at    = "rcpt"
  zone "heavy.test" {
    weight = 2
    filter = "127.0.0.[2..11]"
  }
}
`

func TestReputation(t *testing.T) {
	f := newFixture(t, repPolicy)
	// 198.51.100.7 is on bl.test only (score 1: tag, not reject);
	// 203.0.113.9 is on both lists (score 3: refused at RCPT).
	f.dns.A = map[string][]string{
		"7.100.51.198.bl.test.":          {"127.0.0.2"},
		"9.113.0.203.bl.test.":           {"127.0.0.2"},
		"9.113.0.203.heavy.test.":        {"127.0.0.4"},
		"7.100.51.198.heavy.test.":       {"127.0.0.1"}, // filtered out: not in [2..11]
		"evil-phish.example.uribl.test.": {"127.0.0.2"},
	}
	ctx := context.Background()
	e := &smtp.Envelope{ID: "r1", Conn: smtp.ConnInfo{RemoteIP: netip.MustParseAddr("203.0.113.9")}}
	err := f.g.Rcpt(ctx, e, "bob@corp.example")
	var rej *smtp.Reject
	if !errors.As(err, &rej) || rej.Code != 550 || !strings.Contains(rej.Text, "heavy.test") {
		t.Errorf("listed client at RCPT: %v", err)
	}
	e.Conn.RemoteIP = netip.MustParseAddr("198.51.100.7")
	if err := f.g.Rcpt(ctx, e, "bob@corp.example"); err != nil {
		t.Errorf("lightly listed client refused: %v", err)
	}
	e.Conn.Internal = true
	e.Conn.RemoteIP = netip.MustParseAddr("203.0.113.9")
	if err := f.g.Rcpt(ctx, e, "bob@corp.example"); err != nil {
		t.Errorf("internal client looked up: %v", err)
	}

	// A message whose link is on the URI list is quarantined.
	id, err := f.data(t, "your invoice", "Content-Type: text/html\r\n")
	_ = id
	if err != nil {
		t.Fatal(err)
	}
	html := "From: a@partner.example\r\nTo: bob@corp.example\r\nSubject: pay\r\nContent-Type: text/html\r\n\r\n" +
		`<p>Pay here: <a href="https://login.evil-phish.example/x">https://www.bank.example/</a></p>` + "\r\n"
	env := &smtp.Envelope{ID: "r2", MailFrom: "a@partner.example", Rcpts: []string{"bob@corp.example"}, Direction: smtp.Inbound,
		Received: f.clk.now(), Conn: smtp.ConnInfo{RemoteIP: netip.MustParseAddr("198.51.100.7"), HELO: "x"}}
	if err := f.g.Data(ctx, env, strings.NewReader(html)); err != nil {
		t.Fatal(err)
	}
	m := f.state(t, "r2")
	rs := strings.Join(m.Reasons, ",")
	if m.State != store.Quarantined || !strings.Contains(rs, "url_blocklisted") || !strings.Contains(rs, "ip_blocklisted") {
		t.Errorf("url-listed message: %s %v", m.State, m.Reasons)
	}
	if !strings.Contains(string(m.Decision), `"mismatches":1`) {
		t.Errorf("anchor text mismatch not counted: %s", m.Decision)
	}
}
