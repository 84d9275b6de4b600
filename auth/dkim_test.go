//go:debug rsa1024min=0

package auth

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/mailguard/mailguard/auth/dnstest"
	"github.com/mailguard/mailguard/reason"
)

// The rsa1024min GODEBUG above lets the tests make 512- and 768-bit keys;
// rejecting them is go-msgauth's and our job, which is what is tested.

var testKeys = sync.OnceValue(func() map[string]crypto.Signer {
	keys := map[string]crypto.Signer{}
	for name, bits := range map[string]int{"rsa2048": 2048, "rsa512": 512, "rsa768": 768} {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			panic(err)
		}
		keys[name] = k
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	keys["ed25519"] = ed
	return keys
})

// keyRecord returns the DKIM key TXT record of a signer.
func keyRecord(t testing.TB, s crypto.Signer) string {
	t.Helper()
	switch pub := s.Public().(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
	case ed25519.PublicKey:
		return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)
	}
	t.Fatalf("unknown key type %T", s.Public())
	return ""
}

const testBody = "Hello Bob,\r\n\r\nthe invoice is attached.  Regards,\r\n  Alice\r\n"

func testMessage(from string) string {
	return "From: " + from + "\r\n" +
		"To: bob@corp.example\r\n" +
		"Subject: invoice\r\n" +
		"Date: Mon, 2 Mar 2026 10:00:00 +0000\r\n" +
		"Message-ID: <1@example.com>\r\n" +
		"\r\n" + testBody
}

