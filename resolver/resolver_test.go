package resolver

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mailguard/mailguard/auth"
	"github.com/mailguard/mailguard/auth/dnstest"
)

var _ auth.Resolver = (*Resolver)(nil)

const testZone = `
$ORIGIN example.com.
$TTL 300
@       60 TXT  "v=spf1 -all"
@          MX   20 mx2
@          MX   10 mx1
mx1        A    192.0.2.1
mx2        A    192.0.2.2
mx2        AAAA 2001:db8::2
alias      CNAME mx1
alias2     CNAME alias
multi      TXT  "first" "second"
multi      TXT  "other record"
*.bl       A    127.0.0.2
1.2.0.192.in-addr.arpa. PTR mx1.example.com.
2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa. PTR mx2.example.com.
`

// clock is a settable time source for cache expiry.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newTest(t *testing.T, zone string, cfg Config) (*Resolver, *dnstest.Server, *clock) {
	t.Helper()
	srv := dnstest.StartServer(t, zone)
	clk := &clock{t: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)}
	if cfg.Servers == nil {
		cfg.Servers = []string{srv.Addr()}
	}
	cfg.Now = clk.now
	if cfg.Timeout == 0 {
		cfg.Timeout = 500 * time.Millisecond
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r, srv, clk
}

// countQueries counts the server's questions for name (any type).
func countQueries(srv *dnstest.Server, name string) int {
	n := 0
	for _, q := range srv.Queries() {
		if q.Name == name {
			n++
		}
	}
	return n
}

func TestLookups(t *testing.T) {
	r, _, _ := newTest(t, testZone, Config{})
	ctx := context.Background()

	txt, err := r.LookupTXT(ctx, "example.com")
	if err != nil || !cmp.Equal(txt, []string{"v=spf1 -all"}) {
		t.Errorf("TXT = %q, %v", txt, err)
	}
	txt, err = r.LookupTXT(ctx, "multi.example.com.")
	if err != nil || len(txt) != 2 || !strings.Contains(strings.Join(txt, "|"), "firstsecond") {
		t.Errorf("multi-string TXT = %q, %v", txt, err)
	}
	mx, err := r.LookupMX(ctx, "example.com.")
	if err != nil || len(mx) != 2 || mx[0].Host != "mx1.example.com." || mx[0].Pref != 10 || mx[1].Pref != 20 {
		t.Errorf("MX = %+v, %v", mx, err)
	}
	check := func(network, host string, want ...string) {
		t.Helper()
		ips, err := r.LookupNetIP(ctx, network, host)
		var got []string
		for _, ip := range ips {
			got = append(got, ip.String())
		}
		if err != nil || !cmp.Equal(got, want) {
			t.Errorf("LookupNetIP(%s, %s) = %v, %v; want %v", network, host, got, err, want)
		}
	}
	check("ip4", "mx1.example.com.", "192.0.2.1")
	check("ip", "mx2.example.com", "192.0.2.2", "2001:db8::2")
	check("ip6", "mx2.example.com", "2001:db8::2")
	check("ip4", "alias2.example.com", "192.0.2.1") // CNAME chain
	check("ip4", "2.0.0.127.bl.example.com", "127.0.0.2")
	check("ip", "192.0.2.99", "192.0.2.99")
	names, err := r.LookupAddr(ctx, "192.0.2.1")
	if err != nil || !cmp.Equal(names, []string{"mx1.example.com."}) {
		t.Errorf("PTR = %v, %v", names, err)
	}
	names, err = r.LookupAddr(ctx, "2001:db8::2")
	if err != nil || !cmp.Equal(names, []string{"mx2.example.com."}) {
		t.Errorf("PTR6 = %v, %v", names, err)
	}

	notFound := func(err error) bool {
		var de *net.DNSError
		return errors.As(err, &de) && de.IsNotFound && !de.IsTemporary
	}
	if _, err := r.LookupTXT(ctx, "nx.example.com"); !notFound(err) {
		t.Errorf("NXDOMAIN: %v", err)
	}
	if _, err := r.LookupTXT(ctx, "mx1.example.com"); !notFound(err) {
		t.Errorf("NODATA: %v", err)
	}
	if _, err := r.LookupNetIP(ctx, "ip6", "mx1.example.com"); !notFound(err) {
		t.Errorf("NODATA AAAA: %v", err)
	}
	if _, err := r.LookupTXT(ctx, "a..b.example.com"); !notFound(err) {
		t.Errorf("invalid name: %v", err)
	}
	if _, err := r.LookupTXT(ctx, strings.Repeat("a", 64)+".example.com"); !notFound(err) {
		t.Errorf("long label: %v", err)
	}
}

