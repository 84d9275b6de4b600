// Package reputation scores a message's sender and links against DNS
// lists: the client IP against DNSBLs and DNSWLs (weighted and summed like
// Postfix postscreen's dnsbl_sites), and the URLs found in the message's
// text, HTML and PDF text against URIBL/SURBL-style domain lists and a local
// block list. It also extracts and normalises those URLs and reports facts
// for policy rules: counts, IP-literal links, shorteners, punycode
// domains, and links whose visible text shows another domain than their
// target.
//
// It takes plain values (an address, text, HTML, bytes) and knows nothing
// of SMTP sessions, MIME or policy; thresholds and actions are the
// gateway's. Links are never fetched. DNS goes through the small Resolver
// interface; caching by TTL is the resolver's job.
package reputation

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Resolver is the part of *net.Resolver that reputation uses. NXDOMAIN
// must come back as *net.DNSError{IsNotFound: true} (not listed); any other
// error counts as a failed lookup of that list.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

var _ Resolver = (*net.Resolver)(nil)

// Defaults for the zero values of Checker's options.
const (
	DefaultTimeout     = 2 * time.Second
	DefaultMaxURLs     = 200
	DefaultMaxLookups  = 50
	DefaultMaxParallel = 16
)

// Checker looks up client IPs and URLs in DNS lists. Set its fields before
// the first check; it is then safe for concurrent use.
type Checker struct {
	// Resolver answers the DNS queries (required).
	Resolver
	// IPZones are the DNSBLs/DNSWLs for client IPs.
	IPZones []Zone
	// URLZones are the URIBL/SURBL-style lists for URL domains.
	URLZones []Zone
	// BlockDomains is the local URL block list: a URL whose host is one
	// of these domains or a subdomain of one is listed (zone "local").
	BlockDomains []string
	// AllowDomains are URL domains (and their subdomains) never looked up
	// in URLZones, e.g. the organisation's own domains.
	AllowDomains []string
	// Shorteners extends the built-in list of URL shortener domains.
	Shorteners []string
	// Skip lists client networks that are never looked up (allow-listed
	// partners, internal networks). Non-public addresses (loopback,
	// private, link-local, CGNAT, multicast) are never looked up either.
	Skip []netip.Prefix
	// Timeout bounds each lookup of a zone without its own Timeout.
	// Zero means DefaultTimeout.
	Timeout time.Duration
	// MaxURLs is the most URLs CheckURLs considers. Zero means
	// DefaultMaxURLs.
	MaxURLs int
	// MaxLookups is the most DNS queries one CheckURLs makes. Zero means
	// DefaultMaxLookups.
	MaxLookups int
	// MaxParallel is the most DNS queries in flight for one check. Zero
	// means DefaultMaxParallel.
	MaxParallel int
	// TXT makes CheckIP fetch the TXT record of each listing (the list's
	// reason text), within the same zone timeout.
	TXT bool

	once  sync.Once
	ipZ   []zoneState
	urlZ  []zoneState
	block []string
	allow []string
	short map[string]bool
}

// zoneState is a zone with its parsed filter (or the parse error).
type zoneState struct {
	Zone
	filter Filter
	err    error
}

// Validate checks the zones' names and filters, as the policy loader
// should at load time. Checks with a bad zone report the problem in the
// result's Errors and skip that zone.
func (c *Checker) Validate() error {
	c.init()
	var errs []error
	for _, z := range append(append([]zoneState(nil), c.ipZ...), c.urlZ...) {
		if z.err != nil {
			errs = append(errs, z.err)
		}
	}
	return errors.Join(errs...)
}

func (c *Checker) init() {
	c.once.Do(func() {
		c.ipZ = prepareZones(c.IPZones)
		c.urlZ = prepareZones(c.URLZones)
		c.block = normaliseDomains(c.BlockDomains)
		c.allow = normaliseDomains(c.AllowDomains)
		c.short = map[string]bool{}
		for _, d := range builtinShorteners {
			c.short[d] = true
		}
		for _, d := range normaliseDomains(c.Shorteners) {
			c.short[d] = true
		}
	})
}

