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
	var segments [][2]int // the bytes outside /URI strings, scanned as text afterwards
	seg := 0
	for off := 0; !x.full(); {
		i := bytes.Index(data[off:], []byte("/URI"))
		if i < 0 {
			break
		}
		off += i + 4
		if s, n, ok := pdfString(data[off:]); ok {
			x.add(s, "pdf", "")
			segments = append(segments, [2]int{seg, off})
			off += n
			seg = off
		}
	}
	segments = append(segments, [2]int{seg, len(data)})
	for _, sg := range segments {
		if x.full() {
			break
		}
		x.text(string(data[sg[0]:sg[1]]), "text")
	}
	return x.urls
}

// pdfString decodes the PDF string object at the start of b (after
// whitespace): a literal (...) string with its escapes and balanced
// parentheses, or a hex <...> string, and the number of bytes it took
// (whitespace included). It reads at most 4 KiB.
func pdfString(in []byte) (string, int, bool) {
	b := bytes.TrimLeft(in, " \t\r\n\f\x00")
	skipped := len(in) - len(b)
	if len(b) > 4096 {
		b = b[:4096]
	}
	if len(b) == 0 {
		return "", 0, false
	}
	switch b[0] {
	case '(':
		s, n, ok := pdfLiteral(b[1:])
		return s, skipped + 1 + n, ok
	case '<':
		end := bytes.IndexByte(b, '>')
		if end < 0 {
			return "", 0, false
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
			return "", 0, false
		}
		return string(out), skipped + end + 1, true
	}
	return "", 0, false
}

// pdfLiteral decodes a literal string body (after the opening
// parenthesis) and returns the bytes taken, the closing one included.
func pdfLiteral(b []byte) (string, int, bool) {
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
				return string(out), i + 1, true
			}
			depth--
			out = append(out, c)
		default:
			out = append(out, c)
		}
	}
	return "", 0, false
}
