package reputation

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"

	"github.com/mailguard/mailguard/reason"
)

// IPResult is the reputation of one client IP.
type IPResult struct {
	// Score is the sum of the weights of the lists that list the IP
	// (allow lists have negative weights), like postscreen's DNSBL score.
	Score float64 `json:"score"`
	// Listed holds one entry per list that lists the IP, sorted by zone.
	Listed []Listing `json:"listed"`
	// Errors describes lists that could not be asked (timeout, SERVFAIL,
	// refused, bad configuration); those lists are skipped, not waited for.
	Errors []string `json:"errors,omitempty"`
	// Checked is the number of lists asked; Failed the number in Errors.
	Checked int `json:"checked"`
	Failed  int `json:"failed"`
	// Skipped says why no list was asked ("allow-listed network",
	// "non-public address", "invalid address"), or is empty.
	Skipped string `json:"skipped,omitempty"`
}

var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// CheckIP asks every IP zone about ip, concurrently, each within its own
// timeout, and sums the weights of the lists that list it. IPv4-mapped
// IPv6 addresses are checked as IPv4.
func (c *Checker) CheckIP(ctx context.Context, ip netip.Addr) IPResult {
	c.init()
	res := IPResult{Listed: []Listing{}}
	ip = ip.Unmap()
	if skip := c.skipIP(ip); skip != "" {
		res.Skipped = skip
		return res
	}
	name := ReverseIP(ip)
	results := make([]lookupResult, len(c.ipZ))
	var wg sync.WaitGroup
	sem := make(chan struct{}, c.parallel())
	for i := range c.ipZ {
		z := &c.ipZ[i]
		if z.err != nil {
			results[i] = lookupResult{zone: z, problem: z.err.Error()}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i] = c.lookup(ctx, z, name)
			if len(results[i].codes) > 0 && c.TXT {
				results[i].reason = c.txtReason(ctx, results[i])
			}
		}()
	}
	wg.Wait()
	for _, r := range results {
		res.Checked++
		if r.problem != "" {
			res.Errors = append(res.Errors, r.problem)
			res.Failed++
			continue
		}
		if len(r.codes) == 0 {
			continue
		}
		l := Listing{Zone: r.zone.Name, Codes: r.codes, Weight: r.zone.weight(), Reason: r.reason}
		res.Listed = append(res.Listed, l)
		res.Score += l.Weight
	}
	sort.Slice(res.Listed, func(i, j int) bool { return res.Listed[i].Zone < res.Listed[j].Zone })
	return res
}

func (c *Checker) skipIP(ip netip.Addr) string {
	switch {
	case !ip.IsValid():
		return "invalid address"
	case ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsUnspecified() ||
		ip.IsMulticast() || ip.IsInterfaceLocalMulticast() || cgnat.Contains(ip):
		return "non-public address"
	}
	for _, p := range c.Skip {
		if p.Contains(ip) {
			return "allow-listed network"
		}
	}
	return ""
}

// ReverseIP returns the DNS list query form of ip, without the zone:
// reversed octets for IPv4 ("2.0.0.127"), reversed nibbles of the full
// address for IPv6 (32 labels, RFC 5782 §2.4).
func ReverseIP(ip netip.Addr) string {
	ip = ip.Unmap()
	if ip.Is4() {
		b := ip.As4()
		return fmt.Sprintf("%d.%d.%d.%d", b[3], b[2], b[1], b[0])
	}
	b := ip.As16()
	const hex = "0123456789abcdef"
	var sb strings.Builder
	sb.Grow(63)
	for i := len(b) - 1; i >= 0; i-- {
		sb.WriteByte(hex[b[i]&0xf])
		sb.WriteByte('.')
		sb.WriteByte(hex[b[i]>>4])
		if i > 0 {
			sb.WriteByte('.')
		}
	}
	return sb.String()
}

// Findings returns an ip_blocklisted finding when the IP's score is
// positive, naming the lists with positive weight (and their codes and
// reasons). Thresholds and actions are the gateway's.
func (r IPResult) Findings() []reason.Finding {
	if r.Score <= 0 {
		return nil
	}
	var parts []string
	for _, l := range r.Listed {
		if l.Weight <= 0 {
			continue
		}
		p := l.Zone + " (" + strings.Join(l.Codes, ", ")
		if l.Reason != "" {
			p += ": " + l.Reason
		}
		parts = append(parts, p+")")
	}
	return []reason.Finding{{
		Tag:    reason.IPBlocklisted,
		Detail: fmt.Sprintf("score %g: %s", r.Score, strings.Join(parts, "; ")),
	}}
}
