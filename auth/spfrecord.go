package auth

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// ErrSPFSyntax is wrapped by every SPF record syntax error (a permerror).
var ErrSPFSyntax = errors.New("spf: syntax error")

// spfMechanism is the kind of an SPF mechanism (RFC 7208 §5).
type spfMechanism int

const (
	mechAll spfMechanism = iota
	mechInclude
	mechA
	mechMX
	mechPTR
	mechIP4
	mechIP6
	mechExists
)

var mechanismNames = map[string]spfMechanism{
	"all": mechAll, "include": mechInclude, "a": mechA, "mx": mechMX,
	"ptr": mechPTR, "ip4": mechIP4, "ip6": mechIP6, "exists": mechExists,
}

// spfDirective is one qualifier + mechanism of a parsed record.
type spfDirective struct {
	qualifier byte // '+', '-', '~' or '?'
	mech      spfMechanism
	domain    *macroString // target; nil for the implicit <domain> (a, mx, ptr)
	network   netip.Prefix // ip4, ip6
	cidr4     int          // a, mx: prefix length for IPv4 (32 when absent)
	cidr6     int          // a, mx: prefix length for IPv6 (128 when absent)
	text      string       // the term as written, for results
}

// spfRecord is a parsed SPF record. Parsing is complete before evaluation
// starts: RFC 7208 §4.6 requires syntax errors anywhere in the record to be
// detected, even after a mechanism that would match.
type spfRecord struct {
	directives []spfDirective
	redirect   *macroString
	exp        *macroString
}

// isSPFRecord reports whether a TXT record is an SPF version 1 record
// (RFC 7208 §4.5: "v=spf1" followed by a space or the end, case-insensitive).
func isSPFRecord(txt string) bool {
	if len(txt) < 6 || !strings.EqualFold(txt[:6], "v=spf1") {
		return false
	}
	return len(txt) == 6 || txt[6] == ' '
}

// parseSPFRecord parses a record that isSPFRecord accepted, with the ABNF
// of RFC 7208 §12.
func parseSPFRecord(txt string) (*spfRecord, error) {
	if !isSPFRecord(txt) {
		return nil, fmt.Errorf("%w: not an spf1 record", ErrSPFSyntax)
	}
	// RFC 7208 §3.1, §4.6.1: terms are separated by spaces only, and
	// records are 7-bit ASCII; any control or 8-bit character is an error.
	for i := 0; i < len(txt); i++ {
		if c := txt[i]; c != ' ' && (c < 0x21 || c > 0x7e) {
			return nil, fmt.Errorf("%w: invalid character 0x%02x at offset %d", ErrSPFSyntax, c, i)
		}
	}
	rec := &spfRecord{}
	for _, term := range strings.Split(txt[6:], " ") {
		if term == "" {
			continue
		}
		if err := rec.addTerm(term); err != nil {
			return nil, fmt.Errorf("%w: term %q: %v", ErrSPFSyntax, term, err)
		}
	}
	return rec, nil
}

func (rec *spfRecord) addTerm(term string) error {
	if name, value, ok := modifierParts(term); ok {
		return rec.addModifier(name, value)
	}
	d, err := parseDirective(term)
	if err != nil {
		return err
	}
	rec.directives = append(rec.directives, d)
	return nil
}

// modifierParts splits a modifier term (name "=" value, RFC 7208 §12:
// name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." )).
func modifierParts(term string) (name, value string, ok bool) {
	i := strings.IndexByte(term, '=')
	if i <= 0 || !isAlpha(term[0]) {
		return "", "", false
	}
	for j := 1; j < i; j++ {
		c := term[j]
		if !isAlpha(c) && !isDigit(c) && c != '-' && c != '_' && c != '.' {
			return "", "", false
		}
	}
	return term[:i], term[i+1:], true
}

func (rec *spfRecord) addModifier(name, value string) error {
	switch strings.ToLower(name) {
	case "redirect":
		// RFC 7208 §6: redirect and exp each at most once.
		if rec.redirect != nil {
			return errors.New("redirect appears twice")
		}
		ms, err := parseDomainSpec(value)
		if err != nil {
			return err
		}
		rec.redirect = ms
	case "exp":
		if rec.exp != nil {
			return errors.New("exp appears twice")
		}
		// An empty exp= is a syntax error (RFC 7208 erratum 4402 settles
		// the conflict of §6.2/4 with the grammar this way).
		ms, err := parseDomainSpec(value)
		if err != nil {
			return err
		}
		rec.exp = ms
	default:
		// RFC 7208 §6.3: unknown modifiers are ignored, but their value
		// must be a valid macro-string.
		if _, err := parseMacroString(value, true); err != nil {
			return err
		}
	}
	return nil
}

