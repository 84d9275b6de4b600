package tests

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/mailguard/mailguard/auth/dnstest"
)

// authZone publishes SPF, DKIM and DMARC for two sender domains: one with
// p=reject whose mail comes only from 192.0.2.0/24, one signed with DKIM.
func authZone(pub ed25519.PublicKey) string {
	return fmt.Sprintf(`
$TTL 300
bank.example.                 TXT "v=spf1 ip4:192.0.2.0/24 -all"
_dmarc.bank.example.          TXT "v=DMARC1; p=reject; rua=mailto:dmarc@bank.example"
partner.example.              TXT "v=spf1 ip4:198.51.100.0/24 -all"
_dmarc.partner.example.       TXT "v=DMARC1; p=quarantine"
sel._domainkey.partner.example. TXT "v=DKIM1; k=ed25519; p=%s"
`, base64.StdEncoding.EncodeToString(pub))
}

func dkimSign(t *testing.T, key ed25519.PrivateKey, msg string) string {
	t.Helper()
	var b bytes.Buffer
	err := dkim.Sign(&b, strings.NewReader(strings.ReplaceAll(msg, "\n", "\r\n")), &dkim.SignOptions{
		Domain: "partner.example", Selector: "sel", Signer: key,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestAuthEndToEnd: with a real DNS server on loopback, a spoofed p=reject
// message gets 550 at SMTP time and never reaches the downstream; a valid
// DKIM-signed message arrives with Authentication-Results dkim=pass; a
// forged Authentication-Results claiming our name is gone.
func TestAuthEndToEnd(t *testing.T) {
	need(t, "swaks", "smtp-sink")
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	dns := dnstest.StartServer(t, authZone(pub))
	down := startSink(t, "")
	g := startGateway(t, policyVars{Inbound: down.addr, DNS: dns.Addr()})
	dir := t.TempDir()

	// 1. Spoofed bank.example from a client outside its SPF, no DKIM: the
	// client (XCLIENT from the trusted loopback) is 203.0.113.66.
	spoof := writeMessage(t, dir, "spoof.eml", "From: Bank <security@bank.example>\nTo: bob@corp.example\nSubject: verify your account\n\nclick\n")
	out, ok := swaks(t, g.addr, "--from", "security@bank.example", "--to", "bob@corp.example", "--data", spoof,
		"--xclient-addr", "203.0.113.66", "--xclient-helo", "mail.attacker.example")
	if ok || !strings.Contains(out, "550 5.7.1") || !strings.Contains(out, "DMARC") {
		t.Errorf("spoofed p=reject mail not refused with 550 at SMTP time:\n%s", out)
	}

	// 2. A DKIM-signed message from partner.example, relayed by a forwarder
	// (SPF fails, DKIM aligns: DMARC passes), with a forged header.
	signed := dkimSign(t, priv, "From: Alice <alice@partner.example>\nTo: bob@corp.example\nSubject: quarterly report\n"+
		"Message-ID: <q1@partner.example>\nDate: Mon, 23 Nov 2026 10:00:00 +0900\n\nnumbers attached\n")
	forged := "Authentication-Results: mx.corp.example; dkim=pass header.d=bank.example; dmarc=pass\r\n"
	file := writeMessage(t, dir, "signed.eml", forged+signed)
	out = send(t, g.addr, "alice@partner.example", "bob@corp.example", file,
		"--xclient-addr", "203.0.113.77", "--xclient-helo", "forwarder.example")
	id := queuedID(out)
	msgs := waitFiles(t, down.messages, 1, 30*time.Second)
	got := msgs[0]
	if strings.Contains(got, "security@bank.example") || strings.Contains(got, "verify your account") {
		t.Errorf("the spoofed message reached the downstream")
	}
	if !strings.Contains(got, "X-Mailguard-Id: "+id) {
		t.Fatalf("delivered message is not %s:\n%s", id, got)
	}
	ar := headerField(got, "Authentication-Results")
	for _, want := range []string{"mx.corp.example;", "dkim=pass", "header.d=partner.example", "dmarc=pass", "spf=fail"} {
		if !strings.Contains(ar, want) {
			t.Errorf("Authentication-Results lacks %q: %q", want, ar)
		}
	}
	if strings.Contains(got, "header.d=bank.example") {
		t.Errorf("forged Authentication-Results delivered:\n%s", got)
	}
	if !strings.Contains(got, "X-Mailguard-Reasons: spf_fail, forged_auth_results") {
		t.Errorf("reasons header: %q", headerField(got, "X-Mailguard-Reasons"))
	}
}

// headerField returns the (unfolded) first header field with that name.
func headerField(msg, name string) string {
	lines := strings.Split(strings.ReplaceAll(msg, "\r\n", "\n"), "\n")
	for i, l := range lines {
		if strings.HasPrefix(strings.ToLower(l), strings.ToLower(name)+":") {
			v := l
			for j := i + 1; j < len(lines) && (strings.HasPrefix(lines[j], " ") || strings.HasPrefix(lines[j], "\t")); j++ {
				v += " " + strings.TrimSpace(lines[j])
			}
			return v
		}
		if l == "" {
			break
		}
	}
	return ""
}
