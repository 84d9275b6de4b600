package auth

import (
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/google/go-cmp/cmp"

	"github.com/mailguard/mailguard/auth/dnstest"
	"github.com/mailguard/mailguard/reason"
	"github.com/mailguard/mailguard/resolver"
)

// zoneTXT quotes a TXT value for a master file, split into 255-byte
// character-strings.
func zoneTXT(s string) string {
	var parts []string
	for len(s) > 255 {
		parts, s = append(parts, `"`+s[:255]+`"`), s[255:]
	}
	return strings.Join(append(parts, `"`+s+`"`), " ")
}

// e2eZone publishes SPF, DKIM and DMARC for example.com (the genuine
// sender) and victim.example (a spoofing target), as a real zone would.
func e2eZone(t testing.TB) string {
	k := testKeys()
	return `
$ORIGIN example.com.
$TTL 300
@               TXT ` + zoneTXT("v=spf1 ip4:192.0.2.0/24 -all") + `
_dmarc          TXT "v=DMARC1; p=reject; rua=mailto:dmarc@example.com"
rsa._domainkey  TXT ` + zoneTXT(keyRecord(t, k["rsa2048"])) + `
ed._domainkey   TXT ` + zoneTXT(keyRecord(t, k["ed25519"])) + `
mail            A   192.0.2.10
mail            TXT "v=spf1 a -all"
$ORIGIN victim.example.
@               TXT "v=spf1 -all"
_dmarc          TXT "v=DMARC1; p=reject"
$ORIGIN forwarder.example.
@               TXT "v=spf1 ip4:198.51.100.0/24 -all"
`
}

