package reputation

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Zone is one DNS list: a DNSBL or DNSWL for client IPs, or a URIBL/SURBL
// for URL domains.
type Zone struct {
	// Name is the list's DNS zone, e.g. "zen.spamhaus.org".
	Name string `json:"name"`
	// Weight is added to the score when the list lists the query; negative
	// for allow lists (DNSWL). Zero means 1.
	Weight float64 `json:"weight"`
	// Filter selects the return codes that count as listed; see
	// ParseFilter. Empty means any answer in 127.0.0.0/8 except 127.0.0.1
	// (URIBL/SURBL's "query refused") and 127.255.255.0/24 (Spamhaus's
	// error codes).
	Filter string `json:"filter,omitempty"`
	// Timeout bounds this list's lookups. Zero means Checker.Timeout.
	Timeout time.Duration `json:"timeout,omitempty"`
}

func (z Zone) weight() float64 {
	if z.Weight == 0 {
		return 1
	}
	return z.Weight
}

// ParseZone reads a zone written as in Postfix's postscreen_dnsbl_sites:
//
//	name[=filter][*weight]
//
// for example "zen.spamhaus.org=127.0.0.[2..11]*3",
// "list.dnswl.org=127.0.[0..255].[1..3]*-5" or "multi.uribl.com=&0x0e".
// The weight defaults to 1.
func ParseZone(spec string) (Zone, error) {
	z := Zone{Weight: 1}
	s := strings.TrimSpace(spec)
	if i := strings.LastIndexByte(s, '*'); i >= 0 {
		w, err := strconv.ParseFloat(strings.TrimSpace(s[i+1:]), 64)
		if err != nil || math.IsNaN(w) || math.IsInf(w, 0) || w == 0 {
			// Zero is refused: in a Zone it means the default weight 1.
			return Zone{}, fmt.Errorf("reputation: zone %q: bad weight %q (a non-zero number)", spec, s[i+1:])
		}
		z.Weight, s = w, s[:i]
	}
	if i := strings.IndexByte(s, '='); i >= 0 {
		z.Filter, s = s[i+1:], s[:i]
		if _, err := ParseFilter(z.Filter); err != nil {
			return Zone{}, fmt.Errorf("reputation: zone %q: %w", spec, err)
		}
	}
	z.Name = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
	if err := checkZoneName(z.Name); err != nil {
		return Zone{}, fmt.Errorf("reputation: zone %q: %w", spec, err)
	}
	return z, nil
}

func checkZoneName(name string) error {
	if name == "" || len(name) > 200 {
		return errors.New("bad zone name")
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 {
			return errors.New("bad zone name")
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("bad character %q in zone name", c)
			}
		}
	}
	return nil
}

// Filter selects DNS list return codes (A records). Build one with
// ParseFilter; the zero Filter is the default described at Zone.Filter.
type Filter struct {
	alts []alt
}

// alt is one alternative: an address pattern (four octet sets) or a
// bitmask tested against the whole address.
type alt struct {
	octets [4]octetSet
	mask   uint32
	isMask bool
}

// octetSet is a set of byte values as a 256-bit bitmap.
type octetSet [4]uint64

func (s *octetSet) add(lo, hi int) {
	for v := lo; v <= hi; v++ {
		s[v/64] |= 1 << (v % 64)
	}
}

func (s *octetSet) has(v byte) bool { return s[v/64]&(1<<(v%64)) != 0 }

// ParseFilter parses a return-code filter. It accepts
//
//   - a postscreen address pattern: four dot-separated octets, each a
//     number, "*", or a bracketed list of numbers and ranges separated by
//     ";", e.g. "127.0.0.2", "127.0.0.[2..11]", "127.0.0.[2;4;8]",
//     "127.0.[0..255].[1..3]" (a leading "=" is allowed, as in
//     "zone=127.0.0.2");
//   - a bitmask "&N" (decimal or 0x hex) that matches when the answer, read
//     as a 32-bit number, shares a bit with N, as multi.uribl.com and
//     multi.surbl.org encode their sub-lists in the last octet;
//   - several of these separated by "," (any may match).
func ParseFilter(s string) (Filter, error) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "=")
	if s == "" {
		return Filter{}, nil
	}
	if len(s) > 1024 {
		return Filter{}, errors.New("filter too long")
	}
	var f Filter
	for _, part := range strings.Split(s, ",") {
		a, err := parseAlt(strings.TrimSpace(part))
		if err != nil {
			return Filter{}, fmt.Errorf("filter %q: %w", s, err)
		}
		f.alts = append(f.alts, a)
	}
	return f, nil
}

