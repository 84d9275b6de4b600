package thread

import (
	"strings"
	"unicode/utf8"

	"github.com/mtibben/confusables"
	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
)

// Domain is a sender domain split for lookalike comparison.
type Domain struct {
	// Registrable is the eTLD+1 in Unicode, lowercased ("пример.com").
	Registrable string
	// Label is Registrable without its public suffix ("пример").
	Label string
	// Suffix is the public suffix ("com", "co.jp").
	Suffix string
	// Skeleton is the UTS #39 skeleton of Label (confusables.Skeleton;
	// it maps "m" to "rn" and Cyrillic "а" to Latin "a").
	Skeleton string
	// IDN is set when the domain was written with xn-- labels or
	// non-ASCII characters.
	IDN bool
	// Host is the whole domain in Unicode, lowercased
	// ("paypal.com.secure-login.net").
	Host string
}

// ParseDomain splits a domain (ASCII, punycode or Unicode) into its
// registrable part. ok is false for what is not a domain under a public
// suffix (an IP literal, a bare TLD, garbage).
func ParseDomain(d string) (Domain, bool) {
	d = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
	if d == "" || len(d) > 253 || strings.HasPrefix(d, "[") {
		return Domain{}, false
	}
	ascii, err := idna.Lookup.ToASCII(d)
	if err != nil {
		// Fall back to the plain form: hostile or odd domains are still
		// compared, not dropped.
		ascii = d
	}
	reg, err := publicsuffix.EffectiveTLDPlusOne(ascii)
	if err != nil {
		return Domain{}, false
	}
	suffix, _ := publicsuffix.PublicSuffix(reg)
	uni, err := idna.Lookup.ToUnicode(reg)
	if err != nil {
		uni = reg
	}
	usuf, err := idna.Lookup.ToUnicode(suffix)
	if err != nil {
		usuf = suffix
	}
	label := strings.TrimSuffix(strings.TrimSuffix(uni, usuf), ".")
	if label == "" {
		return Domain{}, false
	}
	host, err := idna.Lookup.ToUnicode(ascii)
	if err != nil {
		host = ascii
	}
	out := Domain{Registrable: uni, Label: label, Suffix: usuf, Host: host,
		Skeleton: skeleton(label), IDN: strings.Contains(ascii, "xn--") || !isASCII(d)}
	return out, true
}

func skeleton(s string) string {
	return strings.ToLower(confusables.Skeleton(strings.ToLower(s)))
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// Lookalike is one protected domain a sender domain imitates.
type Lookalike struct {
	Domain string // the sender's registrable domain
	Target string // the protected registrable domain it imitates
	Why    string // "homoglyph", "edit distance N", "same name under another TLD"
}

// FindLookalike compares a sender domain with protected domains (the
// local domains and known correspondents' domains): the same skeleton
// (homoglyphs, IDN, rn/m, 1/l, 0/o), the whole protected domain followed
// by "." or "-" inside another registrable domain's name, a
// Damerau-Levenshtein distance of 1 (labels of 5 or more characters) or
// 2 (9 or more) between labels or between skeletons, or the same label
// of 4 or more characters under another public suffix. The domain itself and its subdomains are never
// lookalikes, nor is anything when the sender is itself protected.
func FindLookalike(sender string, protected []Domain) (Lookalike, bool) {
	s, ok := ParseDomain(sender)
	if !ok {
		return Lookalike{}, false
	}
	for _, p := range protected {
		if p.Registrable == s.Registrable {
			return Lookalike{}, false
		}
	}
	for _, p := range protected {
		if why, ok := imitates(s, p); ok {
			return Lookalike{Domain: s.Registrable, Target: p.Registrable, Why: why}, true
		}
	}
	return Lookalike{}, false
}

func imitates(s, p Domain) (string, bool) {
	if p.Label == "" || s.Label == "" {
		return "", false
	}
	if s.Skeleton == p.Skeleton && s.Suffix == p.Suffix {
		return "homoglyph", true
	}
	// The whole protected domain in front of another one
	// ("corp.example.secure-mail.net", "mail.corp.example-login.com"): a
	// reader sees the name they know and stops reading.
	if h := "." + s.Host; strings.Contains(h, "."+p.Registrable+".") || strings.Contains(h, "."+p.Registrable+"-") {
		return "the domain's name put in front of " + s.Registrable, true
	}
	if s.Label == p.Label || s.Skeleton == p.Skeleton {
		if utf8.RuneCountInString(p.Label) >= 4 {
			return "same name under another TLD", true
		}
		return "", false
	}
	n := min(utf8.RuneCountInString(s.Label), utf8.RuneCountInString(p.Label))
	limit := 0
	switch {
	case n >= 9:
		limit = 2
	case n >= 5:
		limit = 1
	}
	if limit == 0 {
		return "", false
	}
	if d := Distance(s.Label, p.Label, limit); d <= limit {
		return "edit distance " + string(rune('0'+d)), true
	}
	if d := Distance(s.Skeleton, p.Skeleton, limit); d <= limit {
		return "homoglyph at edit distance " + string(rune('0'+d)), true
	}
	return "", false
}

// Distance is the Damerau-Levenshtein distance (optimal string alignment:
// insertions, deletions, substitutions and transpositions of adjacent
// runes) between a and b. Past max it returns max+1 early.
func Distance(a, b string, max int) int {
	ra, rb := []rune(a), []rune(b)
	if d := len(ra) - len(rb); d > max || -d > max {
		return max + 1
	}
	if len(ra) > 256 || len(rb) > 256 {
		return max + 1
	}
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			v := min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				v = min(v, prev2[j-2]+1)
			}
			cur[j] = v
			rowMin = min(rowMin, v)
		}
		if rowMin > max {
			return max + 1
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return min(prev[len(rb)], max+1)
}

// freeMail are providers where anyone can have an address: a shared domain
// says nothing about who writes, so relationships there are per address
// and their display names are not trusted.
func freeMail(domain string) bool {
	switch domain {
	case "gmail.com", "googlemail.com", "yahoo.com", "yahoo.co.jp", "ymail.com", "outlook.com",
		"outlook.jp", "hotmail.com", "hotmail.co.jp", "live.com", "live.jp", "msn.com", "icloud.com",
		"me.com", "mac.com", "aol.com", "gmx.com", "gmx.net", "gmx.de", "web.de", "mail.com",
		"yandex.ru", "yandex.com", "mail.ru", "protonmail.com", "proton.me", "zoho.com", "qq.com",
		"163.com", "126.com", "naver.com", "docomo.ne.jp", "ezweb.ne.jp", "au.com", "softbank.ne.jp",
		"i.softbank.jp", "nifty.com", "excite.co.jp", "tutanota.com", "fastmail.com":
		return true
	}
	return false
}

// FreeMail reports whether the registrable domain is a free-mail provider.
func FreeMail(domain string) bool { return freeMail(strings.ToLower(domain)) }