func e2eVerifier(t testing.TB) (*Verifier, *dnstest.Server) {
	srv := dnstest.StartServer(t, e2eZone(t))
	r, err := resolver.New(resolver.Config{Servers: []string{srv.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	return &Verifier{Resolver: r, Hostname: "mx.corp.example"}, srv
}

func TestVerifyOverDNS(t *testing.T) {
	v, srv := e2eVerifier(t)
	k := testKeys()
	signed := sign(t, testMessage("Alice <alice@example.com>"), "example.com", "rsa", k["rsa2048"],
		dkim.CanonicalizationRelaxed, dkim.CanonicalizationRelaxed)
	type want struct {
		spf, helo SPFStatus
		dkim      []DKIMStatus
		dmarc     DMARCStatus
		policy    DMARCPolicy
		findings  []reason.Tag
	}
	check := func(name string, in Input, w want) Results {
		t.Helper()
		res := v.Verify(context.Background(), in)
		got := want{spf: res.SPF.Status, helo: res.HELO.Status, dmarc: res.DMARC.Status, policy: res.DMARC.Policy}
		for _, d := range res.DKIM {
			got.dkim = append(got.dkim, d.Status)
		}
		for _, f := range res.Findings() {
			got.findings = append(got.findings, f.Tag)
		}
		if diff := cmp.Diff(w, got, cmp.AllowUnexported(want{})); diff != "" {
			t.Errorf("%s (-want +got):\n%s\nresults: %+v", name, diff, res)
		}
		return res
	}
	genuine := check("genuine", Input{ClientIP: netip.MustParseAddr("192.0.2.10"), HELO: "mail.example.com",
		MailFrom: "alice@example.com", Message: strings.NewReader(signed)},
		want{SPFPass, SPFPass, []DKIMStatus{DKIMPass}, DMARCPass, PolicyNone, nil})
	if !genuine.DMARC.SPFAligned || !genuine.DMARC.DKIMAligned {
		t.Errorf("genuine alignment: %+v", genuine.DMARC)
	}
	h := genuine.Header("mx.corp.example")
	for _, s := range []string{"spf=pass", "smtp.mailfrom=alice@example.com", "dkim=pass", "header.d=example.com", "dmarc=pass", "header.from=example.com"} {
		if !strings.Contains(h, s) {
			t.Errorf("header lacks %q:\n%s", s, h)
		}
	}

	spoof := testMessage("CEO <ceo@victim.example>")
	check("spoof", Input{ClientIP: netip.MustParseAddr("203.0.113.5"), HELO: "bad.example",
		MailFrom: "ceo@victim.example", Message: strings.NewReader(spoof)},
		want{SPFFail, SPFNone, nil, DMARCFail, PolicyReject, []reason.Tag{reason.SPFFail, reason.DMARCReject}})

	check("forwarded", Input{ClientIP: netip.MustParseAddr("198.51.100.7"), HELO: "fwd.forwarder.example",
		MailFrom: "bounce@forwarder.example", Message: strings.NewReader(signed)},
		want{SPFPass, SPFNone, []DKIMStatus{DKIMPass}, DMARCPass, PolicyNone, nil})

	tampered := strings.Replace(signed, "the invoice", "the new bank account", 1)
	check("forwarded and altered", Input{ClientIP: netip.MustParseAddr("198.51.100.7"), HELO: "fwd.forwarder.example",
		MailFrom: "bounce@forwarder.example", Message: strings.NewReader(tampered)},
		want{SPFPass, SPFNone, []DKIMStatus{DKIMFail}, DMARCFail, PolicyReject, []reason.Tag{reason.DKIMFail, reason.DMARCReject}})

	check("null sender", Input{ClientIP: netip.MustParseAddr("192.0.2.10"), HELO: "mail.example.com",
		Message: strings.NewReader(signed)},
		want{SPFPass, SPFPass, []DKIMStatus{DKIMPass}, DMARCPass, PolicyNone, nil})

	// A fresh cache: the answers above are cached, as they should be.
	v, srv = e2eVerifier(t)
	srv.ServFail("TXT _dmarc.victim.example.")
	check("dmarc servfail", Input{ClientIP: netip.MustParseAddr("203.0.113.5"), HELO: "bad.example",
		MailFrom: "x@victim.example", Message: strings.NewReader(spoof)},
		want{SPFFail, SPFNone, nil, DMARCTemperror, PolicyNone, []reason.Tag{reason.SPFFail, reason.DMARCTemperror}})

	srv.ServFail("TXT rsa._domainkey.example.com.")
	check("key servfail", Input{ClientIP: netip.MustParseAddr("198.51.100.7"), HELO: "fwd.forwarder.example",
		MailFrom: "bounce@forwarder.example", Message: strings.NewReader(signed)},
		want{SPFPass, SPFNone, []DKIMStatus{DKIMTemperror}, DMARCTemperror, PolicyNone, []reason.Tag{reason.DMARCTemperror}})
}

func TestResultsJSON(t *testing.T) {
	res := Results{
		SPF:   SPFResult{Status: SPFPass, Identity: IdentityMailFrom, Domain: "example.com"},
		HELO:  SPFResult{Status: SPFNone, Identity: IdentityHELO},
		DKIM:  []DKIMResult{{Status: DKIMPass, Domain: "example.com", Selector: "s", Algorithm: "rsa-sha256", Signature: "secret"}},
		DMARC: DMARCResult{Status: DMARCPass, HeaderFrom: "example.com", Policy: PolicyNone, FromFields: 1},
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"spf", "helo", "dkim", "dmarc"} {
		if _, ok := m[key]; !ok {
			t.Errorf("JSON lacks %q: %s", key, b)
		}
	}
	for _, s := range []string{`"status":"pass"`, `"header_from":"example.com"`, `"spf_aligned":false`,
		`"dns_lookups":0`, `"selector":"s"`, `"policy":"none"`, `"identity":"mailfrom"`} {
		if !strings.Contains(string(b), s) {
			t.Errorf("JSON lacks %s: %s", s, b)
		}
	}
	if strings.Contains(string(b), "secret") {
		t.Errorf("JSON shows b= data: %s", b)
	}
}

// benchMessage is a 10 KB message signed once with RSA-2048, relaxed.
func benchMessage(b *testing.B) string {
	body := strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n", 136)
	msg := testMessage("Alice <alice@example.com>") + body
	return sign(b, msg, "example.com", "rsa", testKeys()["rsa2048"], dkim.CanonicalizationRelaxed, dkim.CanonicalizationRelaxed)
}

// BenchmarkVerify: SPF (MAIL FROM and HELO), one DKIM signature and DMARC
// for a 10 KB message, with every DNS answer already cached: through the
// caching resolver over the loopback server, and through the fake.
func BenchmarkVerify(b *testing.B) {
	msg := benchMessage(b)
	in := func() Input {
		return Input{ClientIP: netip.MustParseAddr("192.0.2.10"), HELO: "mail.example.com",
			MailFrom: "alice@example.com", Message: strings.NewReader(msg)}
	}
	run := func(b *testing.B, v *Verifier) {
		if res := v.Verify(context.Background(), in()); res.DMARC.Status != DMARCPass || res.DKIM[0].Status != DKIMPass {
			b.Fatalf("warm-up: %+v", res)
		}
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			v.Verify(context.Background(), in())
		}
	}
	b.Run("resolver-cache", func(b *testing.B) {
		v, _ := e2eVerifier(b)
		run(b, v)
	})
	b.Run("fake", func(b *testing.B) {
		k := testKeys()
		r := &dnstest.Resolver{
			TXT: map[string][]string{
				"example.com.":                {"v=spf1 ip4:192.0.2.0/24 -all"},
				"mail.example.com.":           {"v=spf1 a -all"},
				"_dmarc.example.com.":         {"v=DMARC1; p=reject"},
				"rsa._domainkey.example.com.": {keyRecord(b, k["rsa2048"])},
			},
			A: map[string][]string{"mail.example.com.": {"192.0.2.10"}},
		}
		run(b, &Verifier{Resolver: r})
	})
}
