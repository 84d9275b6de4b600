package reputation

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/mailguard/mailguard/auth/dnstest"
	"github.com/mailguard/mailguard/resolver"
)

// The DNS lists as a zone served by a real DNS server on loopback.
const listsZone = `
$TTL 300
99.2.0.192.zen.test.   A   127.0.0.2
99.2.0.192.zen.test.   TXT "listed for spam, see https://zen.test/99"
9.9.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.zen.test. A 127.0.0.4
99.2.0.192.codes.test. A   127.0.0.10
99.2.0.192.dead.test.  A   127.0.0.2
100.2.0.192.dead.test. A   127.0.0.2
evil-login.com.multi.uribl.test.  A 127.0.0.2
grey.net.multi.uribl.test.        A 127.0.0.4
7.113.0.203.multi.uribl.test.     A 127.0.0.2
`

// resolvers returns the two resolvers the checker is used with: the
// standard library's, and mailguard's caching resolver, both sending every
// query to srv.
func resolvers(t *testing.T, srv *dnstest.Server) map[string]Resolver {
	t.Helper()
	// The resolvers' own timeouts are long (5 s), so that a check that ends
	// early proves the zone's timeout worked, not the resolver's.
	cached, err := resolver.New(resolver.Config{Servers: []string{srv.Addr()}, Timeout: 5 * time.Second, Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	std := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, srv.Addr())
	}}
	return map[string]Resolver{"net.Resolver": std, "resolver.Resolver": cached}
}

func TestCheckIPOverLoopbackDNS(t *testing.T) {
	srv := dnstest.StartServer(t, listsZone)
	srv.Timeout("99.2.0.192.dead.test.")
	srv.Timeout("100.2.0.192.dead.test.")
	for name, r := range resolvers(t, srv) {
		t.Run(name, func(t *testing.T) {
			c := &Checker{Resolver: r, TXT: true, IPZones: []Zone{
				{Name: "zen.test", Weight: 2},
				{Name: "codes.test", Filter: "127.0.0.[2..9]"},
				{Name: "dead.test", Timeout: 200 * time.Millisecond},
			}}
			start := time.Now()
			got := c.CheckIP(context.Background(), netip.MustParseAddr("192.0.2.99"))
			took := time.Since(start)
			if got.Score != 2 || len(got.Listed) != 1 || got.Failed != 1 ||
				got.Listed[0].Reason != "listed for spam, see https://zen.test/99" {
				t.Errorf("IPv4 over DNS: %+v", got)
			}
			// Bounded by the zone's 200 ms, far from the resolver's 5 s (with
			// slack for a loaded CI machine).
			if took < 200*time.Millisecond || took > 2500*time.Millisecond {
				t.Errorf("a dead list with a 200ms timeout: the check took %v", took)
			}
			got = c.CheckIP(context.Background(), netip.MustParseAddr("2001:db8::99"))
			if got.Score != 2 || len(got.Listed) != 1 || got.Listed[0].Codes[0] != "127.0.0.4" {
				t.Errorf("IPv6 over DNS: %+v", got)
			}
			got = c.CheckIP(context.Background(), netip.MustParseAddr("192.0.2.100"))
			if got.Score != 0 || len(got.Listed) != 0 || got.Failed != 1 {
				t.Errorf("unlisted over DNS: %+v", got)
			}
		})
	}
}

func TestCheckURLsOverLoopbackDNS(t *testing.T) {
	srv := dnstest.StartServer(t, listsZone)
	for name, r := range resolvers(t, srv) {
		t.Run(name, func(t *testing.T) {
			c := &Checker{Resolver: r, URLZones: []Zone{{Name: "multi.uribl.test", Filter: "&2"}}}
			urls := ExtractURLs("Log in at https://secure.evil-login.com/x or http://203.0.113.7/a, "+
				"see http://www.grey.net/ and https://fine.example.org/", "", 0)
			got := c.CheckURLs(context.Background(), urls)
			if len(got.Listed) != 2 || got.Lookups != 4 || len(got.Errors) != 0 {
				t.Fatalf("CheckURLs = %+v", got)
			}
			if l := got.Listed[0]; l.Domain != "203.0.113.7" || l.URL != "http://203.0.113.7/a" {
				t.Errorf("listing 0 = %+v", l)
			}
			if l := got.Listed[1]; l.Domain != "evil-login.com" || l.URL != "https://secure.evil-login.com/x" {
				t.Errorf("listing 1 = %+v", l)
			}
		})
	}
}
