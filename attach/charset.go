package attach

import (
	"bytes"
	"encoding/base64"
	"io"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/ianaindex"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/transform"
)

// charsetAliases covers Japanese names that the WHATWG and IANA indexes
// do not know.
var charsetAliases = map[string]encoding.Encoding{
	"cp932":          japanese.ShiftJIS,
	"ms932":          japanese.ShiftJIS,
	"windows-31j":    japanese.ShiftJIS,
	"x-sjis":         japanese.ShiftJIS,
	"sjis":           japanese.ShiftJIS,
	"shift-jis":      japanese.ShiftJIS,
	"cp50220":        japanese.ISO2022JP,
	"cp50221":        japanese.ISO2022JP,
	"iso-2022-jp-ms": japanese.ISO2022JP,
	"iso-2022-jp-1":  japanese.ISO2022JP,
	"iso-2022-jp-2":  japanese.ISO2022JP,
	"iso-2022-jp-3":  japanese.ISO2022JP,
	"eucjp":          japanese.EUCJP,
	"euc_jp":         japanese.EUCJP,
}

// lookupCharset returns the encoding for a MIME charset name, or nil.
func lookupCharset(name string) encoding.Encoding {
	n := strings.ToLower(strings.Trim(strings.TrimSpace(name), `"'`))
	if n == "" {
		return nil
	}
	if e, ok := charsetAliases[n]; ok {
		return e
	}
	if e, err := htmlindex.Get(n); err == nil && e != nil {
		return e
	}
	if e, err := ianaindex.MIME.Encoding(n); err == nil && e != nil {
		return e
	}
	return nil
}

// decodeCharset converts b from charset to UTF-8; ok is false when the
// charset is unknown or the bytes do not decode cleanly.
func decodeCharset(charset string, b []byte) (string, bool) {
	n := strings.ToLower(strings.TrimSpace(charset))
	if n == "utf-8" || n == "utf8" || n == "us-ascii" || n == "ascii" {
		if utf8.Valid(b) {
			return string(b), true
		}
		return strings.ToValidUTF8(string(b), "\uFFFD"), false
	}
	e := lookupCharset(charset)
	if e == nil {
		return "", false
	}
	out, _, err := transform.Bytes(e.NewDecoder(), b)
	if err != nil {
		return "", false
	}
	s := string(out)
	return s, !strings.ContainsRune(s, utf8.RuneError)
}

