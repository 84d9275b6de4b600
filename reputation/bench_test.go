package reputation

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/mailguard/mailguard/auth/dnstest"
	"github.com/mailguard/mailguard/resolver"
)

// cachedResolver answers from a map at once, like a resolver whose TTL
// cache is warm; unknown names are NXDOMAIN.
type cachedResolver map[string][]netip.Addr

func (r cachedResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := r[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func (r cachedResolver) LookupTXT(context.Context, string) ([]string, error) {
	return nil, &net.DNSError{Err: "no such host", IsNotFound: true}
}

// typicalHTML is a 14 KB newsletter-style HTML mail: 40 links and 40
// images (83 distinct URLs on 13 registrable domains with the text part),
// a shortener and a tracking pixel.
func typicalHTML() string {
	var b strings.Builder
	b.WriteString(`<!DOCTYPE html><html><head><meta charset="utf-8"><style>td{font-family:Arial}</style></head><body><table width="600">`)
	for i := 0; i < 40; i++ {
		fmt.Fprintf(&b, `<tr><td><p>Item %d: our quarterly update on shipping, billing and the new portal. `+
			`Read more about the changes to your account and the schedule for the coming weeks.</p>`+
			`<a href="https://news%d.example%d.com/article/%d?utm_source=mail&amp;utm_medium=email">Read the article</a> `+
			`<img src="https://img.example%d.com/i/%d.png" width="80"></td></tr>`, i, i%4, i%12, i, i%3, i)
	}
	b.WriteString(`<tr><td>Contact us at www.example0.com or support@example0.com. <a href="https://bit.ly/x1">short</a>` +
		`<img src="https://track.example1.com/o.gif?id=99" width="1" height="1"></td></tr></table></body></html>`)
	return b.String()
}

// BenchmarkReputationMessage is the reputation cost of one message with
// warm DNS caches: CheckIP on 3 lists, ExtractURLs on a typical HTML mail
// plus its text part, CheckURLs on 2 lists.
func BenchmarkReputationMessage(b *testing.B) {
	r := cachedResolver{"99.2.0.192.zen.example.": {netip.MustParseAddr("127.0.0.2")}}
	c := &Checker{Resolver: r,
		IPZones:  []Zone{{Name: "zen.example", Weight: 3}, {Name: "bl.example"}, {Name: "dnswl.example", Weight: -5}},
		URLZones: []Zone{{Name: "multi.uribl.example", Filter: "&2"}, {Name: "multi.surbl.example", Filter: "&8"}},
	}
	htmlBody := typicalHTML()
	text := strings.Repeat("Read the article at https://news1.example1.com/article/1 and more.\r\n", 40)
	ip := netip.MustParseAddr("192.0.2.99")
	ctx := context.Background()
	b.SetBytes(int64(len(htmlBody) + len(text)))
	b.ReportAllocs()
	for b.Loop() {
		ipr := c.CheckIP(ctx, ip)
		urls := ExtractURLs(text, htmlBody, 0)
		ur := c.CheckURLs(ctx, urls)
		if ipr.Score != 3 || ur.Count < 40 {
			b.Fatalf("unexpected results: %v %d", ipr.Score, ur.Count)
		}
	}
}

// BenchmarkReputationMessageResolver is the same with mailguard's caching
// resolver in front of a loopback DNS server, after one warm-up message:
// every answer, negative ones included, comes from the resolver's cache.
func BenchmarkReputationMessageResolver(b *testing.B) {
	srv := dnstest.StartServer(b, "99.2.0.192.zen.example. 300 A 127.0.0.2\n")
	r, err := resolver.New(resolver.Config{Servers: []string{srv.Addr()}})
	if err != nil {
		b.Fatal(err)
	}
	c := &Checker{Resolver: r,
		IPZones:  []Zone{{Name: "zen.example", Weight: 3}, {Name: "bl.example"}, {Name: "dnswl.example", Weight: -5}},
		URLZones: []Zone{{Name: "multi.uribl.example", Filter: "&2"}, {Name: "multi.surbl.example", Filter: "&8"}},
	}
	htmlBody := typicalHTML()
	text := strings.Repeat("Read the article at https://news1.example1.com/article/1 and more.\r\n", 40)
	ip := netip.MustParseAddr("192.0.2.99")
	ctx := context.Background()
	message := func() {
		ipr := c.CheckIP(ctx, ip)
		ur := c.CheckURLs(ctx, ExtractURLs(text, htmlBody, 0))
		if ipr.Score != 3 || ur.Count < 40 || len(ur.Errors) > 0 {
			b.Fatalf("unexpected results: %+v %+v", ipr, ur.Errors)
		}
	}
	message() // warm the cache
	queries := len(srv.Queries())
	b.SetBytes(int64(len(htmlBody) + len(text)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		message()
	}
	b.StopTimer()
	if n := len(srv.Queries()); n != queries {
		b.Errorf("%d queries reached the server after warm-up", n-queries)
	}
}

// BenchmarkExtractURLs is the extraction alone on the same message.
func BenchmarkExtractURLs(b *testing.B) {
	htmlBody := typicalHTML()
	b.SetBytes(int64(len(htmlBody)))
	b.ReportAllocs()
	for b.Loop() {
		ExtractURLs("", htmlBody, 0)
	}
}
