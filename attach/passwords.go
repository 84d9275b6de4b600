package attach

import (
	"regexp"
	"slices"
	"strings"
)

// The password patterns of shared/reference/targeted-mail-signals.md §b.4,
// applied to NFKC-normalised text (full-width colons, digits and
// half-width katakana are folded first).
const pwLabel = `(?:(?:zip|圧縮|解凍|展開|開封|復号|暗号化|添付|ファイル|書類|資料)(?:ファイル)?(?:用)?(?:の)?\s*)?(?:パスワード|pass\s?word|passcode|pwd|p/w|pw|暗証番号|解凍キー)`

var (
	rePWInlineJA = regexp.MustCompile(`(?i)(?:【|\[)?\s*` + pwLabel +
		`\s*(?:通知)?\s*(?:[】\]]\s*(?:[:=]\s*)?|(?:は|:|=|→|>)\s*)(?:[「『【\[(“"'])?\s*([!-~]{4,64})`)
	rePWNextLineJA = regexp.MustCompile(`(?i)` + pwLabel +
		`[^\n]{0,30}(?:下記|以下|次の|こちら)[^\n]*\n(?:[ \t]*\n)*[ \t]*([!-~]{4,64})[ \t]*(?:\n|$)`)
	rePWInlineEN = regexp.MustCompile(`(?i)\bpass(?:word|code)?\b[^\n.]{0,40}?\b(?:is|are)\b\s*:?\s*["'“]?([!-~]{4,64})`)

	reAnnounceSeparateJA = regexp.MustCompile(`(?i)(?:パスワード|pw|解凍キー)[^\n。]{0,20}?(?:別途|別メール|別のメール|別送|後ほど|のちほど|追って|次のメール|後続のメール|改めて|この後|このあと)[^\n。]{0,20}?(?:お送り|送付|送信|ご連絡|連絡|お知らせ|通知|送ら|お伝え)`)
	reAnnounceSeparateEN = regexp.MustCompile(`(?i)\bpass(?:word|code)?s?\b[^\n]{0,40}\b(?:sent|send|follow|provided|shared)\b[^\n]{0,30}\b(?:separate|another|following|next|later)\b`)
	reAttachEncrypted    = regexp.MustCompile(`(?i)(?:パスワード付き?|パスワードを(?:設定|かけ)|暗号化(?:zip|ファイル|して|済み|しております)|パスワード保護|password[- ]protected|encrypted (?:zip|file|archive))`)
	reSubjPassword       = regexp.MustCompile(`(?i)(?:【|\[|\(|\s|^)(?:解凍)?(?:パスワード|password|pw|pass)(?:通知|のお知らせ|のご連絡|送付|連絡|について)?(?:】|\]|\)|\s|$|:)`)
)

// PasswordCandidates returns the candidate passwords found in a text
// (subject or body, plain text), in order of appearance, post-processed
// as §b.4 advises: variants with a trailing or leading quote or bracket
// trimmed, junk tokens rejected, duplicates removed. It also reports
// whether the text announces an encrypted attachment or a password sent
// separately.
func PasswordCandidates(text string) (cands []string, announced bool) {
	t := nfkc(text)
	for _, win := range passwordWindows(t) {
		// A CRLF body must look like an LF body to the line patterns.
		c, a := passwordCandidates(strings.ReplaceAll(win, "\r\n", "\n"))
		announced = announced || a
		for _, v := range c {
			if !slices.Contains(cands, v) {
				cands = append(cands, v)
			}
		}
	}
	return cands, announced
}

// pwKeywords are the words every pattern needs; only the lines around
// them are handed to the regular expressions, so a long body without them
// costs one pass of hasPWKeyword. The ASCII ones ("pass", "pw", "p/w",
// "encrypted") match in any case and are looked for by hasPWKeyword
// itself, in one pass without a lower-case copy of the text.
var pwKeywordsJA = []string{"パスワード", "暗証番号", "解凍キー", "暗号化"}

// hasPWKeyword reports whether s holds a password keyword.
func hasPWKeyword(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case 'p', 'P':
			if i+1 < len(s) {
				switch s[i+1] {
				case 'w', 'W':
					return true
				case '/':
					if i+2 < len(s) && (s[i+2] == 'w' || s[i+2] == 'W') {
						return true
					}
				case 'a', 'A':
					if i+3 < len(s) && (s[i+2] == 's' || s[i+2] == 'S') && (s[i+3] == 's' || s[i+3] == 'S') {
						return true
					}
				}
			}
		case 'e', 'E':
			if len(s)-i >= len("encrypted") && asciiEqualFold(s[i:i+len("encrypted")], "encrypted") {
				return true
			}
		}
	}
	for _, k := range pwKeywordsJA {
		if strings.Contains(s, k) {
			return true
		}
	}
	return false
}

// asciiEqualFold reports whether s equals the lower-case ASCII lit with
// ASCII letters in either case.
func asciiEqualFold(s, lit string) bool {
	for i := 0; i < len(lit); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lit[i] {
			return false
		}
	}
	return true
}

