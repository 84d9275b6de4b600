package auth

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// macroString is a parsed macro-string (RFC 7208 §7.1): literal text and
// macro-expands in order. "%%", "%_" and "%-" are stored as literals but
// remembered as macro-expands for the domain-end rule.
type macroString struct {
	parts   []macroPart
	lastMac bool // the string ends with a macro-expand
}

type macroPart struct {
	literal string
	letter  byte // 0 for a literal; lower-case macro letter otherwise
	upper   bool // URL-escape the expansion (RFC 7208 §7.3)
	digits  int  // keep this many right-hand parts; 0 keeps all
	reverse bool
	delims  string // split characters; "" means "."
}

func (ms *macroString) endsWithMacro() bool { return ms.lastMac }

// literalTail returns the literal text after the last %{...} expansion.
func (ms *macroString) literalTail() string {
	i := len(ms.parts)
	for i > 0 && ms.parts[i-1].letter == 0 {
		i--
	}
	var b strings.Builder
	for _, p := range ms.parts[i:] {
		b.WriteString(p.literal)
	}
	return b.String()
}

// parseMacroString parses s. With exp set, the explanation-only letters
// c, r and t are allowed (RFC 7208 §7.1) and so are spaces.
func parseMacroString(s string, exp bool) (*macroString, error) {
	ms := &macroString{}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			ms.parts = append(ms.parts, macroPart{literal: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			if (c < 0x21 || c > 0x7e) && !(exp && c == ' ') {
				return nil, fmt.Errorf("invalid character 0x%02x in macro-string", c)
			}
			lit.WriteByte(c)
			ms.lastMac = false
			continue
		}
		if i+1 >= len(s) {
			return nil, errors.New("'%' at end of macro-string")
		}
		i++
		ms.lastMac = true
		switch s[i] {
		case '%':
			lit.WriteByte('%')
		case '_':
			lit.WriteByte(' ')
		case '-':
			lit.WriteString("%20")
		case '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return nil, errors.New("unterminated macro")
			}
			p, err := parseMacroExpand(s[i+1:i+end], exp)
			if err != nil {
				return nil, err
			}
			flush()
			ms.parts = append(ms.parts, p)
			i += end
		default:
			return nil, fmt.Errorf("invalid macro %q", s[i-1:i+1])
		}
	}
	flush()
	return ms, nil
}

// parseMacroExpand parses the inside of "%{...}":
// macro-letter transformers *delimiter.
func parseMacroExpand(s string, exp bool) (macroPart, error) {
	if s == "" {
		return macroPart{}, errors.New("empty macro")
	}
	p := macroPart{letter: s[0] | 0x20, upper: s[0] >= 'A' && s[0] <= 'Z'}
	switch p.letter {
	case 's', 'l', 'o', 'd', 'i', 'p', 'v', 'h':
	case 'c', 'r', 't':
		if !exp {
			return p, fmt.Errorf("macro letter %q is allowed only in explanations", s[0])
		}
	default:
		return p, fmt.Errorf("unknown macro letter %q", s[0])
	}
	i := 1
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	if i > 1 {
		n, err := strconv.Atoi(s[1:i])
		if err != nil || n > 128 {
			n = 128 // more parts than any name has: keep all
		}
		if n == 0 {
			return p, errors.New("macro transformer digit must be nonzero")
		}
		p.digits = n
	}
	if i < len(s) && (s[i] == 'r' || s[i] == 'R') {
		p.reverse = true
		i++
	}
	p.delims = s[i:]
	for ; i < len(s); i++ {
		if strings.IndexByte(".-+,/_=", s[i]) < 0 {
			return p, fmt.Errorf("invalid macro delimiter %q", s[i])
		}
	}
	return p, nil
}

// macroValues supplies the values of the macro letters.
type macroValues interface {
	macroValue(letter byte) string
}

// expand returns the expansion of ms (RFC 7208 §7.3).
func (ms *macroString) expand(v macroValues) string {
	var b strings.Builder
	for _, p := range ms.parts {
		if p.letter == 0 {
			b.WriteString(p.literal)
			continue
		}
		val := transform(v.macroValue(p.letter), p)
		if p.upper {
			val = urlEscape(val)
		}
		b.WriteString(val)
	}
	return b.String()
}

// transform splits value on the delimiters, reverses, keeps the right-most
// parts and rejoins with dots.
func transform(value string, p macroPart) string {
	if p.digits == 0 && !p.reverse && (p.delims == "" || p.delims == ".") {
		return value
	}
	delims := p.delims
	if delims == "" {
		delims = "."
	}
	parts := splitAny(value, delims)
	if p.reverse {
		for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
			parts[i], parts[j] = parts[j], parts[i]
		}
	}
	if p.digits > 0 && p.digits < len(parts) {
		parts = parts[len(parts)-p.digits:]
	}
	return strings.Join(parts, ".")
}

func splitAny(s, delims string) []string {
	var parts []string
	start := 0
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(delims, s[i]) >= 0 {
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// urlEscape escapes every byte outside the URI unreserved set
// (RFC 3986 §2.3), as RFC 7208 §7.3 requires for upper-case macros.
func urlEscape(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isAlpha(c) || isDigit(c) || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xf])
	}
	return b.String()
}
