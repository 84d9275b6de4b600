package reputation

import (
	"bytes"
	"encoding/hex"
)

// ExtractPDF finds the links in a PDF's bytes, or in text extracted from a
// PDF: /URI action targets (literal strings with their escapes, and hex
// strings) and URLs in uncompressed text. It returns at most max URLs
// (max <= 0: DefaultMaxURLs). Compressed streams are not inflated here; a
// caller that has decompressed them passes their text through ExtractURLs.
func ExtractPDF(data []byte, max int) []URL {
	x := newExtractor(max)
	rest := data
	for !x.full() {
		i := bytes.Index(rest, []byte("/URI"))
		if i < 0 {
			break
		}
		rest = rest[i+4:]
		if s, ok := pdfString(rest); ok {
			x.add(s, "pdf", "")
		}
	}
	if !x.full() {
		x.text(string(data), "text")
	}
	return x.urls
}

// pdfString decodes the PDF string object at the start of b (after
// whitespace): a literal (...) string with its escapes and balanced
// parentheses, or a hex <...> string. It reads at most 4 KiB.
func pdfString(b []byte) (string, bool) {
	b = bytes.TrimLeft(b, " \t\r\n\f\x00")
	if len(b) > 4096 {
		b = b[:4096]
	}
	if len(b) == 0 {
		return "", false
	}
	switch b[0] {
	case '(':
		return pdfLiteral(b[1:])
	case '<':
		end := bytes.IndexByte(b, '>')
		if end < 0 {
			return "", false
		}
		h := bytes.Map(func(r rune) rune {
			if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
				return -1
			}
			return r
		}, b[1:end])
		if len(h)%2 == 1 {
			h = append(h, '0') // PDF: a missing final digit is 0
		}
		out := make([]byte, hex.DecodedLen(len(h)))
		if _, err := hex.Decode(out, h); err != nil {
			return "", false
		}
		return string(out), true
	}
	return "", false
}

// pdfLiteral decodes a literal string body (after the opening parenthesis).
func pdfLiteral(b []byte) (string, bool) {
	var out []byte
	depth := 0
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c == '\\' && i+1 < len(b):
			i++
			switch e := b[i]; e {
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case '\r', '\n': // line continuation
			default:
				if e >= '0' && e <= '7' {
					v, n := 0, 0
					for ; n < 3 && i+n < len(b) && b[i+n] >= '0' && b[i+n] <= '7'; n++ {
						v = v*8 + int(b[i+n]-'0')
					}
					out = append(out, byte(v))
					i += n - 1
				} else {
					out = append(out, e)
				}
			}
		case c == '(':
			depth++
			out = append(out, c)
		case c == ')':
			if depth == 0 {
				return string(out), true
			}
			depth--
			out = append(out, c)
		default:
			out = append(out, c)
		}
	}
	return "", false
}
