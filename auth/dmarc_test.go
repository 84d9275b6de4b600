package auth

import (
	"bufio"
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mailguard/mailguard/auth/dnstest"
	"github.com/mailguard/mailguard/reason"
)

func TestParseDMARCRecord(t *testing.T) {
	check := func(txt string, want *DMARCRecord) {
		t.Helper()
		got, err := ParseDMARCRecord(txt)
		if want == nil {
			if err == nil {
				t.Errorf("ParseDMARCRecord(%q) = %+v, want error", txt, got)
			}
			return
		}
		if err != nil {
			t.Errorf("ParseDMARCRecord(%q): %v", txt, err)
			return
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ParseDMARCRecord(%q) (-want +got):\n%s", txt, diff)
		}
	}
	rec := func(p, sp DMARCPolicy, adkim, aspf Alignment, pct int, rua ...string) *DMARCRecord {
		return &DMARCRecord{Policy: p, SubdomainPolicy: sp, DKIMAlignment: adkim, SPFAlignment: aspf,
			Percent: pct, AggregateURIs: rua}
	}
	check("v=DMARC1; p=reject", rec(PolicyReject, "", AlignRelaxed, AlignRelaxed, 100))
	check("v=DMARC1;p=quarantine;sp=none;adkim=s;aspf=s;pct=25",
		rec(PolicyQuarantine, PolicyNone, AlignStrict, AlignStrict, 25))
	check("v = DMARC1 ; p = Reject ; ", rec(PolicyReject, "", AlignRelaxed, AlignRelaxed, 100))
	check("v=DMARC1; p=none; rua=mailto:d@example.com!10m, bogus", rec(PolicyNone, "", AlignRelaxed, AlignRelaxed, 100, "mailto:d@example.com"))
	// Invalid values of optional tags fall back to defaults (§6.3).
	check("v=DMARC1; p=reject; adkim=x; pct=101; fo=zz; junk", rec(PolicyReject, "", AlignRelaxed, AlignRelaxed, 100))
	check("v=DMARC1; p=reject; pct=-5", rec(PolicyReject, "", AlignRelaxed, AlignRelaxed, 100))
	check("v=DMARC1; p=reject; p=none", rec(PolicyReject, "", AlignRelaxed, AlignRelaxed, 100))
	// No valid p=: p=none if there is a valid rua, else no record (§6.6.3).
	check("v=DMARC1; p=block; rua=mailto:d@example.com", rec(PolicyNone, "", AlignRelaxed, AlignRelaxed, 100, "mailto:d@example.com"))
	check("v=DMARC1; p=reject; sp=bogus; rua=mailto:d@example.com", rec(PolicyNone, "", AlignRelaxed, AlignRelaxed, 100, "mailto:d@example.com"))
	check("v=DMARC1; p=block", nil)
	check("v=DMARC1", nil)
	check("v=DMARC2; p=reject", nil)
	check("p=reject; v=DMARC1", nil)
	check(" v=DMARC1; p=reject", nil)
	check("v=spf1 -all", nil)
}

