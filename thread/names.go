package thread

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// maxName bounds the display name normalised.
const maxName = 512

// NameTokens normalises a display name for matching: NFKC (full-width and
// half-width forms: ﾔﾏﾀﾞ → ヤマダ), lower case, hiragana folded to katakana,
// punctuation and spaces as separators, honorifics (様, さん, 殿, Mr, Dr…)
// and surrounding quotes dropped. Initials stay as one-rune tokens.
func NameTokens(name string) []string {
	if len(name) > maxName {
		name = name[:maxName]
	}
	name = strings.ToLower(norm.NFKC.String(name))
	name = strings.Map(func(r rune) rune {
		switch {
		case r >= 'ぁ' && r <= 'ゖ':
			return r + ('ァ' - 'ぁ')
		case unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r) || r == 'ー':
			return r
		}
		return ' '
	}, name)
	var out []string
	for _, t := range strings.Fields(name) {
		for _, suf := range []string{"様", "さん", "サン", "殿", "氏", "くん", "クン"} {
			if strings.HasSuffix(t, suf) && utf8.RuneCountInString(t) > utf8.RuneCountInString(suf) {
				t = strings.TrimSuffix(t, suf)
			}
		}
		switch t {
		case "mr", "mrs", "ms", "miss", "dr", "prof", "様", "さん", "殿", "氏":
			continue
		}
		out = append(out, t)
	}
	return out
}

// NameKey is the lookup key of a display name: the runes of its tokens of
// two or more runes, sorted, so that order, spacing, case and width do not
// matter ("山田 太郎", "山田太郎" and "太郎 山田" share a key, as do "Taro
// Yamada" and "YAMADA Taro"). Equal keys are candidates; MatchName decides.
func NameKey(name string) string {
	var rs []rune
	for _, t := range NameTokens(name) {
		if utf8.RuneCountInString(t) >= 2 {
			rs = append(rs, []rune(t)...)
		}
	}
	if len(rs) < 3 {
		return "" // too short to mean anyone
	}
	slices.Sort(rs)
	return string(rs)
}

func isCJK(s string) bool {
	for _, r := range s {
		if unicode.Is(unicode.Han, r) || unicode.Is(unicode.Katakana, r) || unicode.Is(unicode.Hiragana, r) {
			return true
		}
	}
	return false
}

// MatchName reports whether a display name shows a protected person's name,
// in the DDEI manner: complete and partial matches after normalisation
// (NameTokens). "Taro Yamada" matches "Yamada Taro", "T. Yamada",
// "Taro A. Yamada" and "Taro Yamada (CEO)"; "山田 太郎" matches "山田太郎",
// "山田太郎社長" and "太郎 山田"; "ヤマダ タロウ" matches "ﾔﾏﾀﾞ ﾀﾛｳ". A surname
// alone does not match, and neither does a name sharing one token.
func MatchName(display, protected string) bool {
	d, p := NameTokens(display), NameTokens(protected)
	if len(d) == 0 || len(p) == 0 {
		return false
	}
	cd, cp := strings.Join(d, ""), strings.Join(p, "")
	if cd == cp && utf8.RuneCountInString(cp) >= 3 {
		return true
	}
	if isCJK(cp) && utf8.RuneCountInString(cp) >= 3 {
		rev := slices.Clone(p)
		slices.Reverse(rev)
		if strings.Contains(cd, cp) || strings.Contains(cd, strings.Join(rev, "")) {
			return true
		}
	}
	var full []string
	for _, t := range p {
		if utf8.RuneCountInString(t) >= 2 {
			full = append(full, t)
		}
	}
	if len(full) < 2 {
		return false // one-token names match only whole (above)
	}
	used := make([]bool, len(d))
	exact, initials := 0, 0
	for _, want := range full {
		if i := indexUnused(d, used, func(t string) bool { return t == want }); i >= 0 {
			used[i] = true
			exact++
			continue
		}
		first, _ := utf8.DecodeRuneInString(want)
		if i := indexUnused(d, used, func(t string) bool {
			r, n := utf8.DecodeRuneInString(t)
			return n == len(t) && r == first
		}); i >= 0 {
			used[i] = true
			initials++
			continue
		}
		return false
	}
	return exact >= 1 && initials <= 1
}

func indexUnused(ts []string, used []bool, ok func(string) bool) int {
	for i, t := range ts {
		if !used[i] && ok(t) {
			return i
		}
	}
	return -1
}

// MatchVIP returns the first protected name the display name shows.
func MatchVIP(display string, vips []string) (string, bool) {
	if strings.TrimSpace(display) == "" {
		return "", false
	}
	for _, v := range vips {
		if MatchName(display, v) {
			return v, true
		}
	}
	return "", false
}

// addressesIn finds the addr-specs written in a display name, after NFKC
// (full-width "＠" and letters count): "yamada@corp.example (社長)".
func addressesIn(name string) []string {
	if name == "" {
		return nil
	}
	n := norm.NFKC.String(name)
	if !strings.Contains(n, "@") {
		return nil
	}
	var out []string
	for _, tok := range strings.FieldsFunc(n, func(r rune) bool {
		return r == ' ' || r == '\t' || r == '"' || r == '\'' || r == '<' || r == '>' || r == '(' || r == ')' ||
			r == '[' || r == ']' || r == ',' || r == ';' || r == ':' || r == '　' || r == '「' || r == '」'
	}) {
		i := strings.LastIndexByte(tok, '@')
		if i <= 0 || i == len(tok)-1 || !strings.Contains(tok[i+1:], ".") {
			continue
		}
		out = append(out, strings.ToLower(strings.TrimRight(tok, ".")))
		if len(out) == 8 {
			break
		}
	}
	return out
}
