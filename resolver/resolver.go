// Package resolver is mailguard's DNS stub resolver: it asks configured
// recursive servers (dns.servers, or the nameservers of /etc/resolv.conf)
// over UDP with TCP fallback on truncation, with a per-query timeout and
// retries across servers, and keeps a bounded LRU cache that honours TTLs
// and caches negative answers (RFC 2308). It satisfies auth.Resolver and
// offers LookupNetIP for DNSBL-style queries.
//
// It owns DNS transport and caching only; it knows nothing of SPF, DKIM,
// DMARC or reputation lists, and logs nothing.
//
// Errors are *net.DNSError, like the standard library's: IsNotFound for
// NXDOMAIN and for a name without records of the asked type (NODATA),
// IsTemporary for SERVFAIL, REFUSED and other server failures, IsTimeout
// (and IsTemporary) when no server answered in time.
package resolver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sync/singleflight"
)

// Defaults of the Config fields.
const (
	DefaultTimeout        = 2 * time.Second
	DefaultAttempts       = 3
	DefaultUDPSize        = 1232 // EDNS0 buffer size (DNS flag day 2020)
	DefaultCacheSize      = 10000
	DefaultCacheBytes     = 16 << 20
	DefaultMaxTTL         = 24 * time.Hour
	DefaultMaxNegativeTTL = time.Hour
	DefaultResolvConf     = "/etc/resolv.conf"
)

// Config configures a Resolver. Every zero value means the documented
// default.
type Config struct {
	// Servers are recursive resolvers as "host:port" (port 53 if
	// omitted), tried in order. Empty means the nameservers of ResolvConf.
	Servers []string
	// ResolvConf is read when Servers is empty; "" means /etc/resolv.conf.
	ResolvConf string
	// Timeout bounds one attempt (one server, UDP plus TCP retry).
	Timeout time.Duration
	// Attempts is the number of tries per query, cycling through Servers.
	Attempts int
	// UDPSize is the EDNS0 buffer size advertised; 512 disables EDNS0.
	UDPSize uint16
	// CacheSize is the maximum number of cached answers; negative
	// disables the cache.
	CacheSize int
	// CacheBytes bounds the memory the cached answers hold (estimated).
	CacheBytes int
	// MaxTTL caps how long a positive answer is cached.
	MaxTTL time.Duration
	// MaxNegativeTTL caps how long NXDOMAIN/NODATA is cached.
	MaxNegativeTTL time.Duration
	// Now is the clock of the cache; nil means time.Now.
	Now func() time.Time
}

// Resolver is a caching DNS stub resolver, safe for concurrent use.
type Resolver struct {
	servers  []string
	timeout  time.Duration
	attempts int
	udpSize  uint16
	now      func() time.Time
	cache    *cache
	flight   singleflight.Group
}

// New returns a Resolver for cfg.
func New(cfg Config) (*Resolver, error) {
	r := &Resolver{
		timeout: orDefault(cfg.Timeout, DefaultTimeout), attempts: orDefault(cfg.Attempts, DefaultAttempts),
		udpSize: orDefault(cfg.UDPSize, DefaultUDPSize), now: cfg.Now,
	}
	if r.now == nil {
		r.now = time.Now
	}
	servers := cfg.Servers
	if len(servers) == 0 {
		var err error
		if servers, err = readResolvConf(orDefault(cfg.ResolvConf, DefaultResolvConf)); err != nil {
			return nil, err
		}
	}
	for _, s := range servers {
		addr, err := serverAddr(s)
		if err != nil {
			return nil, err
		}
		r.servers = append(r.servers, addr)
	}
	if cfg.CacheSize >= 0 {
		r.cache = newCache(orDefault(cfg.CacheSize, DefaultCacheSize), orDefault(cfg.CacheBytes, DefaultCacheBytes),
			orDefault(cfg.MaxTTL, DefaultMaxTTL), orDefault(cfg.MaxNegativeTTL, DefaultMaxNegativeTTL))
	}
	return r, nil
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func readResolvConf(path string) ([]string, error) {
	conf, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("resolver: read %s: %w", path, err)
	}
	if len(conf.Servers) == 0 {
		return nil, fmt.Errorf("resolver: no nameserver in %s", path)
	}
	out := make([]string, 0, len(conf.Servers))
	for _, s := range conf.Servers {
		out = append(out, net.JoinHostPort(s, conf.Port))
	}
	return out, nil
}