func TestTTLExpiry(t *testing.T) {
	r, srv, clk := newTest(t, testZone, Config{})
	ctx := context.Background()
	for range 3 {
		if _, err := r.LookupTXT(ctx, "example.com"); err != nil {
			t.Fatal(err)
		}
	}
	if n := countQueries(srv, "example.com."); n != 1 {
		t.Fatalf("%d queries for 3 lookups within the TTL", n)
	}
	clk.advance(59 * time.Second)
	r.LookupTXT(ctx, "example.com")
	if n := countQueries(srv, "example.com."); n != 1 {
		t.Fatalf("re-queried before the 60 s TTL ran out (%d)", n)
	}
	clk.advance(2 * time.Second)
	r.LookupTXT(ctx, "example.com")
	if n := countQueries(srv, "example.com."); n != 2 {
		t.Fatalf("%d queries after the TTL ran out, want 2", n)
	}
	// A CNAME answer expires with the shortest TTL in the chain.
	srv.AddRecords("short.example.com. 5 CNAME mx1.example.com.")
	r.LookupNetIP(ctx, "ip4", "short.example.com")
	clk.advance(6 * time.Second)
	r.LookupNetIP(ctx, "ip4", "short.example.com")
	if n := countQueries(srv, "short.example.com."); n != 2 {
		t.Errorf("CNAME answer cached past the alias TTL (%d queries)", n)
	}
}

func TestMaxTTL(t *testing.T) {
	r, srv, clk := newTest(t, "long.example. 604800 TXT \"x\"", Config{MaxTTL: time.Hour})
	ctx := context.Background()
	r.LookupTXT(ctx, "long.example")
	clk.advance(time.Hour + time.Second)
	r.LookupTXT(ctx, "long.example")
	if n := countQueries(srv, "long.example."); n != 2 {
		t.Errorf("%d queries, want 2 (MaxTTL caps a week-long TTL)", n)
	}
}

func TestNegativeCaching(t *testing.T) {
	r, srv, clk := newTest(t, testZone, Config{})
	srv.SetNegativeTTL(30 * time.Second)
	ctx := context.Background()
	r.LookupTXT(ctx, "nx.example.com")
	r.LookupTXT(ctx, "nx.example.com")
	r.LookupTXT(ctx, "mx1.example.com") // NODATA
	r.LookupTXT(ctx, "mx1.example.com")
	if n, m := countQueries(srv, "nx.example.com."), countQueries(srv, "mx1.example.com."); n != 1 || m != 1 {
		t.Fatalf("negative answers not cached: %d NXDOMAIN and %d NODATA queries", n, m)
	}
	clk.advance(31 * time.Second)
	r.LookupTXT(ctx, "nx.example.com")
	if n := countQueries(srv, "nx.example.com."); n != 2 {
		t.Fatalf("NXDOMAIN cached past the SOA minimum (%d queries)", n)
	}

	// The zone's own SOA decides (RFC 2308: min of TTL and MINIMUM), capped
	// by MaxNegativeTTL.
	zone := "$ORIGIN neg.example.\n@ 86400 SOA ns hostmaster 1 3600 600 86400 86400\n@ A 192.0.2.1\n"
	r, srv, clk = newTest(t, zone, Config{MaxNegativeTTL: 10 * time.Second})
	r.LookupTXT(ctx, "x.neg.example")
	clk.advance(9 * time.Second)
	r.LookupTXT(ctx, "x.neg.example")
	clk.advance(2 * time.Second)
	r.LookupTXT(ctx, "x.neg.example")
	if n := countQueries(srv, "x.neg.example."); n != 2 {
		t.Errorf("%d queries, want 2 (MaxNegativeTTL 10 s)", n)
	}
}

