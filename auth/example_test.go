package auth_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/mailguard/mailguard/auth"
	"github.com/mailguard/mailguard/auth/dnstest"
)

func ExampleVerifier_Verify() {
	r := &dnstest.Resolver{TXT: map[string][]string{
		"example.com.":        {"v=spf1 ip4:192.0.2.0/24 -all"},
		"_dmarc.example.com.": {"v=DMARC1; p=reject"},
	}}
	v := &auth.Verifier{Resolver: r, Hostname: "mx.corp.example"}
	msg := "From: Alice <alice@example.com>\r\nSubject: hi\r\n\r\nHello\r\n"

	res := v.Verify(context.Background(), auth.Input{
		ClientIP: netip.MustParseAddr("203.0.113.9"),
		HELO:     "unknown.example",
		MailFrom: "alice@example.com",
		Message:  strings.NewReader(msg),
	})
	fmt.Println("spf:", res.SPF.Status, "dmarc:", res.DMARC.Status, "policy:", res.DMARC.Policy)
	for _, f := range res.Findings() {
		fmt.Println(f.Tag)
	}
	// The header ends lines in CRLF; shown here with LF.
	fmt.Print(strings.ReplaceAll(res.Header("mx.corp.example"), "\r\n", "\n"))
	// Output:
	// spf: fail dmarc: fail policy: reject
	// spf_fail
	// dmarc_reject
	// Authentication-Results: mx.corp.example;
	// 	spf=fail (matched -all) smtp.mailfrom=alice@example.com;
	// 	dkim=none;
	// 	dmarc=fail (p=reject dis=REJECT) header.from=example.com
}

func ExampleStripAuthResults() {
	header := "Authentication-Results: (claims to be us)\r\n" +
		"\tMX.Corp.Example; dkim=pass header.d=bank.example\r\n" +
		"Authentication-Results: relay.partner.example; spf=pass\r\n" +
		"From: a@bank.example\r\n\r\n"
	out, removed := auth.StripAuthResults([]byte(header), "mx.corp.example")
	fmt.Printf("removed %d\n%s", removed, strings.ReplaceAll(string(out), "\r\n", "\n"))
	// Output:
	// removed 1
	// Authentication-Results: relay.partner.example; spf=pass
	// From: a@bank.example
}

func ExampleCheckSPF() {
	r := &dnstest.Resolver{
		TXT: map[string][]string{"example.com.": {"v=spf1 mx ~all"}},
		MX:  map[string][]*net.MX{"example.com.": {{Host: "mx.example.com.", Pref: 10}}},
		A:   map[string][]string{"mx.example.com.": {"192.0.2.25"}},
	}
	res, err := auth.CheckSPF(context.Background(), r, auth.SPFInput{
		IP: netip.MustParseAddr("192.0.2.25"), HELO: "mx.example.com", MailFrom: "bob@example.com",
	})
	fmt.Println(res.Status, res.Mechanism, res.Lookups, err)
	// Output: pass mx 1 <nil>
}
