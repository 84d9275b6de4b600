package thread

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"

	"golang.org/x/text/unicode/norm"
)

// The subject patterns of shared/reference/targeted-mail-signals.md §b.4,
// applied after NFKC (full-width ＲＥ：, ｢…｣ and the ideographic space are
// folded first).
var (
	// SUBJ_REPLY_PREFIX, plus Re^2: and the bracketed [Re:] of some lists.
	reReplyPrefix = regexp.MustCompile(`(?i)^(?:\s*(?:re|fw|fwd|aw|sv|tr|転送|返信)(?:\[\d+\]|\(\d+\)|\^\d+)?\s*:\s*)+`)
	// SUBJ_PW_MARKER.
	rePWMarker = regexp.MustCompile(`(?i)(?:【|\[|\()\s*(?:解凍)?(?:パスワード|password|pw)(?:通知|のお知らせ|のご連絡|送付|連絡|について)?\s*(?:】|\]|\))`)
	// SUBJ_PASSWORD.
	reSubjPassword = regexp.MustCompile(`(?i)(?:【|\[|\(|\s|^)(?:解凍)?(?:パスワード|password|pw|pass)(?:通知|のお知らせ|のご連絡|送付|連絡|について)?(?:】|\]|\)|\s|$|:)`)
	reSpaces       = regexp.MustCompile(`\s+`)
)

// maxSubject bounds the subject text normalised (hostile subjects can be
// megabytes long after unfolding).
const maxSubject = 4096

// BaseSubject strips reply and forward prefixes (Re:, RE:, Fwd:, FW:,
// AW:, SV:, Re[2]:, 返信:, 転送: and their full-width forms) and password
// markers (【PW】, [パスワード], (パスワード通知)), then folds spaces, so that
// every message of a conversation has the same base subject.
func BaseSubject(s string) string {
	if len(s) > maxSubject {
		s = s[:maxSubject]
	}
	s = norm.NFKC.String(s)
	prev := ""
	for s != prev {
		prev = s
		s = strings.TrimSpace(s)
		s = reReplyPrefix.ReplaceAllString(s, "")
		s = rePWMarker.ReplaceAllString(s, " ")
	}
	return strings.TrimSpace(reSpaces.ReplaceAllString(s, " "))
}

// IsReply reports whether the subject carries a reply or forward prefix.
func IsReply(s string) bool {
	if len(s) > maxSubject {
		s = s[:maxSubject]
	}
	return reReplyPrefix.MatchString(norm.NFKC.String(s))
}

// PasswordSubject reports whether a subject looks like a password mail's.
func PasswordSubject(s string) bool {
	if len(s) > maxSubject {
		s = s[:maxSubject]
	}
	return reSubjPassword.MatchString(norm.NFKC.String(s))
}

// SubjectKey is the stored form of a subject: a short hash of the
// case-folded base subject (records hold hashes, not text). The empty
// subject has the empty key.
func SubjectKey(s string) string {
	b := strings.ToLower(BaseSubject(s))
	if b == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(b))
	return hex.EncodeToString(sum[:12])
}

// ThreadKey is the key of the conversation a message belongs to: the
// thread of the newest parent mailguard saw, else the oldest id the
// message refers to (the root of References, else In-Reply-To), else its
// own Message-ID, else "mg:" and the mailguard ID.
func ThreadKey(id, messageID string, inReplyTo, references []string, parents []Record) string {
	var best *Record
	for i := range parents {
		p := &parents[i]
		if p.Thread != "" && (best == nil || p.At.After(best.At)) {
			best = p
		}
	}
	switch {
	case best != nil:
		return best.Thread
	case len(references) > 0 && references[0] != "":
		return references[0]
	case len(inReplyTo) > 0 && inReplyTo[0] != "":
		return inReplyTo[0]
	case messageID != "":
		return messageID
	}
	return "mg:" + id
}

// CleanID trims a message id to its stored form: no angle brackets or
// surrounding space, at most 250 bytes.
func CleanID(s string) string {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "<")
	s = strings.TrimSuffix(s, ">")
	if len(s) > 250 {
		s = s[:250]
	}
	return s
}

// Refs returns the ids a reply refers to, In-Reply-To first then the
// References newest first, cleaned, deduplicated and capped at max.
func Refs(inReplyTo, references []string, max int) []string {
	var out []string
	seen := map[string]bool{}
	add := func(s string) {
		s = CleanID(s)
		if s == "" || seen[s] || len(out) >= max {
			return
		}
		seen[s] = true
		out = append(out, s)
	}
	for _, s := range inReplyTo {
		add(s)
	}
	for i := len(references) - 1; i >= 0; i-- {
		add(references[i])
	}
	return out
}