func TestTCPFallback(t *testing.T) {
	big := strings.Repeat("a", 200)
	zone := "big.example. TXT " + strings.Repeat(`"`+big+`" `, 10) + "\n" + // ~2 KB: over EDNS 1232
		"mid.example. TXT " + strings.Repeat(`"`+big+`" `, 3) + "\n" // ~600 B: over 512
	for _, tc := range []struct {
		name    string
		udpSize uint16
		want    int
	}{{"big.example", 0, 2000}, {"mid.example", 512, 600}, {"big.example", 4096, 2000}} {
		r, srv, _ := newTest(t, zone, Config{UDPSize: tc.udpSize})
		txt, err := r.LookupTXT(context.Background(), tc.name)
		if err != nil || len(txt) != 1 || len(txt[0]) != tc.want {
			t.Fatalf("%s with UDP size %d: %d records, err %v", tc.name, tc.udpSize, len(txt), err)
		}
		var nets []string
		for _, q := range srv.Queries() {
			nets = append(nets, q.Net)
		}
		want := []string{"udp", "tcp"}
		if tc.udpSize == 4096 {
			want = []string{"udp"} // fits the advertised EDNS0 size
		}
		if !cmp.Equal(nets, want) {
			t.Errorf("%s with UDP size %d: transports %v, want %v", tc.name, tc.udpSize, nets, want)
		}
	}
}

func TestServFail(t *testing.T) {
	r, srv, _ := newTest(t, testZone, Config{Attempts: 2})
	srv.ServFail("example.com.")
	ctx := context.Background()
	for range 2 {
		_, err := r.LookupTXT(ctx, "example.com")
		var de *net.DNSError
		if !errors.As(err, &de) || !de.IsTemporary || de.IsNotFound || de.Name != "example.com" {
			t.Fatalf("SERVFAIL gave %#v", err)
		}
	}
	if n := countQueries(srv, "example.com."); n != 4 {
		t.Errorf("%d queries, want 4 (2 attempts, failures not cached)", n)
	}
	srv.Heal("example.com.")
	if _, err := r.LookupTXT(ctx, "example.com"); err != nil {
		t.Errorf("after Heal: %v", err)
	}
	srv.ServFail("TXT mx1.example.com.")
	if _, err := r.LookupNetIP(ctx, "ip4", "mx1.example.com"); err != nil {
		t.Errorf("type-specific SERVFAIL hit A: %v", err)
	}
}

func TestTimeout(t *testing.T) {
	r, srv, _ := newTest(t, testZone, Config{Timeout: 100 * time.Millisecond, Attempts: 2})
	srv.Timeout("example.com.")
	start := time.Now()
	_, err := r.LookupTXT(context.Background(), "example.com")
	took := time.Since(start)
	var de *net.DNSError
	if !errors.As(err, &de) || !de.IsTimeout || !de.IsTemporary {
		t.Fatalf("timeout gave %#v", err)
	}
	if took < 150*time.Millisecond || took > time.Second {
		t.Errorf("took %v, want about 2 × 100 ms", took)
	}
	// The caller's context bounds the wait too.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, err := r.LookupTXT(ctx, "example.com"); err == nil || time.Since(start) > 150*time.Millisecond {
		t.Errorf("context deadline ignored: %v after %v", err, time.Since(start))
	}
}

