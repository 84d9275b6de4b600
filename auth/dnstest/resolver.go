// Package dnstest holds DNS test doubles for the packages that check sender
// authentication and reputation: Resolver, an in-memory fake of
// auth.Resolver for unit tests, and Server, a real DNS server on loopback
// that serves a zone written as RFC 1035 master-file text, for tests that
// must go through real DNS (the resolver package, end-to-end tests with the
// gateway's dns.servers pointed at it).
//
// It owns nothing of SPF, DKIM or DMARC and shares no types with the code it
// stands in for, so a test cannot pass because fake and real code agree on
// the same mistake.
package dnstest

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Resolver is an in-memory DNS fake that satisfies auth.Resolver. Its maps
// are keyed by domain name; keys may be written with or without the
// trailing dot and in any case. The zero value answers NXDOMAIN for
// everything. Fill the maps before the first lookup; a Resolver is safe for
// concurrent lookups as long as the maps are not written at the same time.
//
//	r := &dnstest.Resolver{
//		TXT: map[string][]string{"example.com.": {"v=spf1 mx -all"}},
//		MX:  map[string][]*net.MX{"example.com.": {{Host: "mx.example.com.", Pref: 10}}},
//		A:   map[string][]string{"mx.example.com.": {"192.0.2.1"}},
//		Temporary: []string{"txt flaky.example."},
//	}
type Resolver struct {
	// TXT holds TXT records; each string is one record with its
	// character-strings already joined, as net.Resolver returns them.
	TXT map[string][]string
	// A and AAAA hold addresses as text ("192.0.2.1", "2001:db8::1").
	A    map[string][]string
	AAAA map[string][]string
	// MX holds mail exchangers; Host "." is a null MX (RFC 7505).
	MX map[string][]*net.MX
	// PTR holds reverse names. A key is either an IP address
	// ("192.0.2.1", "2001:db8::1") or a reverse name
	// ("1.2.0.192.in-addr.arpa."); values are host names.
	PTR map[string][]string
	// CNAME maps an alias to its target. Lookups of every type follow it,
	// as a recursive resolver does; a loop is a temporary error (SERVFAIL).
	CNAME map[string]string

	// Temporary lists names whose lookups fail with
	// *net.DNSError{IsTemporary: true} (a SERVFAIL or timeout). An entry is
	// either "name." (every type) or "type name." with type one of txt, a,
	// aaaa, mx, ptr (for ptr the name is the reverse name or the address).
	Temporary []string
	// NotFound lists names (same syntax as Temporary) that answer
	// *net.DNSError{IsNotFound: true} even if the maps hold records.
	NotFound []string

	mu      sync.Mutex
	queries []string
}

// Queries returns the lookups made so far, in order, each as
// "type name." (for example "txt example.com." or "ptr 192.0.2.1").
func (r *Resolver) Queries() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.queries)
}

// ResetQueries forgets the recorded lookups.
func (r *Resolver) ResetQueries() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queries = nil
}

func (r *Resolver) record(typ, name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queries = append(r.queries, typ+" "+name)
}

// LookupTXT returns the TXT records of name.
func (r *Resolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	var out []string
	err := r.lookup(ctx, "txt", name, func(n string) bool {
		recs, _ := find(r.TXT, n)
		out = slices.Clone(recs)
		return len(out) > 0
	})
	return out, err
}

// LookupNetIP returns the addresses of host; network is "ip", "ip4" or
// "ip6". An IP literal is returned as is, without a lookup.
func (r *Resolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip}, nil
	}
	var types []string
	switch network {
	case "ip":
		types = []string{"a", "aaaa"}
	case "ip4":
		types = []string{"a"}
	case "ip6":
		types = []string{"aaaa"}
	default:
		return nil, &net.DNSError{Err: "unsupported network " + network, Name: host}
	}
	var out []netip.Addr
	var firstErr error
	for _, typ := range types {
		m := r.A
		if typ == "aaaa" {
			m = r.AAAA
		}
		var addrs []netip.Addr
		err := r.lookup(ctx, typ, host, func(n string) bool {
			recs, _ := find(m, n)
			addrs = addrs[:0]
			for _, s := range recs {
				if ip, err := netip.ParseAddr(s); err == nil {
					addrs = append(addrs, ip)
				}
			}
			return len(addrs) > 0
		})
		if err != nil && firstErr == nil {
			firstErr = err
		}
		out = append(out, addrs...)
	}
	if len(out) > 0 {
		return out, nil
	}
	return nil, firstErr
}

