package attach

import (
	"testing"

	"golang.org/x/text/unicode/norm"
)

// TestNFKCEveryRune: nfkc agrees with norm.NFKC.String for every character
// of the Basic Multilingual Plane, alone and between characters it could
// compose with or be decomposed next to.
func TestNFKCEveryRune(t *testing.T) {
	stable := 0
	for r := rune(0); r < 0x10000; r++ {
		if r >= 0xD800 && r <= 0xDFFF {
			continue
		}
		c := string(r)
		if nfkcStable(r) {
			stable++
		}
		for _, s := range []string{c, "a" + c, "カ" + c, c + "\u3099", c + "\u0301", "가" + c + "a", c + c + "ﾞ", "\u1100" + c, "e" + c + "\u0301", c + "\u3000x"} {
			if got, want := nfkc(s), norm.NFKC.String(s); got != want {
				t.Fatalf("nfkc(%q) = %q, norm gives %q", s, got, want)
			}
		}
	}
	// Japanese text must mostly take the copying path: kana, kanji and
	// their punctuation are stable.
	for _, r := range "あがアガ見積書、。「」・ー" {
		if !nfkcStable(r) {
			t.Errorf("%q (%U) not stable", r, r)
		}
	}
	t.Logf("%d stable characters", stable)
}

func FuzzNFKC(f *testing.F) {
	for _, s := range []string{"", "abc", "お世話になっております。", "ｶﾞｷﾞ　ＡＢＣ１２３", "e\u0301\u0301", "가\u11a8", "\xff\xfeカ\u3099",
		"ﾊﾟｽﾜｰﾄﾞ：Abc123", "①②③ ㍻ ㌔", "\U0001F600 x", string(make([]byte, 40)) + "\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := nfkc(s), norm.NFKC.String(s); got != want {
			t.Fatalf("nfkc(%q) = %q, norm gives %q", s, got, want)
		}
	})
}

func BenchmarkNFKC(b *testing.B) {
	for name, s := range map[string]string{
		"ascii":    string(repeatLine("Lorem ipsum dolor sit amet, consectetur adipiscing elit\r\n", 100<<10)),
		"japanese": string(repeatLine("お世話になっております。見積書をお送りします。ご確認ください。\r\n", 100<<10)),
		"japanese-signature": string(repeatLine("お世話になっております。見積書をお送りします。ご確認ください。\r\n"+
			"よろしくお願いいたします。\r\n山田　太郎\r\nＴＥＬ：０３－１２３４－５６７８\r\n", 100<<10)),
		"mixed": string(repeatLine("お世話になっております。　ＡＢＣ商事の山田です。ﾊﾟｽﾜｰﾄﾞは別途。\r\n", 100<<10)),
	} {
		b.Run(name+"/nfkc", func(b *testing.B) {
			b.SetBytes(int64(len(s)))
			for b.Loop() {
				nfkc(s)
			}
		})
		b.Run(name+"/norm", func(b *testing.B) {
			b.SetBytes(int64(len(s)))
			for b.Loop() {
				norm.NFKC.String(s)
			}
		})
	}
}

func repeatLine(line string, n int) []byte {
	var out []byte
	for len(out) < n {
		out = append(out, line...)
	}
	return out
}
