package auth

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/mailguard/mailguard/auth/dnstest"
)

// FuzzSPFRecord parses hostile records and evaluates them against a small
// zone: no panic, a valid status, and the processing limits hold.
func FuzzSPFRecord(f *testing.F) {
	for _, s := range []string{
		"v=spf1 -all", "v=spf1 a mx ptr exists:%{i}.x.example include:b.example redirect=c.example",
		"v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 ~all exp=exp.example",
		"v=spf1 a:%{l1r-}.%{d2}/24//64 -all", "v=spf1 include:a.example include:a.example",
		"v=spf1 redirect=%{d}", "v=spf1 exists:%{p}.%{h}.%{v}.%{o}.%{s} -all", "v=spf1 foo=%{ir}.bar",
		"v=spf1 a:%{d99999999999999999}.x", "v=spf1 %", "v=spf1 a//", "v=spf1 ip4:1.2.3.4/", "V=SPF1 +ALL",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, txt string) {
		if rec, err := parseSPFRecord(txt); err == nil && rec == nil {
			t.Fatal("nil record without error")
		}
		// The record is published at every name the evaluation can reach.
		r := &dnstest.Resolver{
			TXT: map[string][]string{"example.com.": {txt}, "a.example.": {txt}, "b.example.": {txt},
				"c.example.": {txt}, "exp.example.": {"%{c} %{r} %{t} %{p}"}},
			A:   map[string][]string{"example.com.": {"192.0.2.1"}, "mx.example.com.": {"192.0.2.2"}},
			MX:  map[string][]*net.MX{"example.com.": {{Host: "mx.example.com.", Pref: 10}}},
			PTR: map[string][]string{"192.0.2.1": {"example.com."}},
		}
		for _, ip := range []string{"192.0.2.1", "2001:db8::1"} {
			res, _ := CheckSPF(context.Background(), r, SPFInput{IP: netip.MustParseAddr(ip), HELO: "h.example", MailFrom: "u@example.com"})
			switch res.Status {
			case SPFNone, SPFNeutral, SPFPass, SPFFail, SPFSoftfail, SPFTemperror, SPFPermerror:
			default:
				t.Fatalf("invalid status %q", res.Status)
			}
			if res.Lookups > spfMaxLookups+1 || res.VoidLookups > spfMaxVoidLookups+1 {
				t.Fatalf("limits exceeded: %d lookups, %d void", res.Lookups, res.VoidLookups)
			}
			if q := len(r.Queries()); q > 400 {
				t.Fatalf("%d DNS queries for one check", q)
			}
			r.ResetQueries()
		}
	})
}

// FuzzDMARCRecord parses hostile records: no panic, and an accepted record
// holds only valid values.
func FuzzDMARCRecord(f *testing.F) {
	for _, s := range []string{
		"v=DMARC1; p=reject", "v=DMARC1;p=quarantine;sp=none;adkim=s;aspf=r;pct=50;rua=mailto:a@b.example!10m",
		"v=DMARC1; p=bogus; rua=mailto:x@y", "v = DMARC1 ; p = none ;;;", "v=DMARC1; pct=007; p=none", "v=DMARC1;",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, txt string) {
		rec, err := ParseDMARCRecord(txt)
		if err != nil {
			return
		}
		switch rec.Policy {
		case PolicyNone, PolicyQuarantine, PolicyReject:
		default:
			t.Fatalf("invalid p %q", rec.Policy)
		}
		switch rec.SubdomainPolicy {
		case "", PolicyNone, PolicyQuarantine, PolicyReject:
		default:
			t.Fatalf("invalid sp %q", rec.SubdomainPolicy)
		}
		if rec.Percent < 0 || rec.Percent > 100 {
			t.Fatalf("pct %d", rec.Percent)
		}
		if rec.DKIMAlignment != AlignRelaxed && rec.DKIMAlignment != AlignStrict ||
			rec.SPFAlignment != AlignRelaxed && rec.SPFAlignment != AlignStrict {
			t.Fatalf("alignment %q %q", rec.DKIMAlignment, rec.SPFAlignment)
		}
	})
}

// FuzzStripAuthResults: no panic; idempotent; nothing removed means
// nothing changed; only whole fields disappear.
func FuzzStripAuthResults(f *testing.F) {
	for _, s := range []string{
		"Authentication-Results: mx.corp.example; spf=pass\r\nFrom: a@b\r\n\r\nbody",
		"Authentication-Results:\r\n (c (d)) \"mx.corp.example\" 1;\r\n\tdkim=pass\r\nX: y\r\n",
		"A: b\nAuthentication-Results: other; x=y\n\nAuthentication-Results: mx.corp.example\n",
		" lead\r\nAuthentication-Results : MX.CORP.EXAMPLE.", "Authentication-Results: (unterminated mx.corp.example",
	} {
		f.Add([]byte(s), "mx.corp.example")
	}
	f.Fuzz(func(t *testing.T, in []byte, id string) {
		out, removed := StripAuthResults(in, id)
		if removed < 0 || len(out) > len(in) {
			t.Fatalf("removed %d, %d bytes out of %d", removed, len(out), len(in))
		}
		if removed == 0 && !bytes.Equal(out, in) {
			t.Fatalf("nothing removed but output differs")
		}
		if removed > 0 && len(out) == len(in) {
			t.Fatalf("removed %d fields without removing bytes", removed)
		}
		again, n := StripAuthResults(out, id)
		if n != 0 || !bytes.Equal(again, out) {
			t.Fatalf("not idempotent: second pass removed %d", n)
		}
		if !isSubsequence(out, in) {
			t.Fatalf("output is not the input with parts removed")
		}
	})
}

// FuzzVerify runs whole hostile messages through Verify: no panic, and
// every DKIM result has a valid status.
func FuzzVerify(f *testing.F) {
	f.Add([]byte(testMessage("Alice <alice@example.com>")))
	f.Add([]byte("DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=rsa; h=from; bh=; b=\r\nFrom: a@example.com\r\n\r\n"))
	f.Add([]byte("From: a@x, b@y\r\nFrom: =?utf-8?q?=E2=80=AE?= <c@z>\nDKIM-Signature: l=5; d=x\n\nbody"))
	f.Add([]byte("DKIM-Signature"))
	r := &dnstest.Resolver{TXT: map[string][]string{"_dmarc.example.com.": {"v=DMARC1; p=reject"}}}
	f.Fuzz(func(t *testing.T, msg []byte) {
		v := &Verifier{Resolver: r, MaxHeaderBytes: 64 << 10}
		res := v.Verify(context.Background(), Input{ClientIP: netip.MustParseAddr("192.0.2.1"), HELO: "h.example",
			MailFrom: "a@example.com", Message: bytes.NewReader(msg)})
		for _, d := range res.DKIM {
			switch d.Status {
			case DKIMPass, DKIMFail, DKIMPolicy, DKIMNeutral, DKIMTemperror, DKIMPermerror:
			default:
				t.Fatalf("invalid dkim status %q", d.Status)
			}
		}
		_ = res.Findings()
		if h := res.Header("mx.corp.example"); strings.Count(h, "\n") != strings.Count(h, "\r\n") {
			t.Fatalf("bare LF in header %q", h)
		}
		r.ResetQueries()
	})
}

// isSubsequence reports whether a can be obtained from b by deleting bytes.
func isSubsequence(a, b []byte) bool {
	i := 0
	for j := 0; i < len(a) && j < len(b); j++ {
		if a[i] == b[j] {
			i++
		}
	}
	return i == len(a)
}