// passwordWindows returns the parts of an NFKC text that can match: each
// line holding a keyword with the four lines after it (for the next-line
// shape), overlapping windows merged.
func passwordWindows(t string) []string {
	if !hasPWKeyword(t) {
		return nil
	}
	lines := strings.SplitAfter(t, "\n")
	var wins []string
	end := -1
	start := -1
	for i, l := range lines {
		if !hasPWKeyword(l) {
			continue
		}
		if start >= 0 && i > end {
			wins = append(wins, strings.Join(lines[start:end+1], ""))
			start = -1
		}
		if start < 0 {
			start = i
		}
		end = min(i+4, len(lines)-1)
	}
	if start >= 0 {
		wins = append(wins, strings.Join(lines[start:end+1], ""))
	}
	return wins
}

// passwordCandidates runs the patterns over one window of NFKC text.
func passwordCandidates(t string) (cands []string, announced bool) {
	seen := map[string]bool{}
	add := func(tok string) {
		for _, v := range tokenVariants(tok) {
			if !seen[v] && acceptToken(v) {
				seen[v] = true
				cands = append(cands, v)
			}
		}
	}
	type hit struct {
		at  int
		tok string
	}
	var hits []hit
	for _, re := range []*regexp.Regexp{rePWInlineJA, rePWNextLineJA, rePWInlineEN} {
		for _, m := range re.FindAllStringSubmatchIndex(t, 50) {
			hits = append(hits, hit{m[2], t[m[2]:m[3]]})
		}
	}
	// Order of appearance, so that the first announced password is tried first.
	for i := 1; i < len(hits); i++ {
		for j := i; j > 0 && hits[j].at < hits[j-1].at; j-- {
			hits[j], hits[j-1] = hits[j-1], hits[j]
		}
	}
	for _, h := range hits {
		add(h.tok)
	}
	announced = reAnnounceSeparateJA.MatchString(t) || reAnnounceSeparateEN.MatchString(t) ||
		reAttachEncrypted.MatchString(t)
	return cands, announced
}

// SubjectAnnouncesPassword reports a subject that looks like a password
// mail (SUBJ_PASSWORD).
func SubjectAnnouncesPassword(subject string) bool {
	return reSubjPassword.MatchString(nfkc(subject))
}

// tokenVariants returns the token as captured, with one trailing
// punctuation character trimmed, and with a leading quote or bracket
// trimmed.
func tokenVariants(tok string) []string {
	const trail = "\"')]>.,;:」』】。、!?"
	const lead = "\"'([<「『【“"
	out := []string{tok}
	t := tok
	for i := 0; i < 3; i++ {
		r := []rune(t)
		if len(r) == 0 || !strings.ContainsRune(trail, r[len(r)-1]) {
			break
		}
		t = string(r[:len(r)-1])
		out = append(out, t)
	}
	if r := []rune(tok); len(r) > 0 && strings.ContainsRune(lead, r[0]) {
		t = string(r[1:])
		out = append(out, t)
		for i := 0; i < 3; i++ {
			r := []rune(t)
			if len(r) == 0 || !strings.ContainsRune(trail, r[len(r)-1]) {
				break
			}
			t = string(r[:len(r)-1])
			out = append(out, t)
		}
	}
	return out
}

// acceptToken rejects tokens that cannot be passwords: too short, all one
// character, URLs, mail addresses and the words of "click here" phrases.
func acceptToken(t string) bool {
	if len(t) < 4 || len(t) > 64 {
		return false
	}
	if strings.Count(t, t[:1]) == len(t) {
		return false
	}
	l := strings.ToLower(t)
	if strings.Contains(l, "://") || strings.HasPrefix(l, "www.") {
		return false
	}
	if i := strings.IndexByte(l, '@'); i > 0 && strings.Contains(l[i:], ".") {
		return false
	}
	switch strings.Trim(l, ".,:;!?") {
	case "here", "click", "below", "the", "this", "that", "your", "sent", "separately", "follows", "following", "attached":
		return false
	}
	return true
}

// scanSubject looks for candidates and announcements in the subject.
func (w *walker) scanSubject(s string) {
	if s == "" {
		return
	}
	w.scanText(s)
}

// scanText adds the candidates of one text to the message's list.
func (w *walker) scanText(s string) {
	if s == "" {
		return
	}
	if len(s) > w.lim.MaxTextBytes {
		s = strings.ToValidUTF8(s[:w.lim.MaxTextBytes], "")
	}
	cands, ann := PasswordCandidates(s)
	if ann {
		w.announced = true
	}
	for _, c := range cands {
		if len(w.bodyPW) >= 4*w.lim.MaxPasswords {
			break
		}
		dup := false
		for _, o := range w.bodyPW {
			if o == c {
				dup = true
				break
			}
		}
		if !dup {
			w.bodyPW = append(w.bodyPW, c)
		}
	}
}