// serverAddr validates "host:port" or a bare IP address (port 53).
func serverAddr(s string) (string, error) {
	if ip, err := netip.ParseAddr(s); err == nil {
		return net.JoinHostPort(ip.String(), "53"), nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return "", fmt.Errorf("resolver: server %q: want host:port", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return "", fmt.Errorf("resolver: server %q: bad port", s)
	}
	return s, nil
}

// Servers returns the servers the Resolver asks, as "host:port".
func (r *Resolver) Servers() []string { return slices.Clone(r.servers) }

// LookupTXT returns the TXT records of name, each record's strings joined.
func (r *Resolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	a, err := r.query(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	return slices.Clone(a.txt), nil
}

// LookupNetIP returns the addresses of host: network "ip4" asks A, "ip6"
// AAAA, "ip" both. An IP literal is returned without a query.
func (r *Resolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip}, nil
	}
	var types []uint16
	switch network {
	case "ip4":
		types = []uint16{dns.TypeA}
	case "ip6":
		types = []uint16{dns.TypeAAAA}
	case "ip":
		types = []uint16{dns.TypeA, dns.TypeAAAA}
	default:
		return nil, &net.DNSError{Err: "unsupported network " + network, Name: host}
	}
	var out []netip.Addr
	var errs []error
	for _, t := range types {
		a, err := r.query(ctx, host, t)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, a.ips...)
	}
	if len(out) > 0 {
		return out, nil
	}
	// Prefer a temporary error over "not found": one family may exist.
	for _, err := range errs {
		var de *net.DNSError
		if errors.As(err, &de) && !de.IsNotFound {
			return nil, err
		}
	}
	return nil, errs[0]
}

// LookupMX returns the MX records of name sorted by preference.
func (r *Resolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	a, err := r.query(ctx, name, dns.TypeMX)
	if err != nil {
		return nil, err
	}
	out := make([]*net.MX, len(a.mx))
	for i, mx := range a.mx {
		out[i] = &net.MX{Host: mx.Host, Pref: mx.Pref}
	}
	return out, nil
}

// LookupAddr returns the PTR names of an IP address.
func (r *Resolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return nil, &net.DNSError{Err: "unrecognized address", Name: addr}
	}
	rev, err := dns.ReverseAddr(ip.Unmap().String())
	if err != nil {
		return nil, &net.DNSError{Err: "unrecognized address", Name: addr}
	}
	a, err := r.query(ctx, rev, dns.TypePTR)
	if err != nil {
		return nil, err
	}
	return slices.Clone(a.ptr), nil
}

// query answers name/qtype from the cache or the servers. Concurrent
// identical queries share one exchange.
func (r *Resolver) query(ctx context.Context, name string, qtype uint16) (*answer, error) {
	qname, ok := queryName(name)
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	key := strings.ToLower(qname) + "/" + dns.TypeToString[qtype]
	if a, ok := r.cached(key); ok {
		return a, a.err(name)
	}
	if err := ctx.Err(); err != nil {
		return nil, &net.DNSError{Err: err.Error(), Name: name, IsTimeout: true, IsTemporary: true}
	}
	ch := r.flight.DoChan(key, func() (any, error) {
		// The exchange outlives a caller that gives up: others may wait.
		c, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Duration(r.attempts)*r.timeout)
		defer cancel()
		a, err := r.resolve(c, qname, qtype, 0)
		if err == nil && r.cache != nil {
			r.cache.put(key, a, r.now())
		}
		return a, err
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, withName(res.Err, name)
		}
		a := res.Val.(*answer)
		return a, a.err(name)
	case <-ctx.Done():
		return nil, &net.DNSError{Err: ctx.Err().Error(), Name: name, IsTimeout: true, IsTemporary: true}
	}
}

func (r *Resolver) cached(key string) (*answer, bool) {
	if r.cache == nil {
		return nil, false
	}
	return r.cache.get(key, r.now())
}

// withName returns err with the name the caller asked for.
func withName(err error, name string) error {
	var de *net.DNSError
	if errors.As(err, &de) {
		c := *de
		c.Name = name
		return &c
	}
	return err
}

// queryName turns name into a fully qualified, escaped query name; ok is
// false for names DNS cannot carry (empty labels, over 63/253 octets).
func queryName(name string) (string, bool) {
	name = strings.TrimSuffix(name, ".")
	if name == "" || len(name) > 253 {
		return "", false
	}
	var b strings.Builder
	for i, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 {
			return "", false
		}
		if i > 0 {
			b.WriteByte('.')
		}
		for j := 0; j < len(label); j++ {
			switch c := label[j]; {
			case c == '\\' || c == '"' || c == '(' || c == ')' || c == ';' || c == '@' || c == '$' ||
				c <= ' ' || c >= 0x7f:
				fmt.Fprintf(&b, "\\%03d", c)
			default:
				b.WriteByte(c)
			}
		}
	}
	b.WriteByte('.')
	return b.String(), true
}