// decodeRaw turns header or name bytes of unknown encoding into UTF-8:
// valid UTF-8 stays, ISO-2022-JP escapes are decoded, then Shift_JIS and
// EUC-JP are tried (raw 8-bit Japanese is common in the wild), and
// finally Windows-1252.
func decodeRaw(s string) string {
	if strings.Contains(s, "\x1b$") || strings.Contains(s, "\x1b(") {
		if out, ok := decodeCharset("iso-2022-jp", []byte(s)); ok {
			return out
		}
	}
	if utf8.ValidString(s) {
		return s
	}
	for _, cs := range []string{"shift_jis", "euc-jp"} {
		if out, ok := decodeCharset(cs, []byte(s)); ok {
			return out
		}
	}
	if out, ok := decodeCharset("windows-1252", []byte(s)); ok {
		return out
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// decodeWords decodes RFC 2047 encoded words and raw 8-bit bytes.
//
// Adjacent encoded words in one charset are joined as bytes before the
// charset is decoded: Japanese mailers often split a long Subject or
// file name between the bytes of one character (=?Shift_JIS?B?..?= with
// the lead byte in one word and the trail byte in the next), which
// word-by-word decoders (enmime's, Go's mime.WordDecoder) turn into
// replacement characters. White space between encoded words is dropped
// (RFC 2047 §6.2); text outside them goes through decodeRaw on its own.
// A word in a charset nothing here knows is kept as it stands.
func decodeWords(s string) string {
	if !strings.Contains(s, "=?") {
		return decodeRaw(s)
	}
	var (
		out   strings.Builder
		run   []byte // decoded bytes of the current run of words
		runCS string // its charset ("" = no run)
	)
	flush := func() {
		if runCS == "" {
			return
		}
		text, ok := decodeCharset(runCS, run)
		if !ok && text == "" {
			text = decodeRaw(string(run))
		}
		out.WriteString(text)
		run, runCS = run[:0], ""
	}
	for {
		i := strings.Index(s, "=?")
		if i < 0 {
			break
		}
		cs, raw, n, ok := encodedWord(s[i:])
		if !ok {
			flush()
			out.WriteString(decodeRaw(s[:i+2]))
			s = s[i+2:]
			continue
		}
		if gap := s[:i]; runCS == "" || strings.Trim(gap, " \t\r\n") != "" {
			flush()
			out.WriteString(decodeRaw(gap))
		}
		switch {
		case lookupCharset(cs) == nil && !isUTF8Name(cs):
			flush()
			out.WriteString(decodeRaw(s[i : i+n]))
		case runCS != "" && !strings.EqualFold(runCS, cs):
			flush()
			fallthrough
		default:
			runCS = cs
			run = append(run, raw...)
		}
		s = s[i+n:]
	}
	flush()
	out.WriteString(decodeRaw(s))
	return out.String()
}

// joinWords rewrites each run of two or more adjacent encoded words in
// one charset as a single UTF-8 encoded word, so that a parser that
// decodes word by word (the address list parser) reads a character split
// between two words whole. Everything else is left as it is.
func joinWords(s string) string {
	if strings.Count(s, "=?") < 2 {
		return s
	}
	var out strings.Builder
	for {
		i := strings.Index(s, "=?")
		if i < 0 {
			break
		}
		cs, raw, n, ok := encodedWord(s[i:])
		if !ok || lookupCharset(cs) == nil && !isUTF8Name(cs) {
			out.WriteString(s[:i+2])
			s = s[i+2:]
			continue
		}
		out.WriteString(s[:i])
		end, words := i+n, 1
		for {
			j := end
			for j < len(s) && (s[j] == ' ' || s[j] == '\t' || s[j] == '\r' || s[j] == '\n') {
				j++
			}
			cs2, raw2, n2, ok2 := encodedWord(s[j:])
			if !ok2 || !strings.EqualFold(cs, cs2) {
				break
			}
			raw = append(raw, raw2...)
			end, words = j+n2, words+1
		}
		text, dok := decodeCharset(cs, raw)
		if words == 1 || !dok && text == "" {
			out.WriteString(s[i:end])
		} else {
			out.WriteString("=?UTF-8?B?" + base64.StdEncoding.EncodeToString([]byte(text)) + "?=")
		}
		s = s[end:]
	}
	out.WriteString(s)
	return out.String()
}

func isUTF8Name(cs string) bool {
	n := strings.ToLower(cs)
	return n == "utf-8" || n == "utf8" || n == "us-ascii" || n == "ascii"
}

// encodedWord parses one "=?charset?B|Q?text?=" at the start of s: the
// charset (without an RFC 2231 language), the decoded bytes and the
// length of the word. Base64 is read leniently (padding optional).
func encodedWord(s string) (charset string, raw []byte, n int, ok bool) {
	if !strings.HasPrefix(s, "=?") {
		return "", nil, 0, false
	}
	rest := s[2:]
	q1 := strings.IndexByte(rest, '?')
	if q1 <= 0 || q1+2 >= len(rest) || rest[q1+2] != '?' {
		return "", nil, 0, false
	}
	charset, enc := rest[:q1], rest[q1+1]
	if k := strings.IndexByte(charset, '*'); k >= 0 {
		charset = charset[:k]
	}
	body := rest[q1+3:]
	end := strings.Index(body, "?=")
	if end < 0 || strings.ContainsAny(body[:end], " \t\r\n") {
		return "", nil, 0, false
	}
	text := body[:end]
	n = 2 + q1 + 3 + end + 2
	switch enc {
	case 'B', 'b':
		b, err := io.ReadAll(newBase64Reader(strings.NewReader(text)))
		if err != nil {
			return "", nil, 0, false
		}
		raw = b
	case 'Q', 'q':
		raw = make([]byte, 0, len(text))
		for i := 0; i < len(text); i++ {
			c := text[i]
			switch {
			case c == '_':
				raw = append(raw, ' ')
			case c == '=' && i+2 < len(text):
				if h, ok1 := unhex(text[i+1]); ok1 {
					if l, ok2 := unhex(text[i+2]); ok2 {
						raw = append(raw, h<<4|l)
						i += 2
						continue
					}
				}
				raw = append(raw, c)
			default:
				raw = append(raw, c)
			}
		}
	default:
		return "", nil, 0, false
	}
	return charset, raw, n, true
}

// charsetReader wraps r with a decoder for charset, or returns r.
func charsetReader(charset string, r io.Reader) io.Reader {
	e := lookupCharset(charset)
	if e == nil {
		return r
	}
	return transform.NewReader(r, e.NewDecoder())
}

// toUTF8 decodes text body bytes declared as charset; undeclared or
// unknown charsets go through decodeRaw.
func toUTF8(charset string, b []byte) string {
	if charset != "" {
		if out, ok := decodeCharset(charset, b); ok {
			return out
		}
	}
	if bytes.Contains(b, []byte("\x1b$B")) {
		if out, ok := decodeCharset("iso-2022-jp", b); ok {
			return out
		}
	}
	return decodeRaw(string(b))
}
