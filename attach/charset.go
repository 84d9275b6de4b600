package attach

import (
	"bytes"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/jhillyerd/enmime/v2"
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

// decodeWords decodes RFC 2047 encoded words (any charset enmime knows,
// which includes ISO-2022-JP and Shift_JIS) and then raw 8-bit bytes.
func decodeWords(s string) string {
	if strings.Contains(s, "=?") {
		s = enmime.DecodeRFC2047(s)
	}
	return decodeRaw(s)
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
