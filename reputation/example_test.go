package reputation_test

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/mailguard/mailguard/auth/dnstest"
	"github.com/mailguard/mailguard/reputation"
)

func ExampleExtractURLs() {
	text := "Reset your password at hxxps://account-verify[.]example[.]net/reset today."
	html := `<p>Sign in: <a href="https://www.example-bank.com.login.example.org/">https://www.example-bank.com/</a></p>`
	for _, u := range reputation.ExtractURLs(text, html, 0) {
		fmt.Println(u.Normalized, u.Domain, "mismatch:", u.Mismatch, "obfuscated:", u.Obfuscated)
	}
	// Output:
	// https://www.example-bank.com.login.example.org/ example.org mismatch: true obfuscated: false
	// https://account-verify.example.net/reset example.net mismatch: false obfuscated: true
}

func ExampleParseZone() {
	for _, spec := range []string{"zen.spamhaus.org=127.0.0.[2..11]*3", "list.dnswl.org=127.0.[0..255].[1..3]*-5", "multi.uribl.com=&0x0e"} {
		z, err := reputation.ParseZone(spec)
		fmt.Printf("%s filter %q weight %g (%v)\n", z.Name, z.Filter, z.Weight, err)
	}
	// Output:
	// zen.spamhaus.org filter "127.0.0.[2..11]" weight 3 (<nil>)
	// list.dnswl.org filter "127.0.[0..255].[1..3]" weight -5 (<nil>)
	// multi.uribl.com filter "&0x0e" weight 1 (<nil>)
}

func ExampleChecker_CheckIP() {
	c := &reputation.Checker{
		Resolver: &dnstest.Resolver{A: map[string][]string{"7.113.0.203.bl.example.": {"127.0.0.2"}}},
		IPZones:  []reputation.Zone{{Name: "bl.example", Weight: 2, Filter: "127.0.0.[2..11]"}, {Name: "wl.example", Weight: -5}},
	}
	r := c.CheckIP(context.Background(), netip.MustParseAddr("203.0.113.7"))
	fmt.Println(r.Score, r.Listed[0].Zone, r.Listed[0].Codes)
	for _, f := range r.Findings() {
		fmt.Println(f.Tag, f.Detail)
	}
	// Output:
	// 2 bl.example [127.0.0.2]
	// ip_blocklisted score 2: bl.example (127.0.0.2)
}
