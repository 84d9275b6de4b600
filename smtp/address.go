package smtp

import (
	"net/netip"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// maxMailboxLen bounds an address. RFC 5321 §4.5.3.1 gives 64 octets for a
// local part and 256 for a path, but SRS and VERP addresses exceed the
// former in real mail; the command line bound applies as well.
const maxMailboxLen = 512

// mailbox is a parsed envelope address. local is in canonical form: a quoted
// local part stays quoted (with only the necessary escapes) unless it is a
// plain dot-string. domain is as the client wrote it; ascii is its A-label,
// lower-case form for comparisons ("" for a domain literal).
type mailbox struct {
	local, domain, ascii string
	literal              bool
}

// String is the address as it is stored in the envelope and relayed; ""
// for the null reverse path.
func (m mailbox) String() string {
	if m.local == "" {
		return ""
	}
	return m.local + "@" + m.domain
}

// addrError is a syntax verdict on an address.
type addrError int

const (
	addrOK addrError = iota
	addrBadSyntax
	addrRouted   // source route, or a local part that could route elsewhere
	addrNeedUTF8 // non-ASCII without SMTPUTF8
)

// pathArg returns the argument of a MAIL FROM: or RCPT TO: command line as
// the client sent it (go-smtp has already checked the verb and prefix, and
// drops source routes and quoting, so the session re-reads the raw line).
func pathArg(line, prefix string) (string, bool) {
	line = strings.TrimRight(line, "\r\n")
	if len(line) < 5 {
		return "", false
	}
	// As go-smtp's parseCmd and handleMail/handleRcpt trim.
	rest := strings.TrimSpace(line[5:])
	if len(rest) < len(prefix) || !strings.EqualFold(rest[:len(prefix)], prefix) {
		return "", false
	}
	return strings.TrimSpace(rest[len(prefix):]), true
}

// parsePath parses an RFC 5321 §4.1.2 Reverse-path (reverse) or
// Forward-path at the start of s, with the RFC 6531 extensions when utf8 is
// set. Angle brackets are optional, as with go-smtp. What follows the path
// must be empty or start with a space (the ESMTP parameters).
func parsePath(s string, reverse, utf8ok bool) (mailbox, addrError) {
	if reverse && strings.HasPrefix(s, "<>") {
		if rest := s[2:]; rest != "" && rest[0] != ' ' {
			return mailbox{}, addrBadSyntax
		}
		return mailbox{}, addrOK
	}
	bracket := strings.HasPrefix(s, "<")
	if bracket {
		s = s[1:]
	}
	if strings.HasPrefix(s, "@") {
		// A-d-l source route: RFC 5321 §4.1.1.3 allows refusing it.
		return mailbox{}, addrRouted
	}
	m, rest, verdict := parseMailbox(s, reverse, utf8ok)
	if verdict != addrOK {
		return mailbox{}, verdict
	}
	if bracket {
		if !strings.HasPrefix(rest, ">") {
			return mailbox{}, addrBadSyntax
		}
		rest = rest[1:]
	}
	if rest != "" && rest[0] != ' ' {
		return mailbox{}, addrBadSyntax
	}
	return m, addrOK
}

func parseMailbox(s string, reverse, utf8ok bool) (mailbox, string, addrError) {
	var m mailbox
	local, rest, verdict := parseLocalPart(s, reverse, utf8ok)
	if verdict != addrOK {
		return m, "", verdict
	}
	m.local = local
	if !strings.HasPrefix(rest, "@") {
		return m, "", addrBadSyntax // bare <postmaster> is rewritten by the front end
	}
	rest = rest[1:]
	end := strings.IndexAny(rest, "> \t")
	if end < 0 {
		end = len(rest)
	}
	domain := rest[:end]
	rest = rest[end:]
	ascii, literal, verdict := checkDomain(domain, utf8ok)
	if verdict != addrOK {
		return m, "", verdict
	}
	m.domain, m.ascii, m.literal = domain, ascii, literal
	if len(m.String()) > maxMailboxLen {
		return m, "", addrBadSyntax
	}
	return m, rest, addrOK
}

// parseLocalPart parses a Dot-string or Quoted-string and returns it in
// canonical form. A Dot-string is accepted with the dots anywhere (Japanese
// mobile carriers issued addresses such as "a..b." for years). Routing
// characters make a recipient addrRouted: '%' and '!' in any local part,
// and '@' in a quoted one.
func parseLocalPart(s string, reverse, utf8ok bool) (string, string, addrError) {
	if strings.HasPrefix(s, `"`) {
		return parseQuoted(s, reverse, utf8ok)
	}
	i := 0
	routed := false
	for i < len(s) {
		c := s[i]
		if c == '@' || c == '>' || c == ' ' {
			break
		}
		if c >= 0x80 {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError || !utf8ok {
				return "", "", utf8Verdict(r, utf8ok)
			}
			i += size
			continue
		}
		if c != '.' && !isAtext(c) {
			return "", "", addrBadSyntax
		}
		if c == '%' || c == '!' {
			routed = true
		}
		i++
	}
	local := s[:i]
	if local == "" || strings.Trim(local, ".") == "" {
		return "", "", addrBadSyntax
	}
	if routed && !reverse {
		return "", "", addrRouted
	}
	return local, s[i:], addrOK
}

func parseQuoted(s string, reverse, utf8ok bool) (string, string, addrError) {
	var content strings.Builder
	i := 1
	for {
		if i >= len(s) {
			return "", "", addrBadSyntax
		}
		c := s[i]
		switch {
		case c == '"':
			i++
			return canonicalQuoted(content.String(), s[i:], reverse)
		case c == '\\':
			// quoted-pairSMTP = %d92 %d32-126
			if i+1 >= len(s) || s[i+1] < 32 || s[i+1] > 126 {
				return "", "", addrBadSyntax
			}
			content.WriteByte(s[i+1])
			i += 2
		case c >= 0x80:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError || !utf8ok {
				return "", "", utf8Verdict(r, utf8ok)
			}
			content.WriteString(s[i : i+size])
			i += size
		case c >= 32 && c <= 126:
			content.WriteByte(c)
			i++
		default:
			return "", "", addrBadSyntax
		}
	}
}

func canonicalQuoted(content, rest string, reverse bool) (string, string, addrError) {
	// Angle brackets inside quotes are legal but only ever confuse the
	// next parser (ours relays the path inside <...>).
	if content == "" || strings.ContainsAny(content, "<>") {
		return "", "", addrBadSyntax
	}
	if !reverse && strings.ContainsAny(content, "@%!") {
		return "", "", addrRouted
	}
	if isDotString(content) {
		return content, rest, addrOK
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(content); i++ {
		if content[i] == '"' || content[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(content[i])
	}
	b.WriteByte('"')
	return b.String(), rest, addrOK
}

func utf8Verdict(r rune, utf8ok bool) addrError {
	if r == utf8.RuneError {
		return addrBadSyntax
	}
	if !utf8ok {
		return addrNeedUTF8
	}
	return addrBadSyntax
}

// isDotString reports whether s is an RFC 5321 Dot-string (atoms of atext,
// or UTF-8, separated by single dots).
func isDotString(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x80 && c != '.' && !isAtext(c) {
			return false
		}
	}
	return true
}

// isAtext reports RFC 5322 §3.2.3 atext for ASCII bytes.
func isAtext(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// checkDomain validates an RFC 5321 Domain or address-literal and returns
// the comparison form.
func checkDomain(d string, utf8ok bool) (ascii string, literal bool, verdict addrError) {
	if d == "" || len(d) > 255 {
		return "", false, addrBadSyntax
	}
	if d[0] == '[' {
		if !validLiteral(d) {
			return "", false, addrBadSyntax
		}
		return "", true, addrOK
	}
	ascii, ok := domainASCII(d)
	if !ok {
		if !isASCII(d) && !utf8ok && utf8.ValidString(d) {
			return "", false, addrNeedUTF8
		}
		return "", false, addrBadSyntax
	}
	if !isASCII(d) && !utf8ok {
		return "", false, addrNeedUTF8
	}
	return ascii, false, addrOK
}

func validLiteral(d string) bool {
	if len(d) < 3 || d[len(d)-1] != ']' {
		return false
	}
	inner := d[1 : len(d)-1]
	if v6, ok := cutPrefixFold(inner, "IPv6:"); ok {
		a, err := netip.ParseAddr(v6)
		return err == nil && a.Is6() && a.Zone() == ""
	}
	a, err := netip.ParseAddr(inner)
	return err == nil && a.Is4()
}

// domainASCII returns the lower-case A-label form of a host name, checking
// RFC 5321 sub-domain syntax (letters, digits, hyphens; no trailing dot).
func domainASCII(d string) (string, bool) {
	if !isASCII(d) {
		a, err := idna.Lookup.ToASCII(d)
		if err != nil || !isASCII(a) {
			return "", false
		}
		d = a
	}
	d = strings.ToLower(d)
	if len(d) > 253 {
		return "", false
	}
	for _, label := range strings.Split(d, ".") {
		if !validLabel(label) {
			return "", false
		}
	}
	return d, true
}

func validLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return s, false
	}
	return s[len(prefix):], true
}

// domains is a set of local domains in A-label form.
type domains struct {
	set        map[string]bool
	subdomains bool
	first      string
}

func newDomains(list []string, subdomains bool) (domains, error) {
	ds := domains{set: map[string]bool{}, subdomains: subdomains}
	for _, d := range list {
		a, ok := domainASCII(strings.TrimSuffix(strings.TrimSpace(d), "."))
		if !ok {
			return ds, &configError{"local domain " + d + " is not a valid domain name"}
		}
		if ds.first == "" {
			ds.first = a
		}
		ds.set[a] = true
	}
	return ds, nil
}

// local reports whether an address's domain is local. Domain literals are
// never local.
func (ds domains) local(m mailbox) bool {
	if m.literal || m.ascii == "" {
		return false
	}
	if ds.set[m.ascii] {
		return true
	}
	if ds.subdomains {
		for d := m.ascii; ; {
			i := strings.IndexByte(d, '.')
			if i < 0 {
				return false
			}
			d = d[i+1:]
			if ds.set[d] {
				return true
			}
		}
	}
	return false
}

type configError struct{ msg string }

// Error implements error.
func (e *configError) Error() string { return "smtp: config: " + e.msg }