func TestRetryNextServer(t *testing.T) {
	silent, err := net.ListenPacket("udp", "127.0.0.1:0") // never answers
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	srv := dnstest.StartServer(t, testZone)
	r, err := New(Config{Servers: []string{silent.LocalAddr().String(), srv.Addr()}, Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	txt, err := r.LookupTXT(context.Background(), "example.com")
	if err != nil || len(txt) != 1 {
		t.Errorf("second server not used: %v %v", txt, err)
	}
}

func TestCacheBounds(t *testing.T) {
	r, srv, _ := newTest(t, testZone, Config{CacheSize: 5})
	ctx := context.Background()
	for i := range 20 {
		if _, err := r.LookupNetIP(ctx, "ip4", "h"+string(rune('a'+i))+".bl.example.com"); err != nil {
			t.Fatal(err)
		}
	}
	if n := r.cache.len(); n != 5 {
		t.Errorf("cache holds %d entries, want 5", n)
	}
	r.LookupNetIP(ctx, "ip4", "ht.bl.example.com") // most recent: cached
	r.LookupNetIP(ctx, "ip4", "ha.bl.example.com") // evicted: asked again
	if a, t2 := countQueries(srv, "ha.bl.example.com."), countQueries(srv, "ht.bl.example.com."); a != 2 || t2 != 1 {
		t.Errorf("queries: evicted name %d (want 2), recent name %d (want 1)", a, t2)
	}

	// The byte bound holds with few but large answers.
	zone := ""
	for i := range 10 {
		zone += "t" + string(rune('a'+i)) + ".example. TXT \"" + strings.Repeat("x", 200) + "\"\n"
	}
	r, _, _ = newTest(t, zone, Config{CacheBytes: 1000})
	for i := range 10 {
		r.LookupTXT(ctx, "t"+string(rune('a'+i))+".example")
	}
	if r.cache.bytes > 1000 || r.cache.len() > 4 {
		t.Errorf("cache holds %d bytes in %d entries, bound 1000 bytes", r.cache.bytes, r.cache.len())
	}
	r, srv, _ = newTest(t, testZone, Config{CacheSize: -1})
	r.LookupTXT(ctx, "example.com")
	r.LookupTXT(ctx, "example.com")
	if n := countQueries(srv, "example.com."); n != 2 {
		t.Errorf("disabled cache: %d queries, want 2", n)
	}
}

func TestConcurrentLookupsShareOneQuery(t *testing.T) {
	r, srv, _ := newTest(t, testZone, Config{})
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := r.LookupMX(context.Background(), "example.com"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := countQueries(srv, "example.com."); n != 1 {
		t.Errorf("%d queries for 20 concurrent lookups, want 1", n)
	}
}

func TestResolvConf(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(path, []byte("# test\nnameserver 127.0.0.1\nnameserver ::1\nsearch example.com\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{ResolvConf: path})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Servers(); !cmp.Equal(got, []string{"127.0.0.1:53", "[::1]:53"}) {
		t.Errorf("servers = %v", got)
	}
	if _, err := New(Config{ResolvConf: filepath.Join(dir, "missing")}); err == nil {
		t.Error("missing resolv.conf accepted")
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("search example.com\n"), 0o600)
	if _, err := New(Config{ResolvConf: empty}); err == nil {
		t.Error("resolv.conf without nameserver accepted")
	}
	for _, bad := range []string{"example", "1.2.3.4:0", "1.2.3.4:x", ":53"} {
		if _, err := New(Config{Servers: []string{bad}}); err == nil {
			t.Errorf("server %q accepted", bad)
		}
	}
	if r, err := New(Config{Servers: []string{"192.0.2.53"}}); err != nil || r.Servers()[0] != "192.0.2.53:53" {
		t.Errorf("bare address: %v %v", r, err)
	}
}

func TestQueryName(t *testing.T) {
	for in, want := range map[string]string{
		"example.com":                  "example.com.",
		"example.com.":                 "example.com.",
		"macro%percent  space.example": `macro%percent\032\032space.example.`,
		`a\b.example`:                  `a\092b.example.`,
	} {
		if got, ok := queryName(in); !ok || got != want {
			t.Errorf("queryName(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	// An escaped name reaches the server as the raw bytes.
	r, _, _ := newTest(t, `macro\037percent\032\032space.example. A 192.0.2.7`, Config{})
	ips, err := r.LookupNetIP(context.Background(), "ip4", "macro%percent  space.example")
	if err != nil || len(ips) != 1 || ips[0] != netip.MustParseAddr("192.0.2.7") {
		t.Errorf("escaped name: %v %v", ips, err)
	}
}

// BenchmarkLookupCached measures a cache hit (the common case for SPF,
// DMARC and DNSBL lookups of repeat senders).
func BenchmarkLookupCached(b *testing.B) {
	srv := dnstest.StartServer(b, testZone)
	r, err := New(Config{Servers: []string{srv.Addr()}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := r.LookupNetIP(ctx, "ip4", "2.0.0.127.bl.example.com"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		r.LookupNetIP(ctx, "ip4", "2.0.0.127.bl.example.com")
	}
}