// LookupMX returns the MX records of name, in the order given.
func (r *Resolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	var out []*net.MX
	err := r.lookup(ctx, "mx", name, func(n string) bool {
		recs, _ := find(r.MX, n)
		out = out[:0]
		for _, mx := range recs {
			out = append(out, &net.MX{Host: fqdn(mx.Host), Pref: mx.Pref})
		}
		return len(out) > 0
	})
	return out, err
}

// LookupAddr returns the PTR names of addr, in the order given.
func (r *Resolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return nil, &net.DNSError{Err: "unrecognized address", Name: addr}
	}
	ip = ip.Unmap()
	rev := reverseName(ip)
	r.record("ptr", ip.String())
	if err := ctx.Err(); err != nil {
		return nil, &net.DNSError{Err: err.Error(), Name: addr, IsTimeout: true, IsTemporary: true}
	}
	if listed(r.Temporary, "ptr", ip.String()) || listed(r.Temporary, "ptr", rev) {
		return nil, temporary(addr)
	}
	if listed(r.NotFound, "ptr", ip.String()) || listed(r.NotFound, "ptr", rev) {
		return nil, notFound(addr)
	}
	for k, names := range r.PTR {
		if keyIP, err := netip.ParseAddr(k); err == nil {
			if keyIP.Unmap() != ip {
				continue
			}
		} else if !strings.EqualFold(fqdn(k), rev) {
			continue
		}
		out := make([]string, 0, len(names))
		for _, n := range names {
			out = append(out, fqdn(n))
		}
		if len(out) == 0 {
			break
		}
		return out, nil
	}
	return nil, notFound(addr)
}

// lookup resolves name through CNAMEs and calls get with each name of the
// chain until get reports records. It applies the Temporary and NotFound
// lists and records the query.
func (r *Resolver) lookup(ctx context.Context, typ, name string, get func(string) bool) error {
	n := fqdn(name)
	r.record(typ, n)
	if err := ctx.Err(); err != nil {
		return &net.DNSError{Err: err.Error(), Name: name, IsTimeout: true, IsTemporary: true}
	}
	seen := map[string]bool{}
	for {
		if listed(r.Temporary, typ, n) {
			return temporary(name)
		}
		if listed(r.NotFound, typ, n) {
			return notFound(name)
		}
		if get(n) {
			return nil
		}
		target, ok := find(r.CNAME, n)
		if !ok {
			return notFound(name)
		}
		seen[n] = true
		n = fqdn(target)
		if seen[n] || len(seen) > 8 {
			return &net.DNSError{Err: "cname loop", Name: name, IsTemporary: true}
		}
	}
}

// find looks name up in m, first exactly, then ignoring case and the
// trailing dot of the keys.
func find[V any](m map[string]V, name string) (V, bool) {
	if v, ok := m[name]; ok {
		return v, true
	}
	for k, v := range m {
		if strings.EqualFold(fqdn(k), name) {
			return v, true
		}
	}
	var zero V
	return zero, false
}

// listed reports whether name (fully qualified) or "typ name" is in list.
func listed(list []string, typ, name string) bool {
	for _, e := range list {
		t, n, ok := strings.Cut(e, " ")
		if !ok {
			t, n = "", e
		}
		if t != "" && !strings.EqualFold(t, typ) {
			continue
		}
		if strings.EqualFold(fqdn(n), fqdn(name)) || strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}

func fqdn(s string) string {
	if strings.HasSuffix(s, ".") {
		return strings.ToLower(s)
	}
	return strings.ToLower(s) + "."
}

func temporary(name string) error {
	return &net.DNSError{Err: "server misbehaving", Name: name, IsTemporary: true}
}

func notFound(name string) error {
	return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

// reverseName returns the in-addr.arpa or ip6.arpa name of ip, lower case,
// with the trailing dot.
func reverseName(ip netip.Addr) string {
	var b strings.Builder
	if ip.Is4() {
		a := ip.As4()
		for i := 3; i >= 0; i-- {
			b.WriteString(strconv.Itoa(int(a[i])))
			b.WriteByte('.')
		}
		b.WriteString("in-addr.arpa.")
		return b.String()
	}
	const hex = "0123456789abcdef"
	a := ip.As16()
	for i := 15; i >= 0; i-- {
		b.WriteByte(hex[a[i]&0xf])
		b.WriteByte('.')
		b.WriteByte(hex[a[i]>>4])
		b.WriteByte('.')
	}
	b.WriteString("ip6.arpa.")
	return b.String()
}
