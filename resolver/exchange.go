package resolver

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// maxCNAMEQueries bounds the extra queries made to finish a CNAME chain a
// server left incomplete.
const maxCNAMEQueries = 8

// answer is a parsed, cacheable response to one question.
type answer struct {
	notFound bool // NXDOMAIN or NODATA
	nxdomain bool
	ttl      time.Duration // how long it may be cached; 0: not at all
	txt      []string
	ips      []netip.Addr
	mx       []*net.MX
	ptr      []string
}

// err returns the error a negative answer stands for.
func (a *answer) err(name string) error {
	if !a.notFound {
		return nil
	}
	return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

// size estimates the memory an answer holds, for the cache bound.
func (a *answer) size() int {
	n := 64
	for _, s := range a.txt {
		n += len(s) + 16
	}
	n += 24 * len(a.ips)
	for _, mx := range a.mx {
		n += len(mx.Host) + 32
	}
	for _, s := range a.ptr {
		n += len(s) + 16
	}
	return n
}

// resolve asks the servers, parses the response and finishes a CNAME chain
// the server did not (depth counts those extra queries).
func (r *Resolver) resolve(ctx context.Context, qname string, qtype uint16, depth int) (*answer, error) {
	resp, err := r.exchange(ctx, qname, qtype)
	if err != nil {
		return nil, err
	}
	a, next := parse(resp, qname, qtype)
	if next == "" {
		return a, nil
	}
	if depth >= maxCNAMEQueries {
		return nil, &net.DNSError{Err: "cname chain too long", Name: qname, IsTemporary: true}
	}
	b, err := r.resolve(ctx, next, qtype, depth+1)
	if err != nil {
		return nil, err
	}
	b.ttl = min(b.ttl, a.ttl) // the alias may expire first
	return b, nil
}

// exchange sends the question to the servers in turn until one gives a
// usable answer (NOERROR or NXDOMAIN), at most r.attempts times.
func (r *Resolver) exchange(ctx context.Context, qname string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(qname, qtype)
	m.RecursionDesired = true
	if r.udpSize > dns.MinMsgSize {
		m.SetEdns0(r.udpSize, false)
	}
	var lastErr error
	timeouts := 0
	for i := 0; i < r.attempts; i++ {
		if ctx.Err() != nil {
			break
		}
		server := r.servers[i%len(r.servers)]
		resp, err := r.exchangeOne(ctx, m, server)
		switch {
		case err != nil:
			lastErr = err
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
				timeouts++
			}
		case resp.Rcode == dns.RcodeSuccess || resp.Rcode == dns.RcodeNameError:
			return resp, nil
		default:
			lastErr = &net.DNSError{Err: "server answered " + dns.RcodeToString[resp.Rcode], Server: server,
				IsTemporary: true}
		}
	}
	if lastErr == nil || timeouts > 0 && timeouts == r.attempts || ctx.Err() != nil {
		return nil, &net.DNSError{Err: "i/o timeout", Name: qname, IsTimeout: true, IsTemporary: true}
	}
	var de *net.DNSError
	if errors.As(lastErr, &de) {
		return nil, lastErr
	}
	return nil, &net.DNSError{Err: lastErr.Error(), Name: qname, IsTemporary: true}
}

// exchangeOne asks one server over UDP, and over TCP if the answer was
// truncated, within r.timeout.
func (r *Resolver) exchangeOne(ctx context.Context, m *dns.Msg, server string) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	q := m.Copy()
	q.Id = dns.Id()
	c := &dns.Client{Net: "udp", UDPSize: max(r.udpSize, dns.MinMsgSize), Timeout: r.timeout}
	resp, _, err := c.ExchangeContext(ctx, q, server)
	if err == nil && resp.Truncated {
		c = &dns.Client{Net: "tcp", Timeout: r.timeout}
		resp, _, err = c.ExchangeContext(ctx, q, server)
	}
	if err != nil {
		return nil, err
	}
	if len(resp.Question) != 1 || !sameName(resp.Question[0].Name, q.Question[0].Name) ||
		resp.Question[0].Qtype != q.Question[0].Qtype {
		return nil, &net.DNSError{Err: "answer to another question", Server: server, IsTemporary: true}
	}
	return resp, nil
}

