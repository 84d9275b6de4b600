package reputation

import (
	"context"
	"net/netip"
	"sort"
	"strings"
	"sync"

	"github.com/mailguard/mailguard/reason"
)

// builtinShorteners are URL shortener domains: their links hide the real
// target, which is never fetched.
var builtinShorteners = []string{
	"bit.ly", "bitly.com", "bit.do", "tinyurl.com", "t.co", "goo.gl", "ow.ly", "is.gd", "v.gd",
	"buff.ly", "rebrand.ly", "cutt.ly", "shorturl.at", "rb.gy", "t.ly", "tiny.cc", "bl.ink",
	"lnkd.in", "s.id", "qrco.de", "adf.ly", "shorte.st", "soo.gd", "surl.li", "clck.ru",
	"u.to", "tiny.one", "shorturl.com", "short.gy", "urlz.fr", "trib.al", "dlvr.it",
}

var builtinShortenerSet = func() map[string]bool {
	m := map[string]bool{}
	for _, d := range builtinShorteners {
		m[d] = true
	}
	return m
}()

func builtinShortener(host, domain string) bool {
	return builtinShortenerSet[host] || builtinShortenerSet[domain]
}

// URLResult is the reputation of a message's links, with facts for
// policy rules.
type URLResult struct {
	URLs       []URL `json:"urls"`
	Count      int   `json:"count"`       // URLs considered (at most Checker.MaxURLs)
	Domains    int   `json:"domains"`     // distinct registrable domains (IP literals count as domains)
	Mismatches int   `json:"mismatches"`  // links whose visible text shows another domain
	IPLiterals int   `json:"ip_literals"` // links to IP addresses
	Shorteners int   `json:"shorteners"`  // links through URL shorteners
	Punycode   int   `json:"punycode"`    // links to IDN (xn--) hosts
	Userinfo   int   `json:"userinfo"`    // links with user@ before the host
	Obfuscated int   `json:"obfuscated"`  // defanged or escaped links

	// Score is the sum of the weights of the listings (local block list
	// entries weigh 1).
	Score float64 `json:"score"`
	// Listed holds one entry per (list, domain) that is listed.
	Listed []Listing `json:"listed"`
	// Errors describes failed lookups; Lookups counts the queries made.
	Errors  []string `json:"errors,omitempty"`
	Lookups int      `json:"lookups"`
	// Unchecked counts domains not looked up because MaxLookups was
	// reached.
	Unchecked int `json:"unchecked,omitempty"`
}

// CheckURLs computes the facts of urls and checks their domains against
// the local block list and the URL zones: "<domain>.<zone>" A queries, or
// the reversed address for IP literals, each domain once, at most
// MaxLookups queries, at most MaxParallel at a time, each within its
// zone's timeout.
func (c *Checker) CheckURLs(ctx context.Context, urls []URL) URLResult {
	c.init()
	maxURLs := c.MaxURLs
	if maxURLs <= 0 {
		maxURLs = DefaultMaxURLs
	}
	if len(urls) > maxURLs {
		urls = urls[:maxURLs]
	}
	res := URLResult{URLs: make([]URL, len(urls)), Listed: []Listing{}}
	copy(res.URLs, urls)
	firstURL := map[string]*URL{} // lookup key → first URL with it
	var keys []string             // lookup keys in order of appearance
	domains := map[string]bool{}
	for i := range res.URLs {
		u := &res.URLs[i]
		u.Shortener = u.Shortener || c.short[u.Host] || c.short[u.Domain]
		res.count(u)
		domains[u.Domain] = true
		if l, ok := c.localListing(u); ok {
			res.Listed = append(res.Listed, l)
			res.Score += l.Weight
		}
		key := c.lookupKey(u)
		if key == "" {
			continue
		}
		if _, seen := firstURL[key]; !seen {
			firstURL[key] = u
			keys = append(keys, key)
		}
	}
	res.Domains = len(domains)
	c.lookupURLs(ctx, keys, firstURL, &res)
	sort.SliceStable(res.Listed, func(i, j int) bool {
		if res.Listed[i].Zone != res.Listed[j].Zone {
			return res.Listed[i].Zone < res.Listed[j].Zone
		}
		return res.Listed[i].Domain < res.Listed[j].Domain
	})
	return res
}

