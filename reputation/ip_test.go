package reputation

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mailguard/mailguard/auth/dnstest"
)

// listsResolver is a fake with a few DNS lists: 192.0.2.99 and
// 2001:db8::99 are on zen (with a TXT reason) and on a list that only
// says 127.0.0.4; 198.51.100.7 is on the allow list.
func listsResolver() *dnstest.Resolver {
	return &dnstest.Resolver{
		A: map[string][]string{
			"99.2.0.192.zen.example.":     {"127.0.0.2", "127.0.0.4"},
			"99.2.0.192.pbl.example.":     {"127.0.0.10"},
			"99.2.0.192.codes.example.":   {"127.0.0.4"},
			"7.100.51.198.dnswl.example.": {"127.0.15.2"},
			"99.2.0.192.public.example.":  {"127.255.255.254"},
			"8.2.0.192.zen.example.":      {"127.0.0.3"},
			"9.9.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.zen.example.": {"127.0.0.3"},
		},
		TXT: map[string][]string{
			"99.2.0.192.zen.example.": {"Listed: see https://zen.example/query/ip/192.0.2.99\x07"},
		},
		Temporary: []string{"99.2.0.192.broken.example."},
	}
}

func TestCheckIPListedIPv4(t *testing.T) {
	c := &Checker{Resolver: listsResolver(), TXT: true, IPZones: []Zone{
		{Name: "zen.example", Weight: 3},
		{Name: "pbl.example", Filter: "127.0.0.[2..9]"}, // excludes 127.0.0.10
		{Name: "codes.example", Filter: "127.0.0.[2;3]"},
		{Name: "dnswl.example", Weight: -5, Filter: "127.0.[0..255].[1..3]"},
	}}
	got := c.CheckIP(context.Background(), netip.MustParseAddr("192.0.2.99"))
	want := IPResult{
		Score: 3,
		Listed: []Listing{{Zone: "zen.example", Codes: []string{"127.0.0.2", "127.0.0.4"}, Weight: 3,
			Reason: "Listed: see https://zen.example/query/ip/192.0.2.99 "}},
		Checked: 4,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("CheckIP (-want +got):\n%s", diff)
	}
	f := got.Findings()
	if len(f) != 1 || f[0].Tag != "ip_blocklisted" || !strings.Contains(f[0].Detail, "zen.example (127.0.0.2, 127.0.0.4: Listed") {
		t.Errorf("Findings = %+v", f)
	}
}

func TestCheckIPListedIPv6AndMapped(t *testing.T) {
	c := &Checker{Resolver: listsResolver(), IPZones: []Zone{{Name: "zen.example"}}}
	got := c.CheckIP(context.Background(), netip.MustParseAddr("2001:db8::99"))
	if got.Score != 1 || len(got.Listed) != 1 || got.Listed[0].Codes[0] != "127.0.0.3" {
		t.Errorf("IPv6: %+v", got)
	}
	got = c.CheckIP(context.Background(), netip.MustParseAddr("::ffff:192.0.2.8"))
	if got.Score != 1 || len(got.Listed) != 1 {
		t.Errorf("IPv4-mapped: %+v", got)
	}
}

func TestCheckIPAllowListWins(t *testing.T) {
	c := &Checker{Resolver: listsResolver(), IPZones: []Zone{
		{Name: "zen.example", Weight: 2},
		{Name: "dnswl.example", Weight: -5, Filter: "127.0.[0..255].[1..3]"},
	}}
	got := c.CheckIP(context.Background(), netip.MustParseAddr("198.51.100.7"))
	if got.Score != -5 || len(got.Listed) != 1 || got.Listed[0].Zone != "dnswl.example" {
		t.Errorf("CheckIP = %+v", got)
	}
	if f := got.Findings(); f != nil {
		t.Errorf("an allow-listed client has findings %v", f)
	}
}

func TestCheckIPErrorsAreSkippedAndCounted(t *testing.T) {
	c := &Checker{Resolver: listsResolver(), IPZones: []Zone{
		{Name: "zen.example"},
		{Name: "public.example"}, // answers 127.255.255.254
		{Name: "broken.example"}, // SERVFAIL
		{Name: "bad.example", Filter: "127.0.0"},
	}}
	got := c.CheckIP(context.Background(), netip.MustParseAddr("192.0.2.99"))
	if got.Score != 1 || got.Checked != 4 || got.Failed != 3 || len(got.Errors) != 3 {
		t.Fatalf("CheckIP = %+v", got)
	}
	joined := strings.Join(got.Errors, "\n")
	for _, want := range []string{"public.example: list refused the query (127.255.255.254)", "broken.example:", "bad.example"} {
		if !strings.Contains(joined, want) {
			t.Errorf("errors %q lack %q", joined, want)
		}
	}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "bad.example") {
		t.Errorf("Validate = %v", err)
	}
}

func TestCheckIPSkips(t *testing.T) {
	r := listsResolver()
	c := &Checker{Resolver: r, IPZones: []Zone{{Name: "zen.example"}},
		Skip: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}
	for ip, want := range map[string]string{
		"192.0.2.99": "allow-listed network",
		"10.1.2.3":   "non-public address",
		"127.0.0.2":  "non-public address",
		"fe80::1":    "non-public address",
		"100.64.1.1": "non-public address",
		"fd00::1":    "non-public address",
	} {
		if got := c.CheckIP(context.Background(), netip.MustParseAddr(ip)); got.Skipped != want || got.Checked != 0 {
			t.Errorf("CheckIP(%s) = %+v, want skipped %q", ip, got, want)
		}
	}
	if got := c.CheckIP(context.Background(), netip.Addr{}); got.Skipped != "invalid address" {
		t.Errorf("invalid address: %+v", got)
	}
	if q := r.Queries(); len(q) != 0 {
		t.Errorf("skipped checks made queries %v", q)
	}
}

// stallingResolver never answers and ignores the context, like a broken
// resolver implementation; the checker must not wait for it.
type stallingResolver struct {
	Resolver
	stall map[string]bool // zones that stall
	block chan struct{}
}

func (s *stallingResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	for z := range s.stall {
		if strings.HasSuffix(host, "."+z+".") {
			<-s.block
		}
	}
	return s.Resolver.LookupNetIP(ctx, network, host)
}

func TestCheckIPDeadZoneBoundedByTimeout(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	r := &stallingResolver{Resolver: listsResolver(), stall: map[string]bool{"dead.example": true}, block: block}
	c := &Checker{Resolver: r, Timeout: 2 * time.Second, IPZones: []Zone{
		{Name: "zen.example"},
		{Name: "dead.example", Timeout: 150 * time.Millisecond},
	}}
	start := time.Now()
	got := c.CheckIP(context.Background(), netip.MustParseAddr("192.0.2.99"))
	took := time.Since(start)
	if took < 150*time.Millisecond || took > 600*time.Millisecond {
		t.Errorf("CheckIP took %v with a 150ms zone timeout", took)
	}
	if got.Score != 1 || got.Failed != 1 || !strings.Contains(strings.Join(got.Errors, ""), "dead.example: timeout after 150ms") {
		t.Errorf("CheckIP = %+v", got)
	}
}