func headerOf(t testing.TB, raw string) *messageHeader {
	t.Helper()
	h, err := readHeader(bufio.NewReader(strings.NewReader(raw)), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestDMARCAlignmentMatrix(t *testing.T) {
	for _, tc := range []struct {
		from, id string
		mode     string // "r" or "s"
		aligned  bool
	}{
		{"example.com", "example.com", "r", true},
		{"example.com", "example.com", "s", true},
		{"example.com", "EXAMPLE.COM.", "s", true},
		{"example.com", "mail.example.com", "r", true},
		{"example.com", "mail.example.com", "s", false},
		{"news.example.com", "example.com", "r", true},
		{"news.example.com", "example.com", "s", false},
		{"news.example.com", "mail.example.com", "r", true},
		{"news.example.com", "news.example.com", "s", true},
		{"example.com", "other.example", "r", false},
		{"example.com", "example.com.evil.example", "r", false},
		{"example.com", "evilexample.com", "r", false},
		{"a.example.co.uk", "b.example.co.uk", "r", true},
		{"a.example.co.uk", "example.co.uk", "s", false},
		{"example.co.uk", "other.co.uk", "r", false},
		// Private suffixes separate owners (see OrgDomain).
		{"alice.github.io", "bob.github.io", "r", false},
		{"www.alice.github.io", "alice.github.io", "r", true},
	} {
		for _, via := range []string{"spf", "dkim"} {
			name := tc.from + "/" + tc.id + "/" + tc.mode + "/" + via
			t.Run(name, func(t *testing.T) {
				org := OrgDomain(tc.from)
				r := &dnstest.Resolver{TXT: map[string][]string{
					"_dmarc." + org: {"v=DMARC1; p=reject; adkim=" + tc.mode + "; aspf=" + tc.mode},
				}}
				in := dmarcInputs{spf: SPFResult{Status: SPFFail, Domain: "unrelated.example"}}
				if via == "spf" {
					in.spf = SPFResult{Status: SPFPass, Domain: tc.id}
				} else {
					in.dkim = []DKIMResult{{Status: DKIMFail, Domain: tc.from}, {Status: DKIMPass, Domain: tc.id}}
				}
				got := evaluateDMARC(context.Background(), r, headerOf(t, "From: x@"+tc.from+"\r\n\r\n"), in)
				want := DMARCFail
				if tc.aligned {
					want = DMARCPass
				}
				if got.Status != want {
					t.Fatalf("dmarc = %s (%s), want %s", got.Status, got.Reason, want)
				}
				if via == "spf" && got.SPFAligned != tc.aligned || via == "dkim" && got.DKIMAligned != tc.aligned {
					t.Errorf("aligned flags %+v", got)
				}
				if !tc.aligned && got.Policy != PolicyReject {
					t.Errorf("policy = %s, want reject", got.Policy)
				}
			})
		}
	}
}

func TestDMARCPolicy(t *testing.T) {
	r := &dnstest.Resolver{
		TXT: map[string][]string{
			"_dmarc.example.com.":     {"v=DMARC1; p=reject; sp=quarantine"},
			"_dmarc.own.example.com.": {"v=DMARC1; p=none"},
			"_dmarc.pct.example.":     {"v=DMARC1; p=reject; pct=30"},
			"_dmarc.pct0.example.":    {"v=DMARC1; p=quarantine; pct=0"},
			"_dmarc.twice.example.":   {"v=DMARC1; p=reject", "v=DMARC1; p=none"},
			"_dmarc.mixed.example.":   {"some other text", "v=DMARC1; p=quarantine"},
			"_dmarc.nop.example.":     {"v=DMARC1; p=whatever"},
		},
		Temporary: []string{"txt _dmarc.flaky.example.", "txt _dmarc.flakyorg.example."},
	}
	failing := dmarcInputs{
		spf:  SPFResult{Status: SPFFail, Domain: "attacker.example"},
		dkim: []DKIMResult{{Status: DKIMPass, Domain: "attacker.example"}},
	}
	check := func(from string, in dmarcInputs, status DMARCStatus, policy DMARCPolicy) DMARCResult {
		t.Helper()
		got := evaluateDMARC(context.Background(), r, headerOf(t, "From: "+from+"\r\n\r\n"), in)
		if got.Status != status || got.Policy != policy {
			t.Errorf("From %s: dmarc=%s policy=%s (%s), want %s %s", from, got.Status, got.Policy, got.Reason, status, policy)
		}
		return got
	}
	check("a@example.com", failing, DMARCFail, PolicyReject)
	got := check("a@news.example.com", failing, DMARCFail, PolicyQuarantine) // sp= via org fallback
	if got.RecordDomain != "example.com" || got.OrgDomain != "example.com" {
		t.Errorf("org fallback: %+v", got)
	}
	got = check("a@own.example.com", failing, DMARCFail, PolicyNone) // own record: p applies
	if got.RecordDomain != "own.example.com" {
		t.Errorf("own record: %+v", got)
	}
	check("a@deep.sub.own.example.com", failing, DMARCFail, PolicyQuarantine) // fallback skips own.example.com, sp= applies
	check("a@nodmarc.example", failing, DMARCNone, PolicyNone)
	check("a@twice.example", failing, DMARCNone, PolicyNone) // §6.6.3: several records, no DMARC
	check("a@mixed.example", failing, DMARCFail, PolicyQuarantine)
	check("a@nop.example", failing, DMARCNone, PolicyNone)
	check("a@flaky.example", failing, DMARCTemperror, PolicyNone)
	check("a@sub.flakyorg.example", failing, DMARCTemperror, PolicyNone)

	// DKIM-only pass with SPF fail is a pass (forwarders, lists).
	forwarded := dmarcInputs{spf: SPFResult{Status: SPFFail, Domain: "forwarder.example"},
		dkim: []DKIMResult{{Status: DKIMPass, Domain: "example.com"}}}
	got = check("a@example.com", forwarded, DMARCPass, PolicyNone)
	if !got.DKIMAligned || got.SPFAligned || got.DKIMDomain != "example.com" {
		t.Errorf("forwarded: %+v", got)
	}
	// SPF-only pass.
	check("a@example.com", dmarcInputs{spf: SPFResult{Status: SPFPass, Domain: "bounce.example.com"}}, DMARCPass, PolicyNone)
	// A softfail or a DKIM policy/neutral result is no pass.
	check("a@example.com", dmarcInputs{spf: SPFResult{Status: SPFSoftfail, Domain: "example.com"},
		dkim: []DKIMResult{{Status: DKIMPolicy, Domain: "example.com"}, {Status: DKIMNeutral, Domain: "example.com"}}},
		DMARCFail, PolicyReject)
	// An aligned identifier with a temporary error: temperror, not fail.
	check("a@example.com", dmarcInputs{spf: SPFResult{Status: SPFFail, Domain: "x.example"},
		dkim: []DKIMResult{{Status: DKIMTemperror, Domain: "example.com"}}}, DMARCTemperror, PolicyNone)
	check("a@example.com", dmarcInputs{spf: SPFResult{Status: SPFTemperror, Domain: "example.com"}}, DMARCTemperror, PolicyNone)
	// ...but an unaligned temperror does not save a failure.
	check("a@example.com", dmarcInputs{dkim: []DKIMResult{{Status: DKIMTemperror, Domain: "x.example"}}}, DMARCFail, PolicyReject)
}

func TestDMARCPct(t *testing.T) {
	r := &dnstest.Resolver{TXT: map[string][]string{
		"_dmarc.pct.example.":  {"v=DMARC1; p=reject; pct=30"},
		"_dmarc.pct0.example.": {"v=DMARC1; p=quarantine; pct=0"},
	}}
	failing := dmarcInputs{spf: SPFResult{Status: SPFFail, Domain: "pct.example"}}
	check := func(from string, roll int, policy DMARCPolicy, sampledOut bool) {
		t.Helper()
		in := failing
		calls := 0
		in.rand = func(n int) int {
			calls++
			if n != 100 {
				t.Errorf("rand(%d), want rand(100)", n)
			}
			return roll
		}
		got := evaluateDMARC(context.Background(), r, headerOf(t, "From: "+from+"\r\n\r\n"), in)
		if got.Status != DMARCFail || got.Policy != policy || got.SampledOut != sampledOut || calls != 1 {
			t.Errorf("%s roll %d: %+v (rand calls %d), want policy %s sampled out %v", from, roll, got, calls, policy, sampledOut)
		}
	}
	check("a@pct.example", 0, PolicyReject, false)
	check("a@pct.example", 29, PolicyReject, false)
	check("a@pct.example", 30, PolicyQuarantine, true)
	check("a@pct.example", 99, PolicyQuarantine, true)
	check("a@pct0.example", 0, PolicyNone, true)

	// The Verifier passes its Rand through, and findings follow the policy.
	v := &Verifier{Resolver: r, Rand: func(int) int { return 50 }}
	res := v.Verify(context.Background(), Input{Message: strings.NewReader("From: a@pct.example\r\n\r\nhi\r\n")})
	if res.DMARC.Policy != PolicyQuarantine || !hasTag(res.Findings(), reason.DMARCQuarantine) {
		t.Errorf("Verify with Rand: %+v, findings %+v", res.DMARC, res.Findings())
	}
}

func TestDMARCFromFields(t *testing.T) {
	r := &dnstest.Resolver{TXT: map[string][]string{
		"_dmarc.example.com.":    {"v=DMARC1; p=none"},
		"_dmarc.victim.example.": {"v=DMARC1; p=reject"},
	}}
	// The genuine sender signs for example.com.
	in := dmarcInputs{spf: SPFResult{Status: SPFPass, Domain: "example.com"},
		dkim: []DKIMResult{{Status: DKIMPass, Domain: "example.com"}}}
	check := func(name, header string, status DMARCStatus, from string, fields int, findings ...reason.Tag) {
		t.Helper()
		got := evaluateDMARC(context.Background(), r, headerOf(t, header+"\r\n"), in)
		if got.Status != status || got.HeaderFrom != from || got.FromFields != fields {
			t.Errorf("%s: dmarc=%s from=%q fields=%d (%s), want %s %q %d", name, got.Status, got.HeaderFrom,
				got.FromFields, got.Reason, status, from, fields)
		}
		var tags []reason.Tag
		for _, f := range (Results{DMARC: got}).Findings() {
			tags = append(tags, f.Tag)
		}
		if diff := cmp.Diff(findings, tags); diff != "" {
			t.Errorf("%s: findings (-want +got):\n%s", name, diff)
		}
	}
	check("one From", "From: Alice <alice@example.com>\r\n", DMARCPass, "example.com", 1)
	check("forged From above the genuine one",
		"From: CEO <ceo@victim.example>\r\nFrom: Alice <alice@example.com>\r\n",
		DMARCFail, "victim.example", 2, reason.DMARCReject, reason.MalformedMIME)
	check("forged From below the genuine one",
		"From: Alice <alice@example.com>\r\nTo: x@y.example\r\nfrom: ceo@victim.example\r\n",
		DMARCFail, "victim.example", 2, reason.DMARCReject, reason.MalformedMIME)
	check("two identical From fields",
		"From: alice@example.com\r\nFrom: alice@example.com\r\n", DMARCPass, "example.com", 2, reason.MalformedMIME)
	check("several addresses in one From",
		"From: alice@example.com, \"CEO\" <ceo@victim.example>\r\n", DMARCFail, "victim.example", 1, reason.DMARCReject)
	check("no From", "To: bob@corp.example\r\n", DMARCPermerror, "", 0, reason.MalformedMIME)
	check("From without address", "From: undisclosed\r\n", DMARCPermerror, "", 1)
	check("malformed From still yields its domain",
		"From: CEO <ceo@victim.example\r\n", DMARCFail, "victim.example", 1, reason.DMARCReject)
	check("quoted decoy in display name",
		"From: \"ceo@victim.example\" <alice@example.com>\r\n", DMARCPass, "example.com", 1)
	check("folded From", "From: Alice\r\n <alice@EXAMPLE.com.>\r\n", DMARCPass, "example.com", 1)
	check("ISO-2022-JP display name",
		"From: =?ISO-2022-JP?B?GyRCOzNFRBsoQg==?= <ceo@victim.example>\r\n", DMARCFail, "victim.example", 1, reason.DMARCReject)
	check("IDN domain", "From: a@bücher.example\r\n", DMARCNone, "xn--bcher-kva.example", 1)
}

func TestDMARCManyAuthorDomains(t *testing.T) {
	r := &dnstest.Resolver{}
	var addrs []string
	for i := 0; i < 20; i++ {
		addrs = append(addrs, "a@d"+strings.Repeat("x", i)+".example")
	}
	h := headerOf(t, "From: "+strings.Join(addrs, ", ")+"\r\n\r\n")
	got := evaluateDMARC(context.Background(), r, h, dmarcInputs{})
	if got.Status != DMARCPermerror || len(got.AuthorDomains) != 20 {
		t.Errorf("20 author domains: %+v", got)
	}
	if q := len(r.Queries()); q > 2*maxAuthorDomains {
		t.Errorf("%d DNS queries for 20 author domains, want at most %d", q, 2*maxAuthorDomains)
	}
}

func TestOrgDomain(t *testing.T) {
	for in, want := range map[string]string{
		"example.com":           "example.com",
		"a.b.example.com":       "example.com",
		"A.Example.COM.":        "example.com",
		"www.example.co.uk":     "example.co.uk",
		"co.uk":                 "co.uk",
		"com":                   "com",
		"foo.corp.example":      "corp.example",
		"alice.github.io":       "alice.github.io",
		"x.alice.github.io":     "alice.github.io",
		"xn--bcher-kva.example": "xn--bcher-kva.example",
	} {
		if got := OrgDomain(in); got != want {
			t.Errorf("OrgDomain(%q) = %q, want %q", in, got, want)
		}
	}
}