func (r *URLResult) count(u *URL) {
	r.Count++
	for _, f := range []struct {
		on bool
		n  *int
	}{
		{u.Mismatch, &r.Mismatches}, {u.IPLiteral, &r.IPLiterals}, {u.Shortener, &r.Shorteners},
		{u.Punycode, &r.Punycode}, {u.Userinfo, &r.Userinfo}, {u.Obfuscated, &r.Obfuscated},
	} {
		if f.on {
			*f.n++
		}
	}
}

// localListing checks u's host against the local block list.
func (c *Checker) localListing(u *URL) (Listing, bool) {
	if d := matchDomain(u.Host, c.block); d != "" {
		return Listing{Zone: "local", Weight: 1, Domain: d, URL: u.Normalized}, true
	}
	return Listing{}, false
}

// matchDomain returns the entry of list that host equals or is a
// subdomain of, or "".
func matchDomain(host string, list []string) string {
	for _, d := range list {
		if host == d || strings.HasSuffix(host, "."+d) {
			return d
		}
	}
	return ""
}

// lookupKey is the name queried in URL zones for u ("" for none):
// the registrable domain, or the reversed address of an IP literal.
func (c *Checker) lookupKey(u *URL) string {
	if u.IPLiteral {
		if a, err := netip.ParseAddr(u.Host); err == nil {
			return ReverseIP(a)
		}
		return ""
	}
	if !strings.Contains(u.Domain, ".") || matchDomain(u.Host, c.allow) != "" {
		return "" // single labels (intranet names) and allow-listed domains
	}
	return u.Domain
}

// lookupURLs queries every zone for every key, within MaxLookups.
func (c *Checker) lookupURLs(ctx context.Context, keys []string, firstURL map[string]*URL, res *URLResult) {
	maxLookups := c.MaxLookups
	if maxLookups <= 0 {
		maxLookups = DefaultMaxLookups
	}
	type job struct {
		key  string
		zone *zoneState
	}
	var jobs []job
	for _, z := range c.urlZ {
		if z.err != nil {
			res.Errors = append(res.Errors, z.err.Error())
		}
	}
	for ki, k := range keys {
		if len(jobs)+len(c.urlZ) > maxLookups && len(c.urlZ) > 0 {
			res.Unchecked = len(keys) - ki
			break
		}
		for i := range c.urlZ {
			if c.urlZ[i].err == nil {
				jobs = append(jobs, job{k, &c.urlZ[i]})
			}
		}
	}
	results := make([]lookupResult, len(jobs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, c.parallel())
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i] = c.lookup(ctx, j.zone, j.key)
		}()
	}
	wg.Wait()
	res.Lookups = len(jobs)
	for i, r := range results {
		if r.problem != "" {
			res.Errors = append(res.Errors, r.problem)
			continue
		}
		if len(r.codes) == 0 {
			continue
		}
		u := firstURL[jobs[i].key]
		l := Listing{Zone: r.zone.Name, Codes: r.codes, Weight: r.zone.weight(), Domain: u.Domain, URL: u.Normalized}
		res.Listed = append(res.Listed, l)
		res.Score += l.Weight
	}
}

// Findings returns one url_blocklisted finding per listing with positive
// weight: the list and the URL.
func (r URLResult) Findings() []reason.Finding {
	var out []reason.Finding
	for _, l := range r.Listed {
		if l.Weight <= 0 {
			continue
		}
		list := l.Zone
		if l.Zone == "local" {
			list = "local block list (" + l.Domain + ")"
		} else if len(l.Codes) > 0 {
			list += " (" + strings.Join(l.Codes, ", ") + ")"
		}
		out = append(out, reason.Finding{Tag: reason.URLBlocklisted, Detail: list + ": " + l.URL})
	}
	return out
}
