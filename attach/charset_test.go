package attach

import (
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/transform"
)

func encodeIn(t testing.TB, cs, s string) []byte {
	t.Helper()
	e := lookupCharset(cs)
	if e == nil {
		return []byte(s)
	}
	b, _, err := transform.Bytes(e.NewEncoder(), []byte(s))
	if err != nil {
		t.Fatalf("encode %q in %s: %v", s, cs, err)
	}
	return b
}

func bWord(cs string, b []byte) string {
	return "=?" + cs + "?B?" + base64.StdEncoding.EncodeToString(b) + "?="
}

func qWord(cs string, b []byte) string {
	var q strings.Builder
	for _, c := range b {
		switch {
		case c == ' ':
			q.WriteByte('_')
		case c > ' ' && c < 0x7f && c != '=' && c != '?' && c != '_':
			q.WriteByte(c)
		default:
			fmt.Fprintf(&q, "=%02X", c)
		}
	}
	return "=?" + cs + "?Q?" + q.String() + "?="
}

func TestDecodeWords(t *testing.T) {
	sj := func(s string) []byte { return encodeIn(t, "shift_jis", s) }
	name := sj("請求書.pdf.exe") // 請 is 2 bytes: split after 3 bytes cuts 求 in half
	for _, c := range []struct{ in, want string }{
		{"plain", "plain"},
		{bWord("UTF-8", []byte("来週の打ち合わせ")), "来週の打ち合わせ"},
		{bWord("ISO-2022-JP", encodeIn(t, "iso-2022-jp", "請求書送付")), "請求書送付"},
		// A character split between two words, the bug of many mailers.
		{bWord("Shift_JIS", name[:3]) + " " + bWord("Shift_JIS", name[3:]), "請求書.pdf.exe"},
		{bWord("Shift_JIS", name[:3]) + "\r\n " + qWord("shift_jis", name[3:]), "請求書.pdf.exe"},
		{bWord("UTF-8", []byte("請求書")[:4]) + " " + bWord("utf-8", []byte("請求書")[4:]), "請求書"},
		// White space between words goes; around them it stays.
		{"Re: " + bWord("UTF-8", []byte("見積")) + " " + bWord("UTF-8", []byte("依頼")) + " (2)", "Re: 見積依頼 (2)"},
		// Different charsets in a row are decoded each on its own.
		{bWord("ISO-2022-JP", encodeIn(t, "iso-2022-jp", "御中")) + " " + bWord("UTF-8", []byte("様")), "御中様"},
		{qWord("iso-8859-1", []byte("caf\xe9")) + " au lait", "café au lait"},
		{"=?unknown-cs?B?QUJD?= x", "=?unknown-cs?B?QUJD?= x"},
		{"=?broken", "=?broken"},
		{"a =?UTF-8?B?44GC?=b", "a あb"},
		{"=?UTF-8*ja?B?44GC?=", "あ"},
		{"=?UTF-8?B?44GC?=\t=?UTF-8?Q?=E3=81=84?=", "あい"},
		// Raw 8-bit Shift_JIS outside encoded words (old mailers).
		{string(sj("見積書")) + " " + bWord("UTF-8", []byte("送付")), "見積書 送付"},
	} {
		if got := decodeWords(c.in); got != c.want {
			t.Errorf("decodeWords(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// Words cut at character boundaries must read as Go's own decoder reads
// them.
func TestDecodeWordsMatchesWordDecoder(t *testing.T) {
	dec := &mime.WordDecoder{CharsetReader: func(cs string, r io.Reader) (io.Reader, error) {
		e := lookupCharset(cs)
		if e == nil {
			return nil, fmt.Errorf("unknown charset %s", cs)
		}
		return transform.NewReader(r, e.NewDecoder()), nil
	}}
	texts := []string{"お世話になっております", "請求書（11月分）の送付について", "ＡＢＣ１２３ ｶﾀｶﾅ", "Invoice 2026-11 ①②"}
	for _, cs := range []string{"UTF-8", "ISO-2022-JP", "Shift_JIS", "EUC-JP"} {
		for _, text := range texts {
			if cs == "ISO-2022-JP" && strings.ContainsAny(text, "ｶﾀﾅ①②") {
				continue // not in plain ISO-2022-JP
			}
			if cs == "EUC-JP" && strings.ContainsAny(text, "①②") {
				continue
			}
			runes := []rune(text)
			for cut := 1; cut < len(runes); cut += 3 {
				var words []string
				for i := 0; i < len(runes); i += cut {
					part := string(runes[i:min(i+cut, len(runes))])
					b := encodeIn(t, cs, part)
					if i%2 == 0 {
						words = append(words, bWord(cs, b))
					} else {
						words = append(words, qWord(cs, b))
					}
				}
				in := strings.Join(words, "\r\n ")
				want, err := dec.DecodeHeader(in)
				if err != nil {
					t.Fatal(err)
				}
				if got := decodeWords(in); got != want {
					t.Errorf("%s cut %d: %q, Go's decoder %q", cs, cut, got, want)
				}
			}
		}
	}
}

func FuzzDecodeWords(f *testing.F) {
	for _, s := range []string{"=?UTF-8?B?44GC?=", "=?shift_jis?B?kL8=?= =?shift_jis?B?i4E=?=", "a=?x?Q?=4?=", "=?utf-8?q?_?= =?", "=??B??="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := decodeWords(s)
		if !utf8.ValidString(got) {
			t.Fatalf("decodeWords(%q) = %q: not UTF-8", s, got)
		}
	})
}

// A display name split inside a character reads whole, as the Subject does.
func TestAddressesSplitWords(t *testing.T) {
	n := encodeIn(t, "shift_jis", "山田 太郎")
	split := bWord("Shift_JIS", n[:3]) + " " + bWord("Shift_JIS", n[3:])
	for _, v := range []string{
		split + " <yamada@corp.example>",
		`"` + split + `" <Yamada@corp.example>`,
		bWord("ISO-2022-JP", encodeIn(t, "iso-2022-jp", "山田")) + " " + bWord("UTF-8", []byte("太郎")[:2]) + bWord("UTF-8", []byte("太郎")[2:]) + " <yamada@corp.example>",
	} {
		got := addresses(v)
		if len(got) != 1 || strings.ReplaceAll(got[0].Name, " ", "") != "山田太郎" || got[0].Addr != "yamada@corp.example" {
			t.Errorf("addresses(%q) = %q", v, got)
		}
	}
	// Single words and unknown charsets are left for the parser.
	for _, s := range []string{"=?UTF-8?B?44GC?= <a@b>", "=?x-unknown?B?QQ==?= =?x-unknown?B?QQ==?=", "no words"} {
		if got := joinWords(s); got != s {
			t.Errorf("joinWords(%q) = %q", s, got)
		}
	}
}

func FuzzJoinWords(f *testing.F) {
	for _, s := range []string{"=?shift_jis?B?kL8=?= =?shift_jis?B?i4E=?= <a@b>", "\"=?utf-8?q?a?= =?UTF-8?Q?b?=\" <x@y>", "=?a?B?=?=?"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, a := range addresses(s) {
			if !utf8.ValidString(a.Name) {
				t.Fatalf("addresses(%q): name %q not UTF-8", s, a.Name)
			}
		}
	})
}