// sign signs msg with go-msgauth.
func sign(t testing.TB, msg, domain, selector string, key crypto.Signer, hc, bc dkim.Canonicalization) string {
	t.Helper()
	var out bytes.Buffer
	err := dkim.Sign(&out, strings.NewReader(msg), &dkim.SignOptions{
		Domain: domain, Selector: selector, Signer: key,
		HeaderCanonicalization: hc, BodyCanonicalization: bc,
		HeaderKeys: []string{"From", "To", "Subject", "Date", "Message-ID"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// signByHand makes a simple/simple RSA signature that go-msgauth will not
// make: rsa-sha1, or a body length limit (l >= 0).
func signByHand(t testing.TB, msg, domain, selector string, key *rsa.PrivateKey, h crypto.Hash, l int) string {
	t.Helper()
	header, body, _ := strings.Cut(msg, "\r\n\r\n")
	canon := strings.TrimRight(body, "\r\n") + "\r\n"
	if l >= 0 {
		canon = canon[:l]
	}
	sum := func(s string) []byte {
		if h == crypto.SHA1 {
			x := sha1.Sum([]byte(s))
			return x[:]
		}
		x := sha256.Sum256([]byte(s))
		return x[:]
	}
	algo := map[crypto.Hash]string{crypto.SHA1: "rsa-sha1", crypto.SHA256: "rsa-sha256"}[h]
	sig := "DKIM-Signature: v=1; a=" + algo + "; c=simple/simple; d=" + domain + "; s=" + selector +
		"; h=from:to:subject; bh=" + base64.StdEncoding.EncodeToString(sum(canon)) + ";"
	if l >= 0 {
		sig += " l=" + strconv.Itoa(l) + ";"
	}
	sig += " b="
	var data strings.Builder
	for _, name := range []string{"from", "to", "subject"} {
		for _, line := range strings.Split(header, "\r\n") {
			if strings.HasPrefix(strings.ToLower(line), name+":") {
				data.WriteString(line + "\r\n")
			}
		}
	}
	data.WriteString(sig)
	b, err := rsa.SignPKCS1v15(rand.Reader, key, h, sum(data.String()))
	if err != nil {
		t.Fatal(err)
	}
	return sig + base64.StdEncoding.EncodeToString(b) + "\r\n" + msg
}

func dkimResolver(t testing.TB) *dnstest.Resolver {
	t.Helper()
	k := testKeys()
	return &dnstest.Resolver{
		TXT: map[string][]string{
			"rsa._domainkey.example.com.":     {keyRecord(t, k["rsa2048"])},
			"ed._domainkey.example.com.":      {keyRecord(t, k["ed25519"])},
			"short._domainkey.example.com.":   {keyRecord(t, k["rsa512"])},
			"medium._domainkey.example.com.":  {keyRecord(t, k["rsa768"])},
			"revoked._domainkey.example.com.": {"v=DKIM1; k=rsa; p="},
			"rsa._domainkey.mailer.example.":  {keyRecord(t, k["rsa2048"])},
		},
		Temporary: []string{"txt flaky._domainkey.example.com."},
	}
}

func verifyMessage(t testing.TB, r Resolver, msg string) []DKIMResult {
	t.Helper()
	v := &Verifier{Resolver: r}
	res := v.Verify(context.Background(), Input{Message: strings.NewReader(msg)})
	return res.DKIM
}

func TestDKIM(t *testing.T) {
	r := dkimResolver(t)
	k := testKeys()
	msg := testMessage("Alice <alice@example.com>")
	check := func(name, signed string, want ...DKIMStatus) []DKIMResult {
		t.Helper()
		got := verifyMessage(t, r, signed)
		if len(got) != len(want) {
			t.Fatalf("%s: %d results %+v, want %d", name, len(got), got, len(want))
		}
		for i := range want {
			if got[i].Status != want[i] {
				t.Errorf("%s: signature %d (d=%s s=%s) = %s (%s), want %s",
					name, i, got[i].Domain, got[i].Selector, got[i].Status, got[i].Reason, want[i])
			}
		}
		return got
	}
	for _, c := range []struct{ hc, bc dkim.Canonicalization }{
		{dkim.CanonicalizationSimple, dkim.CanonicalizationSimple},
		{dkim.CanonicalizationRelaxed, dkim.CanonicalizationRelaxed},
		{dkim.CanonicalizationRelaxed, dkim.CanonicalizationSimple},
	} {
		name := string(c.hc) + "/" + string(c.bc)
		got := check("rsa "+name, sign(t, msg, "example.com", "rsa", k["rsa2048"], c.hc, c.bc), DKIMPass)
		if got[0].Domain != "example.com" || got[0].Selector != "rsa" || got[0].Algorithm != "rsa-sha256" {
			t.Errorf("rsa %s: result %+v lacks d/s/a", name, got[0])
		}
		got = check("ed25519 "+name, sign(t, msg, "example.com", "ed", k["ed25519"], c.hc, c.bc), DKIMPass)
		if got[0].Algorithm != "ed25519-sha256" {
			t.Errorf("ed25519 algorithm = %q", got[0].Algorithm)
		}
	}

	good := sign(t, msg, "example.com", "rsa", k["rsa2048"], dkim.CanonicalizationRelaxed, dkim.CanonicalizationRelaxed)
	check("tampered header", strings.Replace(good, "Subject: invoice", "Subject: invoice!", 1), DKIMFail)
	check("tampered body", strings.Replace(good, "attached", "attachet", 1), DKIMFail)
	check("appended body", good+"Click http://evil.example/\r\n", DKIMFail)
	check("revoked key", sign(t, msg, "example.com", "revoked", k["rsa2048"], "", ""), DKIMPermerror)
	check("missing key", sign(t, msg, "example.com", "nokey", k["rsa2048"], "", ""), DKIMPermerror)
	check("temporary dns failure", sign(t, msg, "example.com", "flaky", k["rsa2048"], "", ""), DKIMTemperror)
	check("512-bit key", sign(t, msg, "example.com", "short", k["rsa512"], "", ""), DKIMFail)
	check("768-bit key", sign(t, msg, "example.com", "medium", k["rsa768"], "", ""), DKIMFail)
	rsaKey := k["rsa2048"].(*rsa.PrivateKey)
	got := check("rsa-sha1", signByHand(t, msg, "example.com", "rsa", rsaKey, crypto.SHA1, -1), DKIMFail)
	if !strings.Contains(got[0].Reason, "sha1") {
		t.Errorf("rsa-sha1 reason = %q", got[0].Reason)
	}
	// The hand signer itself is right: the same signature with sha256 passes.
	check("hand-signed rsa-sha256", signByHand(t, msg, "example.com", "rsa", rsaKey, crypto.SHA256, -1), DKIMPass)

	// Several signatures: a broken one above a good one, and an unrelated
	// domain's good one.
	two := sign(t, good, "mailer.example", "rsa", k["rsa2048"], "", "")
	two = strings.Replace(two, "Subject: invoice", "Subject: invoice (via list)", 1)
	check("two signatures, both broken by a list", two, DKIMFail, DKIMFail)
	three := sign(t, good, "example.com", "revoked", k["rsa2048"], "", "")
	got = check("revoked above good", three, DKIMPermerror, DKIMPass)
	if got[1].Selector != "rsa" || got[0].Selector != "revoked" {
		t.Errorf("results out of header order: %+v", got)
	}
}

func TestDKIMBodyLength(t *testing.T) {
	r := dkimResolver(t)
	key := testKeys()["rsa2048"].(*rsa.PrivateKey)
	msg := testMessage("Alice <alice@example.com>")
	bodyLen := len(strings.TrimRight(testBody, "\r\n") + "\r\n")

	// l= covering the body as signed, then content appended in transit.
	signed := signByHand(t, msg, "example.com", "rsa", key, crypto.SHA256, bodyLen)
	appended := signed + "\r\nPS: new bank account, see http://evil.example/\r\n"
	got := verifyMessage(t, r, appended)
	if len(got) != 1 || got[0].Status == DKIMPass {
		t.Fatalf("l= with appended content = %+v, must not pass", got)
	}
	if got[0].Status != DKIMPolicy || got[0].UnsignedBytes == 0 || got[0].BodyLength == nil || *got[0].BodyLength != int64(bodyLen) {
		t.Errorf("l= with appended content = %+v, want policy with unsigned bytes reported", got[0])
	}
	want := int64(len("\r\nPS: new bank account, see http://evil.example/\r\n"))
	if got[0].UnsignedBytes != want {
		t.Errorf("unsigned bytes = %d, want %d", got[0].UnsignedBytes, want)
	}

	// l= shorter than the body already when signed.
	got = verifyMessage(t, r, signByHand(t, msg, "example.com", "rsa", key, crypto.SHA256, 10))
	if got[0].Status != DKIMPolicy || got[0].UnsignedBytes != int64(bodyLen-10) {
		t.Errorf("l=10 = %+v, want policy with %d unsigned", got[0], bodyLen-10)
	}

	// Findings and DMARC: a policy result is no pass.
	v := &Verifier{Resolver: r}
	res := v.Verify(context.Background(), Input{Message: strings.NewReader(appended)})
	if !hasTag(res.Findings(), reason.DKIMFail) {
		t.Errorf("findings %+v lack dkim_fail", res.Findings())
	}
	if res.DMARC.DKIMAligned {
		t.Errorf("l= signature counted for DMARC alignment: %+v", res.DMARC)
	}
}

func TestDKIMLimits(t *testing.T) {
	r := dkimResolver(t)
	k := testKeys()
	msg := testMessage("Alice <alice@example.com>")
	signed := msg
	for i := 0; i < 4; i++ {
		signed = sign(t, signed, "example.com", "ed", k["ed25519"], dkim.CanonicalizationRelaxed, dkim.CanonicalizationRelaxed)
	}
	v := &Verifier{Resolver: r, MaxDKIMSignatures: 2}
	res := v.Verify(context.Background(), Input{Message: strings.NewReader(signed)})
	var statuses []DKIMStatus
	for _, d := range res.DKIM {
		statuses = append(statuses, d.Status)
	}
	want := []DKIMStatus{DKIMPass, DKIMPass, DKIMNeutral, DKIMNeutral}
	if strings.Join(toStrings(statuses), ",") != strings.Join(toStrings(want), ",") || res.DKIMNotVerified != 2 {
		t.Errorf("statuses = %v (not verified %d), want %v (2)", statuses, res.DKIMNotVerified, want)
	}

	// A header over the size limit leaves signatures unverified.
	big := sign(t, msg, "example.com", "rsa", k["rsa2048"], "", "")
	big = "X-Pad: " + strings.Repeat("a", 4096) + "\r\n" + big
	v = &Verifier{Resolver: r, MaxHeaderBytes: 1024}
	res = v.Verify(context.Background(), Input{Message: strings.NewReader(big)})
	if len(res.DKIM) != 0 && res.DKIM[0].Status == DKIMPass {
		t.Errorf("oversized header verified: %+v", res.DKIM)
	}
}

func TestDKIMNoSignature(t *testing.T) {
	v := &Verifier{Resolver: &dnstest.Resolver{}}
	res := v.Verify(context.Background(), Input{Message: strings.NewReader(testMessage("a@example.com"))})
	if res.DKIM == nil || len(res.DKIM) != 0 {
		t.Errorf("DKIM = %#v, want empty non-nil", res.DKIM)
	}
	if hasTag(res.Findings(), reason.DKIMFail) {
		t.Error("dkim_fail without a signature")
	}
}

func TestBodyLengthCounter(t *testing.T) {
	check := func(body string, simple, relaxed int64) {
		t.Helper()
		c := &bodyLengthCounter{}
		// Feed byte by byte to exercise state across writes.
		for i := 0; i < len(body); i++ {
			c.Write([]byte{body[i]})
		}
		if got := c.length("simple"); got != simple {
			t.Errorf("simple(%q) = %d, want %d", body, got, simple)
		}
		if got := c.length("relaxed"); got != relaxed {
			t.Errorf("relaxed(%q) = %d, want %d", body, got, relaxed)
		}
	}
	// RFC 6376 §3.4.5 example: " C \r\nD \t E\r\n\r\n\r\n"
	// simple: " C \r\nD \t E\r\n" (12), relaxed: " C\r\nD E\r\n" (9).
	check(" C \r\nD \t E\r\n\r\n\r\n", 12, 9)
	check("", 2, 0)
	check("\r\n\r\n", 2, 0)
	check("abc", 5, 5)
	check("abc\n\ndef\n", 12, 12) // LF counts as CRLF
	check("a  \t b \r\n", 9, 5)
}

func toStrings[S ~string](in []S) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = string(s)
	}
	return out
}

func hasTag(fs []reason.Finding, tag reason.Tag) bool {
	for _, f := range fs {
		if f.Tag == tag {
			return true
		}
	}
	return false
}
