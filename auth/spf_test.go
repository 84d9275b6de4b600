package auth

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mailguard/mailguard/auth/dnstest"
)

func TestSPFInclude(t *testing.T) {
	r := &dnstest.Resolver{
		TXT: map[string][]string{
			"corp.example.":        {"v=spf1 include:_spf.mailer.example -all"},
			"_spf.mailer.example.": {"v=spf1 ip4:192.0.2.0/24 -all"},
		},
		Temporary: []string{"txt flaky.example."},
	}
	check := func(ip, from string, want SPFStatus) {
		t.Helper()
		got, err := CheckSPF(context.Background(), r, SPFInput{IP: netip.MustParseAddr(ip), MailFrom: from})
		if got.Status != want {
			t.Errorf("CheckSPF(%s, %s) = %s (err: %v), want %s", ip, from, got.Status, err, want)
		}
	}
	check("192.0.2.7", "a@corp.example", SPFPass)
	check("198.51.100.9", "a@corp.example", SPFFail)
	check("192.0.2.7", "a@flaky.example", SPFTemperror)
	check("192.0.2.7", "a@nothing.example", SPFNone)
}

// TestSPFMacroExamples checks the expansion examples of RFC 7208 §7.4.
func TestSPFMacroExamples(t *testing.T) {
	e := &spfEval{local: "strong-bad", senderDomain: "email.example.com", ip: netip.MustParseAddr("192.0.2.3")}
	check := func(e *spfEval, macro, want string) {
		t.Helper()
		ms, err := parseMacroString(macro, false)
		if err != nil {
			t.Fatalf("parse %q: %v", macro, err)
		}
		if got := ms.expand(e.values("email.example.com")); got != want {
			t.Errorf("%s = %q, want %q", macro, got, want)
		}
	}
	for macro, want := range map[string]string{
		"%{s}":                              "strong-bad@email.example.com",
		"%{o}":                              "email.example.com",
		"%{d}":                              "email.example.com",
		"%{d4}":                             "email.example.com",
		"%{d3}":                             "email.example.com",
		"%{d2}":                             "example.com",
		"%{d1}":                             "com",
		"%{dr}":                             "com.example.email",
		"%{d2r}":                            "example.email",
		"%{l}":                              "strong-bad",
		"%{l-}":                             "strong.bad",
		"%{lr}":                             "strong-bad",
		"%{lr-}":                            "bad.strong",
		"%{l1r-}":                           "strong",
		"%{ir}.%{v}._spf.%{d2}":             "3.2.0.192.in-addr._spf.example.com",
		"%{lr-}.lp._spf.%{d2}":              "bad.strong.lp._spf.example.com",
		"%{lr-}.lp.%{ir}.%{v}._spf.%{d2}":   "bad.strong.lp.3.2.0.192.in-addr._spf.example.com",
		"%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}":  "3.2.0.192.in-addr.strong.lp._spf.example.com",
		"%{d2}.trusted-domains.example.net": "example.com.trusted-domains.example.net",
		"%{S}":                              "strong-bad%40email.example.com",
		"%%%_%-":                            "% %20",
	} {
		check(e, macro, want)
	}
	e6 := &spfEval{local: "strong-bad", senderDomain: "email.example.com", ip: netip.MustParseAddr("2001:db8::cb01")}
	check(e6, "%{ir}.%{v}._spf.%{d2}", "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com")

	for _, bad := range []string{"%{d0}", "%{x}", "%{c}", "%{d", "%", "%a", "%{dr!}", "a b"} {
		if _, err := parseMacroString(bad, false); err == nil {
			t.Errorf("parseMacroString(%q) accepted", bad)
		}
	}
	if _, err := parseMacroString("%{c} %{r} %{t}", true); err != nil {
		t.Errorf("explanation letters rejected: %v", err)
	}
}

func TestSPFIdentities(t *testing.T) {
	r := &dnstest.Resolver{
		TXT: map[string][]string{
			"example.com.":      {"v=spf1 a:mail.example.com -all"},
			"mail.example.com.": {"v=spf1 a -all"},
			"bücher.example.":   {"v=spf1 +all"},
		},
		A: map[string][]string{"mail.example.com.": {"192.0.2.10"}},
	}
	ip := netip.MustParseAddr("192.0.2.10")
	got, _ := CheckSPF(context.Background(), r, SPFInput{IP: ip, HELO: "mail.example.com"})
	if got.Status != SPFPass || got.Identity != IdentityHELO || got.Sender != "postmaster@mail.example.com" || got.Domain != "mail.example.com" {
		t.Errorf("null sender: %+v", got)
	}
	got, _ = CheckSPF(context.Background(), r, SPFInput{IP: netip.MustParseAddr("::ffff:192.0.2.10"), MailFrom: "a@example.com"})
	if got.Status != SPFPass || got.Identity != IdentityMailFrom || got.Mechanism != "a:mail.example.com" {
		t.Errorf("IPv4-mapped client: %+v", got)
	}
	for _, tc := range []struct {
		in   SPFInput
		want SPFStatus
	}{
		{SPFInput{HELO: "mail.example.com"}, SPFNone},                                // no IP
		{SPFInput{IP: ip, HELO: "localhost"}, SPFNone},                               // single label
		{SPFInput{IP: ip, HELO: "[192.0.2.10]"}, SPFNone},                            // address literal
		{SPFInput{IP: ip, MailFrom: "nodomain"}, SPFNone},                            // no @
		{SPFInput{IP: ip, MailFrom: "@a.example,@b.example:a@example.com"}, SPFPass}, // source route
		{SPFInput{IP: ip, MailFrom: "a@xn--bcher-kva.example"}, SPFNone},
		{SPFInput{IP: ip, MailFrom: "a@Bücher.example"}, SPFNone}, // looked up as its A-label
	} {
		got, _ := CheckSPF(context.Background(), r, tc.in)
		if got.Status != tc.want {
			t.Errorf("CheckSPF(%+v) = %s (%s), want %s", tc.in, got.Status, got.Reason, tc.want)
		}
	}
	r.ResetQueries()
	CheckSPF(context.Background(), r, SPFInput{IP: ip, MailFrom: "a@Bücher.example"})
	if q := r.Queries(); len(q) == 0 || q[0] != "txt xn--bcher-kva.example." {
		t.Errorf("IDN queries = %v", q)
	}
}