func parseDirective(term string) (spfDirective, error) {
	d := spfDirective{qualifier: '+', text: term, cidr4: 32, cidr6: 128}
	switch term[0] {
	case '+', '-', '~', '?':
		d.qualifier = term[0]
		term = term[1:]
	}
	end := strings.IndexAny(term, ":/")
	if end < 0 {
		end = len(term)
	}
	mech, ok := mechanismNames[strings.ToLower(term[:end])]
	if !ok {
		return d, errors.New("unknown mechanism")
	}
	d.mech = mech
	arg := term[end:]
	var err error
	switch mech {
	case mechAll:
		if arg != "" {
			err = errors.New("all takes no argument")
		}
	case mechInclude, mechExists:
		d.domain, err = requiredDomain(arg)
	case mechA, mechMX:
		d.domain, d.cidr4, d.cidr6, err = parseDomainAndCIDR(arg)
	case mechPTR:
		if arg != "" {
			d.domain, err = requiredDomain(arg)
		}
	case mechIP4, mechIP6:
		d.network, err = parseNetwork(mech, arg)
	}
	return d, err
}

func requiredDomain(arg string) (*macroString, error) {
	if !strings.HasPrefix(arg, ":") {
		return nil, errors.New("missing ':' domain-spec")
	}
	return parseDomainSpec(arg[1:])
}

// parseDomainAndCIDR parses the argument of a or mx:
// [ ":" domain-spec ] [ ip4-cidr-length ] [ "/" ip6-cidr-length ].
func parseDomainAndCIDR(arg string) (*macroString, int, int, error) {
	cidr4, cidr6 := 32, 128
	if i := strings.LastIndex(arg, "//"); i >= 0 && allDigits(arg[i+2:]) {
		n, err := parseCIDR(arg[i+2:], 128)
		if err != nil {
			return nil, 0, 0, err
		}
		cidr6, arg = n, arg[:i]
	}
	if i := strings.LastIndexByte(arg, '/'); i >= 0 && allDigits(arg[i+1:]) {
		n, err := parseCIDR(arg[i+1:], 32)
		if err != nil {
			return nil, 0, 0, err
		}
		cidr4, arg = n, arg[:i]
	}
	if arg == "" {
		return nil, cidr4, cidr6, nil
	}
	ms, err := requiredDomain(arg)
	return ms, cidr4, cidr6, err
}

// parseCIDR parses a prefix length: "0" or a number without leading zeros,
// at most max (RFC 7208 §5.6 ip4-cidr-length, ip6-cidr-length).
func parseCIDR(s string, max int) (int, error) {
	if s == "" || len(s) > 3 || (len(s) > 1 && s[0] == '0') || !allDigits(s) {
		return 0, fmt.Errorf("invalid prefix length %q", s)
	}
	n := 0
	for i := 0; i < len(s); i++ {
		n = n*10 + int(s[i]-'0')
	}
	if n > max {
		return 0, fmt.Errorf("prefix length %d exceeds %d", n, max)
	}
	return n, nil
}

func parseNetwork(mech spfMechanism, arg string) (netip.Prefix, error) {
	if !strings.HasPrefix(arg, ":") {
		return netip.Prefix{}, errors.New("missing ':' network")
	}
	arg = arg[1:]
	bits, max := -1, 32
	if mech == mechIP6 {
		max = 128
	}
	if i := strings.IndexByte(arg, '/'); i >= 0 {
		n, err := parseCIDR(arg[i+1:], max)
		if err != nil {
			return netip.Prefix{}, err
		}
		bits, arg = n, arg[:i]
	}
	ip, err := netip.ParseAddr(arg)
	if err != nil || ip.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("invalid address %q", arg)
	}
	if mech == mechIP4 && !ip.Is4() {
		return netip.Prefix{}, fmt.Errorf("not an IPv4 address %q", arg)
	}
	if mech == mechIP6 && !ip.Is6() {
		return netip.Prefix{}, fmt.Errorf("not an IPv6 address %q", arg)
	}
	if bits < 0 {
		bits = max
	}
	return ip.Prefix(bits)
}

// parseDomainSpec parses domain-spec = macro-string domain-end, where
// domain-end = ( "." toplabel [ "." ] ) / macro-expand (RFC 7208 §7.1).
// The letters c, r and t are not allowed outside explanation text.
func parseDomainSpec(s string) (*macroString, error) {
	if s == "" {
		return nil, errors.New("empty domain-spec")
	}
	ms, err := parseMacroString(s, false)
	if err != nil {
		return nil, err
	}
	if !ms.endsWithMacro() {
		tail := strings.TrimSuffix(ms.literalTail(), ".")
		dot := strings.LastIndexByte(tail, '.')
		if dot < 0 || !isTopLabel(tail[dot+1:]) {
			return nil, fmt.Errorf("domain-spec %q does not end in a valid top label", s)
		}
	}
	return ms, nil
}

// isTopLabel implements toplabel = ( *alphanum ALPHA *alphanum ) /
// ( 1*alphanum "-" *( alphanum / "-" ) alphanum ).
func isTopLabel(s string) bool {
	if s == "" {
		return false
	}
	letter, dash := false, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case isAlpha(c):
			letter = true
		case isDigit(c):
		case c == '-':
			dash = true
		default:
			return false
		}
	}
	if dash {
		return len(s) >= 3 && s[0] != '-' && s[len(s)-1] != '-'
	}
	return letter
}

func isAlpha(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return s != ""
}
