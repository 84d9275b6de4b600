package gateway

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/mailguard/mailguard/auth/dnstest"
	"github.com/mailguard/mailguard/resolver"
)

// newsletter is a 15 KB newsletter-shaped mail (multipart/alternative):
// 40 article links and 40 images on 13 registrable domains, a shortener
// and a tracking pixel; the same message as
// tests/benchrelay/testdata/reputation/newsletter.eml.
func newsletter() []byte {
	var b strings.Builder
	b.WriteString("From: Partner News <news@partner.example>\r\nTo: bob@corp.example\r\nSubject: Partner news, November\r\n" +
		"Date: Mon, 23 Nov 2026 10:00:00 +0900\r\nMessage-ID: <newsletter-bench@partner.example>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/alternative; boundary=\"nl\"\r\n\r\n--nl\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	for i := range 40 {
		fmt.Fprintf(&b, "Item %d: read the article at https://news%d.example%d.com/article/%d\r\n", i, i%4, i%12, i)
	}
	b.WriteString("--nl\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" +
		`<!DOCTYPE html><html><head><meta charset="utf-8"></head><body><table width="600">` + "\r\n")
	for i := range 40 {
		fmt.Fprintf(&b, `<tr><td><p>Item %d: our quarterly update on shipping, billing and the new portal. Read more about the changes to your account.</p>`+
			`<a href="https://news%d.example%d.com/article/%d?utm_source=mail&amp;utm_medium=email">Read the article</a> `+
			`<img src="https://img.example%d.com/i/%d.png" width="80"></td></tr>`+"\r\n", i, i%4, i%12, i, i%3, i)
	}
	b.WriteString(`<tr><td>Contact us at www.example0.com. <a href="https://bit.ly/x1">short</a>` +
		`<img src="https://track.example1.com/o.gif?id=99" width="1" height="1"></td></tr></table></body></html>` + "\r\n--nl--\r\n")
	return []byte(b.String())
}

// repBenchZone lists nothing the newsletter contains: every lookup is a
// negative answer cached for an hour, as for clean mail.
const repBenchZone = `
$TTL 3600
zen.test.          SOA ns.zen.test. hostmaster.zen.test. 1 3600 600 86400 3600
bl.test.           SOA ns.bl.test. hostmaster.bl.test. 1 3600 600 86400 3600
multi.uribl.test.  SOA ns.uribl.test. hostmaster.uribl.test. 1 3600 600 86400 3600
multi.surbl.test.  SOA ns.surbl.test. hostmaster.surbl.test. 1 3600 600 86400 3600
`

// BenchmarkInspectReputation is the cost of reputation per message with
// warm caches: Inspect of the newsletter from a public client address
// without lists ("off") and with two client lists and two URL lists
// ("on") through mailguard's caching resolver and a loopback DNS server.
// The difference of the two is the reputation stage; after the warm-up no
// query reaches the server.
func BenchmarkInspectReputation(b *testing.B) {
	srv := dnstest.StartServer(b, repBenchZone)
	msg := newsletter()
	env := Envelope{ID: "bench", Direction: "inbound", ClientIP: netip.MustParseAddr("192.0.2.99"),
		HELO: "mail.partner.example", MailFrom: "news@partner.example", Rcpts: []string{"bob@corp.example"}}
	for _, tc := range []struct{ name, policy string }{
		{"off", "auth { enabled = false }\n"},
		{"on", "auth { enabled = false }\nreputation {\n  zone \"zen.test\" {\n    weight = 3\n  }\n  dnsbl = [\"bl.test\"]\n" +
			"  uribl = [\"multi.uribl.test\", \"multi.surbl.test\"]\n}\n"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			r, err := resolver.New(resolver.Config{Servers: []string{srv.Addr()}})
			if err != nil {
				b.Fatal(err)
			}
			f := benchFixture(b, tc.policy, r)
			ctx := context.Background()
			inspect := func() {
				rep, err := f.g.Inspect(ctx, env, bytes.NewReader(msg), int64(len(msg)), InspectOptions{Offline: true})
				if err != nil {
					b.Fatal(err)
				}
				if tc.name == "on" && (rep.Reputation == nil || rep.Reputation.URLs.Count < 80 || len(rep.Reputation.URLs.Errors) > 0 ||
					rep.Reputation.IP == nil || rep.Reputation.IP.Checked != 2) {
					b.Fatalf("reputation not checked as expected: %+v", rep.Reputation)
				}
				rep.Close()
			}
			inspect() // warm the resolver's cache
			queries := len(srv.Queries())
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				inspect()
			}
			if n := len(srv.Queries()) - queries; n != 0 {
				b.Errorf("%d queries reached the DNS server after the warm-up", n)
			}
		})
	}
}