// parse extracts the records for qname/qtype from resp, following the
// CNAME chain in the answer section. next is the name to ask next when the
// chain ends in a CNAME the server did not resolve.
func parse(resp *dns.Msg, qname string, qtype uint16) (a *answer, next string) {
	a = &answer{}
	ttl := uint32(1<<32 - 1)
	target := resp.Question[0].Name    // exchangeOne checked it is qname
	for hops := 0; hops < 16; hops++ { // the CNAME chain inside the answer
		found := false
		for _, rr := range resp.Answer {
			if c, ok := rr.(*dns.CNAME); ok && qtype != dns.TypeCNAME && sameName(c.Hdr.Name, target) {
				target, ttl, found = c.Target, min(ttl, c.Hdr.Ttl), true
				break
			}
		}
		if !found {
			break
		}
	}
	for _, rr := range resp.Answer {
		h := rr.Header()
		if h.Rrtype != qtype || !sameName(h.Name, target) {
			continue
		}
		ttl = min(ttl, h.Ttl)
		a.add(rr)
	}
	if a.empty() {
		if resp.Rcode == dns.RcodeSuccess && !sameName(target, qname) && !hasSOA(resp) {
			return a, target // a dangling CNAME: ask for its target
		}
		a.notFound, a.nxdomain = true, resp.Rcode == dns.RcodeNameError
		a.ttl = negativeTTL(resp)
		return a, ""
	}
	a.ttl = time.Duration(ttl) * time.Second
	slices.SortStableFunc(a.mx, func(x, y *net.MX) int { return int(x.Pref) - int(y.Pref) })
	return a, ""
}

func (a *answer) add(rr dns.RR) {
	switch rr := rr.(type) {
	case *dns.TXT:
		a.txt = append(a.txt, strings.Join(rr.Txt, ""))
	case *dns.A:
		if ip, ok := netip.AddrFromSlice(rr.A); ok {
			a.ips = append(a.ips, ip.Unmap())
		}
	case *dns.AAAA:
		if ip, ok := netip.AddrFromSlice(rr.AAAA); ok {
			a.ips = append(a.ips, ip)
		}
	case *dns.MX:
		a.mx = append(a.mx, &net.MX{Host: rr.Mx, Pref: rr.Preference})
	case *dns.PTR:
		a.ptr = append(a.ptr, rr.Ptr)
	}
}

func (a *answer) empty() bool {
	return len(a.txt) == 0 && len(a.ips) == 0 && len(a.mx) == 0 && len(a.ptr) == 0
}

func hasSOA(resp *dns.Msg) bool {
	for _, rr := range resp.Ns {
		if _, ok := rr.(*dns.SOA); ok {
			return true
		}
	}
	return false
}

// negativeTTL is how long a negative answer may be cached (RFC 2308 §5):
// the minimum of the SOA's TTL and MINIMUM field; without an SOA, not at
// all.
func negativeTTL(resp *dns.Msg) time.Duration {
	for _, rr := range resp.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			return time.Duration(min(soa.Hdr.Ttl, soa.Minttl)) * time.Second
		}
	}
	return 0
}

// sameName compares two domain names in presentation format by their wire
// form, ignoring ASCII case, so that different escapings of one name match.
func sameName(a, b string) bool {
	if strings.EqualFold(a, b) {
		return true
	}
	var ba, bb [256]byte
	na, errA := dns.PackDomainName(dns.Fqdn(a), ba[:], 0, nil, false)
	nb, errB := dns.PackDomainName(dns.Fqdn(b), bb[:], 0, nil, false)
	return errA == nil && errB == nil && bytes.EqualFold(ba[:na], bb[:nb])
}
