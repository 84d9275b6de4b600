package auth

import (
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/authres"
)

func TestHeaderFormat(t *testing.T) {
	res := Results{
		SPF:  SPFResult{Status: SPFPass, Identity: IdentityMailFrom, Sender: "alice@example.com", Domain: "example.com", Mechanism: "ip4:192.0.2.0/24"},
		HELO: SPFResult{Status: SPFPass, Identity: IdentityHELO, Sender: "postmaster@mail.example.com", Domain: "mail.example.com"},
		DKIM: []DKIMResult{
			{Status: DKIMPass, Domain: "example.com", Selector: "s1", Algorithm: "rsa-sha256", Signature: "abcdEFGH1234"},
			{Status: DKIMFail, Domain: "list.example", Selector: "k", Algorithm: "ed25519-sha256", Reason: "body hash did not verify"},
		},
		DMARC: DMARCResult{Status: DMARCPass, HeaderFrom: "example.com", Policy: PolicyNone},
	}
	h := res.Header("mx.corp.example")
	if !strings.HasPrefix(h, "Authentication-Results: mx.corp.example;\r\n\t") || !strings.HasSuffix(h, "\r\n") {
		t.Fatalf("header framing:\n%s", h)
	}
	if strings.Contains(strings.ReplaceAll(h, "\r\n", ""), "\n") || strings.Contains(strings.ReplaceAll(h, "\r\n", ""), "\r") {
		t.Fatalf("bare CR or LF in %q", h)
	}
	// An independent parser must read it back.
	_, value, _ := strings.Cut(strings.TrimSuffix(h, "\r\n"), ":")
	id, parsed, err := authres.Parse(strings.ReplaceAll(value, "\r\n\t", " "))
	if err != nil {
		t.Fatalf("authres.Parse: %v\n%s", err, h)
	}
	if id != "mx.corp.example" || len(parsed) != 5 {
		t.Fatalf("parsed id %q, %d results: %#v", id, len(parsed), parsed)
	}
	spf, ok := parsed[0].(*authres.SPFResult)
	if !ok || spf.Value != authres.ResultPass || spf.From != "alice@example.com" {
		t.Errorf("spf result %#v", parsed[0])
	}
	if helo, ok := parsed[1].(*authres.SPFResult); !ok || helo.Helo != "mail.example.com" {
		t.Errorf("helo result %#v", parsed[1])
	}
	if d, ok := parsed[2].(*authres.DKIMResult); !ok || d.Value != authres.ResultPass || d.Domain != "example.com" {
		t.Errorf("dkim result %#v", parsed[2])
	}
	if d, ok := parsed[3].(*authres.DKIMResult); !ok || d.Value != authres.ResultFail {
		t.Errorf("second dkim result %#v", parsed[3])
	}
	if d, ok := parsed[4].(*authres.DMARCResult); !ok || d.Value != authres.ResultPass || d.From != "example.com" {
		t.Errorf("dmarc result %#v", parsed[4])
	}
	for _, want := range []string{"header.s=s1", "header.a=rsa-sha256", "header.b=abcdEFGH", "(body hash did not verify)"} {
		if !strings.Contains(h, want) {
			t.Errorf("header lacks %q:\n%s", want, h)
		}
	}
}

func TestHeaderFormatHostileValues(t *testing.T) {
	res := Results{
		SPF: SPFResult{Status: SPFFail, Identity: IdentityMailFrom,
			Sender: "a\"b\\c;d@x.example\r\nX-Injected: yes", Reason: "bad (thing)\r\nX-Injected: 2"},
		HELO:  SPFResult{Status: SPFNone, Identity: IdentityHELO},
		DMARC: DMARCResult{Status: DMARCFail, HeaderFrom: "x.example\nBcc: victim@corp.example", RecordPolicy: PolicyReject, Policy: PolicyReject},
	}
	h := res.Header("mx.corp.example")
	for _, line := range strings.Split(strings.TrimSuffix(h, "\r\n"), "\r\n")[1:] {
		if !strings.HasPrefix(line, "\t") {
			t.Errorf("line %q does not continue the field (header injection)", line)
		}
	}
	if strings.Contains(h, "\nX-Injected") || strings.Contains(h, "\nBcc") {
		t.Errorf("injection survived:\n%s", h)
	}
	_, value, _ := strings.Cut(strings.TrimSuffix(h, "\r\n"), ":")
	if _, parsed, err := authres.Parse(strings.ReplaceAll(value, "\r\n\t", " ")); err != nil || len(parsed) != 3 {
		t.Errorf("hostile values broke the syntax: %v, %d results\n%s", err, len(parsed), h)
	}
	// A sender address crafted to smuggle a result past naive parsers.
	smuggle := Results{SPF: SPFResult{Status: SPFFail, Identity: IdentityMailFrom, Sender: `"x;dkim=pass"@evil.example`}}
	_, value, _ = strings.Cut(strings.TrimSuffix(smuggle.Header("mx"), "\r\n"), ":")
	_, parsed, err := authres.Parse(strings.ReplaceAll(value, "\r\n\t", " "))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	for _, p := range parsed {
		if d, ok := p.(*authres.DKIMResult); ok && d.Value == authres.ResultPass {
			t.Errorf("smuggled dkim=pass in %q", value)
		}
	}
	if !strings.Contains(h, "dmarc=fail (p=reject dis=REJECT)") {
		t.Errorf("dmarc disposition missing:\n%s", h)
	}
	long := Results{SPF: SPFResult{Status: SPFPass, Identity: IdentityMailFrom, Sender: strings.Repeat("a", 5000) + "@x.example"}}
	if h := long.Header("mx"); len(h) > 1000 {
		t.Errorf("unbounded header of %d bytes", len(h))
	}
}

