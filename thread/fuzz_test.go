package thread

import (
	"testing"
	"unicode/utf8"
)

// FuzzSignals: the text functions take hostile header values; they must
// not panic, must stay bounded, and must be idempotent where they say so.
func FuzzSignals(f *testing.F) {
	for _, s := range []string{"Re: 見積書", "【PW】ＲＥ：x", "xn--80ak6aa92e.com", "ﾔﾏﾀﾞ ﾀﾛｳ", "T. Yamada", "\xff\xfe", "[::1]", "a..b", "Re[99999999999999999999]:"} {
		f.Add(s, "Taro Yamada")
	}
	f.Fuzz(func(t *testing.T, s, other string) {
		b := BaseSubject(s)
		if len(b) > 4*maxSubject {
			t.Fatalf("BaseSubject grew to %d", len(b))
		}
		if BaseSubject(b) != b && utf8.ValidString(s) && len(s) < maxSubject/4 {
			t.Fatalf("BaseSubject not idempotent: %q → %q → %q", s, b, BaseSubject(b))
		}
		_ = SubjectKey(s)
		_ = PasswordSubject(s)
		_ = NameKey(s)
		_ = MatchName(s, other)
		if MatchName(s, other) && MatchName(s, "") {
			t.Fatal("matched the empty name")
		}
		if d, ok := ParseDomain(s); ok && d.Registrable == "" {
			t.Fatal("ok without a registrable domain")
		}
		_, _ = FindLookalike(s, []Domain{{Registrable: "paypal.com", Label: "paypal", Suffix: "com", Skeleton: "paypal"}})
		if d := Distance(s, other, 2); d < 0 || d > 3 {
			t.Fatalf("distance %d out of range", d)
		}
	})
}
