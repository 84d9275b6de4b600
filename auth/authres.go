package auth

import (
	"bytes"
	"strings"
)

// maxValueLen bounds one property value in the header we write; longer
// (hostile) values are cut.
const maxValueLen = 256

// Header formats the Authentication-Results field (RFC 8601) for these
// results, with authservID (the gateway host name) as authserv-id. It
// returns the whole field, folded one result per line, ending in CRLF.
// Values taken from the message or the SMTP session are quoted when needed
// and stripped of control characters, so they cannot inject header lines.
func (r Results) Header(authservID string) string {
	var items []string
	items = append(items, spfItem(r.SPF))
	if r.SPF.Identity == IdentityMailFrom && r.HELO.Status != "" && r.HELO.Status != SPFNone {
		items = append(items, spfItem(r.HELO))
	}
	if len(r.DKIM) == 0 {
		items = append(items, "dkim=none")
	}
	for _, d := range r.DKIM {
		s := "dkim=" + string(d.Status) + comment(d.Reason) +
			" header.d=" + value(d.Domain) + " header.s=" + value(d.Selector)
		if d.Algorithm != "" {
			s += " header.a=" + value(d.Algorithm)
		}
		if len(d.Signature) >= 8 {
			s += " header.b=" + value(d.Signature[:8])
		}
		items = append(items, s)
	}
	items = append(items, dmarcItem(r.DMARC))
	var b strings.Builder
	b.WriteString("Authentication-Results: ")
	b.WriteString(value(authservID))
	for _, it := range items {
		b.WriteString(";\r\n\t")
		b.WriteString(it)
	}
	b.WriteString("\r\n")
	return b.String()
}

func spfItem(s SPFResult) string {
	status := s.Status
	if status == "" {
		status = SPFNone
	}
	out := "spf=" + string(status)
	switch {
	case s.Reason != "" && status != SPFPass:
		out += comment(s.Reason)
	case s.Mechanism != "":
		out += comment("matched " + s.Mechanism)
	}
	if s.Identity == IdentityHELO {
		_, helo := splitSender(s.Sender)
		return out + " smtp.helo=" + value(helo)
	}
	return out + " smtp.mailfrom=" + value(s.Sender)
}

func dmarcItem(d DMARCResult) string {
	status := d.Status
	if status == "" {
		status = DMARCNone
	}
	out := "dmarc=" + string(status)
	switch {
	case status == DMARCFail:
		c := "p=" + string(d.RecordPolicy) + " dis=" + strings.ToUpper(string(d.Policy))
		out += comment(c)
	case d.Reason != "" && status != DMARCPass:
		out += comment(d.Reason)
	}
	if d.HeaderFrom != "" {
		out += " header.from=" + value(d.HeaderFrom)
	}
	return out
}

// value formats a property value: a token as is, anything else as a
// quoted-string (RFC 2045 §5.1), control characters removed.
func value(s string) string {
	s = clean(s)
	if s == "" {
		return `""`
	}
	if isToken(s) {
		return s
	}
	// RFC 8601 §2.2 pvalue also allows [local-part] "@" domain-name bare.
	if local, domain, ok := strings.Cut(s, "@"); ok && (local == "" || isToken(local)) && isDomainLike(domain) {
		return s
	}
	return `"` + s + `"` // clean left no '"' or '\\' to escape
}

// isToken reports whether s is an RFC 2045 token.
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?=`, c) >= 0 {
			return false
		}
	}
	return s != ""
}

// isDomainLike reports whether s is made of letters, digits, '-' and
// non-empty dot-separated labels.
func isDomainLike(s string) bool {
	for _, label := range strings.Split(s, ".") {
		if label == "" {
			return false
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !isAlpha(c) && !isDigit(c) && c != '-' {
				return false
			}
		}
	}
	return true
}

// comment formats a " (comment)"; empty for an empty text.
func comment(s string) string {
	s = clean(s)
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

// clean drops control characters (CR, LF, NUL, …), bounds the length and
// replaces the characters that delimit results, comments and quoted
// strings. Quoting them would be valid RFC 8601, but values come from the
// sender (MAIL FROM, HELO, DNS) and naive downstream parsers split on ';'
// even inside quotes, so `MAIL FROM:<"x;dkim=pass"@evil.example>` must not
// reach them as written.
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r < 0x20 || r == 0x7f:
			return -1
		case r == ';':
			return ','
		case r == '(':
			return '['
		case r == ')':
			return ']'
		case r == '"':
			return '\''
		case r == '\\':
			return '/'
		}
		return r
	}, s)
	if len(s) > maxValueLen {
		s = strings.ToValidUTF8(s[:maxValueLen], "")
	}
	return s
}

// StripAuthResults removes from a raw header block every
// Authentication-Results field whose authserv-id is authservID (compared
// case-insensitively, a trailing dot ignored, after any comments and folding
// whitespace, quoted or not), so that nobody upstream can speak in our
// name (RFC 8601 §5). Everything else, including the blank line ending the
// header and anything after it, is returned byte for byte. removed counts
// the fields taken out.
func StripAuthResults(header []byte, authservID string) (out []byte, removed int) {
	want := normalizeID(authservID)
	out = make([]byte, 0, len(header))
	rest := header
	for len(rest) > 0 {
		end := fieldEnd(rest)
		field := rest[:end]
		if end == 0 { // the blank line: the header ends here
			return append(out, rest...), removed
		}
		rest = rest[end:]
		name, val, ok := bytes.Cut(field, []byte(":"))
		if ok && bytes.EqualFold(bytes.TrimRight(name, " \t"), []byte("Authentication-Results")) &&
			want != "" && normalizeID(authservIDOf(val)) == want {
			removed++
			continue
		}
		out = append(out, field...)
	}
	return out, removed
}

// fieldEnd returns the length of the header field at the start of b: its
// first line and every following line that starts with SP or HTAB. It is 0
// when b starts with the blank line that ends the header.
func fieldEnd(b []byte) int {
	n := 0
	for first := true; n < len(b); first = false {
		if !first && b[n] != ' ' && b[n] != '\t' {
			break
		}
		i := bytes.IndexByte(b[n:], '\n')
		line := b[n:]
		if i >= 0 {
			line = b[n : n+i+1]
		}
		if first && (string(line) == "\r\n" || string(line) == "\n") {
			return 0
		}
		n += len(line)
	}
	return n
}

// authservIDOf returns the authserv-id at the start of an
// Authentication-Results field body: after CFWS, a token or quoted-string.
func authservIDOf(v []byte) string {
	i := skipCFWS(v, 0)
	if i < len(v) && v[i] == '"' {
		var b strings.Builder
		for i++; i < len(v) && v[i] != '"'; i++ {
			if v[i] == '\\' && i+1 < len(v) {
				i++
			}
			if v[i] != '\r' && v[i] != '\n' {
				b.WriteByte(v[i])
			}
		}
		return b.String()
	}
	j := i
	for j < len(v) && strings.IndexByte(" \t\r\n;()\"", v[j]) < 0 {
		j++
	}
	return string(v[i:j])
}

// skipCFWS skips folding whitespace and (nested) comments from i.
func skipCFWS(v []byte, i int) int {
	depth := 0
	for i < len(v) {
		switch c := v[i]; {
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case c == '\\' && depth > 0:
			i++
		case depth == 0 && c != ' ' && c != '\t' && c != '\r' && c != '\n':
			return i
		}
		i++
	}
	// A quoted-pair at the very end steps past it.
	return min(i, len(v))
}

func normalizeID(s string) string {
	return strings.ToLower(strings.TrimSuffix(strings.TrimSpace(s), "."))
}