func prepareZones(zones []Zone) []zoneState {
	out := make([]zoneState, 0, len(zones))
	for _, z := range zones {
		st := zoneState{Zone: z}
		st.Name = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(z.Name)), ".")
		if err := checkZoneName(st.Name); err != nil {
			st.err = fmt.Errorf("reputation: zone %q: %w", z.Name, err)
		} else if st.filter, err = ParseFilter(z.Filter); err != nil {
			st.err = fmt.Errorf("reputation: zone %q: %w", z.Name, err)
		}
		out = append(out, st)
	}
	return out
}

func normaliseDomains(in []string) []string {
	var out []string
	for _, d := range in {
		d = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
		d = strings.TrimPrefix(d, "*.")
		if a, err := toASCII(d); err == nil && a != "" {
			out = append(out, a)
		}
	}
	return out
}

func (c *Checker) timeout(z Zone) time.Duration {
	switch {
	case z.Timeout > 0:
		return z.Timeout
	case c.Timeout > 0:
		return c.Timeout
	}
	return DefaultTimeout
}

func (c *Checker) parallel() int {
	if c.MaxParallel > 0 {
		return c.MaxParallel
	}
	return DefaultMaxParallel
}

// Listing is one list that lists the client IP or a URL domain.
type Listing struct {
	Zone   string   `json:"zone"`             // the list's zone, or "local" for the local block list
	Codes  []string `json:"codes,omitempty"`  // return codes that passed the filter
	Weight float64  `json:"weight"`           // the zone's weight
	Reason string   `json:"reason,omitempty"` // the list's TXT record, when fetched
	Domain string   `json:"domain,omitempty"` // URL lists: the domain (or IP) that is listed
	URL    string   `json:"url,omitempty"`    // URL lists: the first URL with that domain
}

// lookupResult is the outcome of one A query against one zone.
type lookupResult struct {
	zone    *zoneState
	name    string // the query, for TXT
	codes   []string
	problem string // "" when the list answered (listed or not)
	reason  string // TXT reason of a listing, when fetched
}

// lookup asks zone z about name (the reversed IP or domain, without the
// zone). It returns within the zone's timeout even if the resolver does
// not honour the context.
func (c *Checker) lookup(ctx context.Context, z *zoneState, name string) lookupResult {
	res := lookupResult{zone: z, name: name + "." + z.Name + "."}
	if c.Resolver == nil {
		res.problem = z.Name + ": no resolver configured"
		return res
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout(z.Zone))
	defer cancel()
	type answer struct {
		addrs []netip.Addr
		err   error
	}
	ch := make(chan answer, 1) // buffered: a late answer never blocks the resolver's goroutine
	go func() {
		addrs, err := c.Resolver.LookupNetIP(ctx, "ip4", res.name)
		ch <- answer{addrs, err}
	}()
	var a answer
	select {
	case a = <-ch:
	case <-ctx.Done():
		a.err = ctx.Err()
	}
	if a.err != nil {
		var de *net.DNSError
		if errors.As(a.err, &de) && de.IsNotFound {
			return res // NXDOMAIN: not listed
		}
		if errors.Is(a.err, context.DeadlineExceeded) {
			res.problem = fmt.Sprintf("%s: timeout after %v", z.Name, c.timeout(z.Zone))
		} else {
			res.problem = fmt.Sprintf("%s: %v", z.Name, a.err)
		}
		return res
	}
	for _, addr := range a.addrs {
		listed, problem := classify(z.filter, addr)
		if listed {
			res.codes = append(res.codes, addr.Unmap().String())
		} else if problem != "" && res.problem == "" {
			res.problem = z.Name + ": " + problem
		}
	}
	if len(res.codes) > 0 {
		res.problem = "" // a listing answer wins over odd extra answers
	}
	return res
}

// txtReason fetches the TXT record explaining a listing, bounded by the
// zone timeout; "" on any failure.
func (c *Checker) txtReason(ctx context.Context, r lookupResult) string {
	ctx, cancel := context.WithTimeout(ctx, c.timeout(r.zone.Zone))
	defer cancel()
	ch := make(chan []string, 1)
	go func() {
		txt, err := c.Resolver.LookupTXT(ctx, r.name)
		if err != nil {
			txt = nil
		}
		ch <- txt
	}()
	select {
	case txt := <-ch:
		if len(txt) == 0 {
			return ""
		}
		return printable(txt[0], 200)
	case <-ctx.Done():
		return ""
	}
}

// printable keeps at most max bytes of s, replacing control characters:
// a TXT record is remote input.
func printable(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > max {
		s = strings.ToValidUTF8(s[:max], "")
	}
	return s
}