func parseAlt(s string) (alt, error) {
	if rest, ok := strings.CutPrefix(s, "&"); ok {
		v, err := strconv.ParseUint(strings.TrimSpace(rest), 0, 32)
		if err != nil || v == 0 {
			return alt{}, fmt.Errorf("bad bitmask %q", s)
		}
		return alt{mask: uint32(v), isMask: true}, nil
	}
	var a alt
	parts, err := splitOctets(s)
	if err != nil {
		return alt{}, err
	}
	for i, p := range parts {
		if err := parseOctet(p, &a.octets[i]); err != nil {
			return alt{}, err
		}
	}
	return a, nil
}

// splitOctets splits "a.b.c.d" on the dots outside brackets (ranges use
// ".." inside brackets).
func splitOctets(s string) ([]string, error) {
	var parts []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '[':
			depth++
		case ']':
			depth--
		case '.':
			if depth == 0 {
				parts = append(parts, s[start:i])
				start = i + 1
			}
		}
		if depth < 0 || depth > 1 {
			return nil, fmt.Errorf("unbalanced brackets in %q", s)
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("unbalanced brackets in %q", s)
	}
	parts = append(parts, s[start:])
	if len(parts) != 4 {
		return nil, fmt.Errorf("%q is not four octets", s)
	}
	return parts, nil
}

func parseOctet(p string, set *octetSet) error {
	if p == "*" {
		set.add(0, 255)
		return nil
	}
	inner, bracketed := strings.CutPrefix(p, "[")
	if bracketed {
		var ok bool
		if inner, ok = strings.CutSuffix(inner, "]"); !ok {
			return fmt.Errorf("bad octet %q", p)
		}
	} else if strings.ContainsAny(p, ";]") || strings.Contains(p, "..") {
		return fmt.Errorf("bad octet %q (ranges and lists need brackets)", p)
	}
	for _, item := range strings.Split(inner, ";") {
		lo, hi, isRange := strings.Cut(item, "..")
		a, err := octetValue(lo)
		if err != nil {
			return err
		}
		b := a
		if isRange {
			if b, err = octetValue(hi); err != nil {
				return err
			}
		}
		if b < a {
			return fmt.Errorf("empty range %q", item)
		}
		set.add(a, b)
	}
	return nil
}

func octetValue(s string) (int, error) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 3 {
		return 0, fmt.Errorf("bad octet value %q", s)
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 || v > 255 {
		return 0, fmt.Errorf("bad octet value %q", s)
	}
	return v, nil
}

// Match reports whether the return code a counts as listed.
func (f Filter) Match(a netip.Addr) bool {
	if !a.Is4() {
		return false
	}
	b := a.As4()
	if len(f.alts) == 0 {
		return b[0] == 127 && !(b[1] == 255 && b[2] == 255) && a != refusedCode
	}
	for _, alt := range f.alts {
		if alt.isMask {
			if (uint32(b[0])<<24|uint32(b[1])<<16|uint32(b[2])<<8|uint32(b[3]))&alt.mask != 0 {
				return true
			}
			continue
		}
		if alt.octets[0].has(b[0]) && alt.octets[1].has(b[1]) && alt.octets[2].has(b[2]) && alt.octets[3].has(b[3]) {
			return true
		}
	}
	return false
}

// refusedCode is what URIBL and SURBL answer when they refuse a query
// (public resolver, over quota).
var refusedCode = netip.AddrFrom4([4]byte{127, 0, 0, 1})

// classify reads one answer of a list under filter f. Spamhaus answers
// 127.255.255.252 (typo in the zone name), .254 (query through a public or
// open resolver) and .255 (excessive queries); any 127.255.255.x is taken
// as such an error, whatever the filter says. 127.0.0.1 (URIBL/SURBL:
// query refused) and answers outside 127.0.0.0/8 (a resolver that rewrites
// NXDOMAIN) are errors too, unless the filter selects them.
func classify(f Filter, a netip.Addr) (listed bool, problem string) {
	a = a.Unmap()
	if !a.Is4() {
		return false, "non-IPv4 answer " + a.String()
	}
	b := a.As4()
	if b[0] == 127 && b[1] == 255 && b[2] == 255 {
		return false, "list refused the query (" + a.String() + ")"
	}
	if f.Match(a) {
		return true, ""
	}
	switch {
	case a == refusedCode:
		return false, "list refused the query (" + a.String() + ")"
	case b[0] != 127:
		return false, "answer outside 127.0.0.0/8 (" + a.String() + "); does the resolver rewrite NXDOMAIN?"
	}
	return false, "" // a code the filter leaves out
}
