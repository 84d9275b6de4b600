package policy

import (
	"net/netip"
	"strings"

	"github.com/mailguard/mailguard/reason"
)

// compiledLists is the `lists` block in matching form.
type compiledLists struct {
	allowSenders, blockSenders, traps []string // lowercased patterns
	allowNets, blockNets              []netip.Prefix
	blockSHA                          map[string]bool
	groups                            map[string]map[string]bool // group → lowercased members
}

func compileLists(l *Lists) compiledLists {
	c := compiledLists{
		allowSenders: lowerAll(l.AllowSenders), blockSenders: lowerAll(l.BlockSenders),
		traps: lowerAll(l.TrapAddresses), allowNets: l.AllowPrefixes, blockNets: l.BlockPrefixes,
		blockSHA: map[string]bool{}, groups: map[string]map[string]bool{},
	}
	for _, h := range l.BlockSHA256 {
		c.blockSHA[strings.ToLower(h)] = true
	}
	for g, members := range l.Groups {
		c.groups[g] = map[string]bool{}
		for _, m := range members {
			c.groups[g][strings.ToLower(m)] = true
		}
	}
	return c
}

func lowerAll(l []string) []string {
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = strings.ToLower(strings.TrimSpace(s))
	}
	return out
}

// MatchAddress reports whether addr matches a list pattern: "user@domain"
// exactly, "@domain" for any user of exactly that domain, or "domain" for
// the domain and its subdomains. Comparison is case-insensitive.
func MatchAddress(pattern, addr string) bool {
	pattern, addr = strings.ToLower(pattern), strings.ToLower(addr)
	if addr == "" || pattern == "" {
		return false
	}
	switch {
	case strings.HasPrefix(pattern, "@"):
		return domainOf(addr) == pattern[1:]
	case strings.Contains(pattern, "@"):
		return addr == pattern
	default:
		return DomainMatch(domainOf(addr), pattern)
	}
}

// DomainMatch reports whether domain is pattern or a subdomain of it.
func DomainMatch(domain, pattern string) bool {
	domain = strings.TrimSuffix(strings.ToLower(domain), ".")
	pattern = strings.TrimSuffix(strings.ToLower(pattern), ".")
	return domain != "" && (domain == pattern || strings.HasSuffix(domain, "."+pattern))
}

func matchAny(patterns []string, addrs ...string) bool {
	for _, p := range patterns {
		for _, a := range addrs {
			if MatchAddress(p, a) {
				return true
			}
		}
	}
	return false
}

func inPrefixes(ps []netip.Prefix, ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	ip = ip.Unmap()
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// listFacts is the `lists` object of a message.
type listFacts struct {
	senderAllowed, senderBlocked, ipAllowed, ipBlocked, shaBlocked, trap bool
	groups                                                               []string
}

func (c *compiledLists) facts(f *Facts) listFacts {
	var lf listFacts
	lf.senderAllowed = matchAny(c.allowSenders, f.MailFrom, f.From.Addr)
	lf.senderBlocked = matchAny(c.blockSenders, f.MailFrom, f.From.Addr)
	lf.ipAllowed = inPrefixes(c.allowNets, f.ClientIP)
	lf.ipBlocked = inPrefixes(c.blockNets, f.ClientIP)
	for _, file := range f.Files {
		if c.blockSHA[strings.ToLower(file.SHA256)] {
			lf.shaBlocked = true
		}
	}
	lf.trap = matchAny(c.traps, f.Rcpts...)
	for g, members := range c.groups {
		for _, r := range f.Rcpts {
			if members[strings.ToLower(r)] {
				lf.groups = append(lf.groups, g)
				break
			}
		}
	}
	return lf
}

// findings are what the lists themselves establish about a message.
func (lf listFacts) findings(f *Facts) []reason.Finding {
	var out []reason.Finding
	if lf.trap {
		out = append(out, reason.Finding{Tag: reason.TrapRecipient, Detail: "a recipient is a trap address"})
	}
	if lf.senderBlocked {
		out = append(out, reason.Finding{Tag: reason.BlockedSender, Detail: "sender is on lists.block_senders"})
	}
	if lf.ipBlocked {
		out = append(out, reason.Finding{Tag: reason.BlockedSender, Detail: "client " + f.ClientIP.String() + " is on lists.block_networks"})
	}
	if lf.shaBlocked {
		out = append(out, reason.Finding{Tag: reason.BlockedFile, Detail: "a file's SHA-256 is on lists.block_sha256"})
	}
	return out
}