func TestSPFLimitsAndErrors(t *testing.T) {
	many := "v=spf1"
	for i := 0; i < 11; i++ {
		many += " a:h" + string(rune('a'+i)) + ".example"
	}
	r := &dnstest.Resolver{
		TXT: map[string][]string{
			"many.example.":    {many + " -all"},
			"void.example.":    {"v=spf1 a:n1.example a:n2.example a:n3.example -all"},
			"twice.example.":   {"v=spf1 -all", "v=spf1 +all"},
			"syntax.example.":  {"v=spf1 ip4:192.0.2.1 -all bogus"},
			"badinc.example.":  {"v=spf1 include:%{l}.example -all"},
			"exp.example.":     {"v=spf1 -all exp=why.%{d}"},
			"why.exp.example.": {"%{i} is not %{d} (%{r})"},
		},
	}
	ip := netip.MustParseAddr("192.0.2.1")
	check := func(from string, want SPFStatus, wantErr error) SPFResult {
		t.Helper()
		got, err := CheckSPF(context.Background(), r, SPFInput{IP: ip, MailFrom: "a@" + from, Receiver: "mx.corp.example"})
		if got.Status != want || !errors.Is(err, wantErr) {
			t.Errorf("%s: %s (%v), want %s (%v)", from, got.Status, err, want, wantErr)
		}
		return got
	}
	check("void.example", SPFPermerror, ErrTooManyVoidLookups)
	check("twice.example", SPFPermerror, ErrMultipleSPF)
	// a@badinc.example: %{l} is "a", a fine target without a record.
	check("badinc.example", SPFPermerror, ErrNoSPFTarget)
	// A 64-octet local-part makes the include target unqueryable.
	long, err := CheckSPF(context.Background(), r, SPFInput{IP: ip, MailFrom: strings.Repeat("x", 64) + "@badinc.example"})
	if long.Status != SPFPermerror || !errors.Is(err, ErrNoSPFTarget) || !strings.Contains(long.Reason, "not a valid domain") {
		t.Errorf("invalid include target: %+v (%v)", long, err)
	}
	got := check("syntax.example", SPFPermerror, ErrSPFSyntax)
	if !strings.Contains(got.Reason, "bogus") {
		t.Errorf("reason %q does not name the bad term", got.Reason)
	}
	got = check("exp.example", SPFFail, nil)
	if got.Explanation != "192.0.2.1 is not exp.example (mx.corp.example)" {
		t.Errorf("explanation %q", got.Explanation)
	}
	// 11 void a: terms: the void limit trips first; with A records for all
	// of them the lookup limit does.
	r.A = map[string][]string{}
	for i := 0; i < 11; i++ {
		r.A["h"+string(rune('a'+i))+".example."] = []string{"198.51.100.1"}
	}
	got = check("many.example", SPFPermerror, ErrTooManyLookups)
	if got.Lookups != 11 {
		t.Errorf("lookups = %d, want 11", got.Lookups)
	}
}

// slowResolver blocks every lookup until the context ends.
type slowResolver struct{ dnstest.Resolver }

func (s *slowResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	<-ctx.Done()
	return nil, &net.DNSError{Err: "i/o timeout", Name: name, IsTimeout: true, IsTemporary: true}
}

func TestSPFTimeout(t *testing.T) {
	v := &Verifier{Resolver: &slowResolver{}, SPFTimeout: 50 * time.Millisecond}
	start := time.Now()
	// SPFTimeout bounds SPF; the caller's context bounds the rest (DMARC).
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	res := v.Verify(ctx, Input{ClientIP: netip.MustParseAddr("192.0.2.1"), HELO: "mail.example.com",
		MailFrom: "a@example.com", Message: strings.NewReader("From: a@example.com\r\n\r\n")})
	if res.SPF.Status != SPFTemperror || res.HELO.Status != SPFTemperror || res.DMARC.Status != DMARCTemperror {
		t.Errorf("SPF %s, HELO %s, DMARC %s, want temperror", res.SPF.Status, res.HELO.Status, res.DMARC.Status)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Verify took %v with a 50ms SPF timeout", took)
	}
}