func TestStripAuthResults(t *testing.T) {
	const id = "mx.corp.example"
	const keep1 = "Received: from a by b;\r\n\tMon, 2 Mar 2026 10:00:00 +0000\r\n"
	const keep2 = "From: alice@example.com\r\nSubject: hi\r\n"
	const body = "\r\nbody line\r\nAuthentication-Results: mx.corp.example; spf=pass\r\n"
	check := func(name, fields string, wantRemoved int, wantKept string) {
		t.Helper()
		in := keep1 + fields + keep2 + body
		out, removed := StripAuthResults([]byte(in), id)
		want := keep1 + wantKept + keep2 + body
		if removed != wantRemoved || string(out) != want {
			t.Errorf("%s: removed %d, want %d; output:\n%q\nwant:\n%q", name, removed, wantRemoved, out, want)
		}
	}
	ours := "Authentication-Results: mx.corp.example; spf=pass smtp.mailfrom=a@b.example\r\n"
	other := "Authentication-Results: mx.upstream.example; spf=fail\r\n"
	check("none", "", 0, "")
	check("ours", ours, 1, "")
	check("other", other, 0, other)
	check("both", other+ours+other, 1, other+other)
	check("case", "AUTHENTICATION-RESULTS: MX.Corp.Example; dkim=pass\r\n", 1, "")
	check("folded", "Authentication-Results:\r\n  mx.corp.example;\r\n\tspf=pass;\r\n\tdkim=pass header.d=x\r\n", 1, "")
	check("comment before id", "Authentication-Results: (trust me) mx.corp.example; dmarc=pass\r\n", 1, "")
	check("nested comment", "Authentication-Results: (a (b \\) c) d)\r\n (e) mx.corp.example; dmarc=pass\r\n", 1, "")
	check("quoted id", "Authentication-Results: \"mx.corp.example\"; spf=pass\r\n", 1, "")
	check("version", "Authentication-Results: mx.corp.example 1; spf=pass\r\n", 1, "")
	check("trailing dot", "Authentication-Results: mx.corp.example.; spf=pass\r\n", 1, "")
	check("space before colon", "Authentication-Results : mx.corp.example; spf=pass\r\n", 1, "")
	check("no space", "Authentication-Results:mx.corp.example;spf=pass\r\n", 1, "")
	check("id only", "Authentication-Results: mx.corp.example\r\n", 1, "")
	longer := "Authentication-Results: mx.corp.example.evil; spf=pass\r\n"
	check("longer id", longer, 0, longer)
	shorter := "Authentication-Results: corp.example; spf=pass\r\n"
	check("shorter id", shorter, 0, shorter)
	inComment := "Authentication-Results: other.example (mx.corp.example); spf=pass\r\n"
	check("our id only in a comment", inComment, 0, inComment)
	arc := "ARC-Authentication-Results: i=1; mx.corp.example; spf=pass\r\n"
	check("ARC field", arc, 0, arc)
	x := "X-Authentication-Results: mx.corp.example; spf=pass\r\n"
	check("other field name", x, 0, x)
}

func TestStripAuthResultsEdges(t *testing.T) {
	check := func(name, in, want string, wantRemoved int) {
		t.Helper()
		out, removed := StripAuthResults([]byte(in), "mx.corp.example")
		if string(out) != want || removed != wantRemoved {
			t.Errorf("%s: got %q (%d), want %q (%d)", name, out, removed, want, wantRemoved)
		}
	}
	check("bare LF", "A: 1\nAuthentication-Results: mx.corp.example;\n spf=pass\nB: 2\n\nbody\n", "A: 1\nB: 2\n\nbody\n", 1)
	check("last field without newline", "A: 1\r\nAuthentication-Results: mx.corp.example; spf=pass", "A: 1\r\n", 1)
	check("empty", "", "", 0)
	check("starts with blank line", "\r\nAuthentication-Results: mx.corp.example\r\n", "\r\nAuthentication-Results: mx.corp.example\r\n", 0)
	check("leading continuation", " junk\r\nAuthentication-Results: mx.corp.example\r\n", " junk\r\n", 1)
	check("no colon", "garbage line\r\nAuthentication-Results mx.corp.example\r\n", "garbage line\r\nAuthentication-Results mx.corp.example\r\n", 0)
	if out, n := StripAuthResults([]byte("Authentication-Results: ; spf=pass\r\n"), ""); n != 0 || len(out) == 0 {
		t.Errorf("empty authserv-id removed fields: %q %d", out, n)
	}
}
