package postgres

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzClean: whatever hostile mail puts in a header, clean makes text
// PostgreSQL accepts (valid UTF-8, no NUL) and leaves valid text alone.
func FuzzClean(f *testing.F) {
	for _, s := range []string{"", "plain", "件名", "a\x00b", "\xff\xfe", "\xe4\xbb", "ok\xc3", `\x00`, "\x00\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c := clean(s)
		if !utf8.ValidString(c) || strings.IndexByte(c, 0) >= 0 {
			t.Fatalf("clean(%q) = %q: not storable", s, c)
		}
		if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 && c != s {
			t.Fatalf("clean(%q) = %q: valid text changed", s, c)
		}
		if clean(c) != c {
			t.Fatalf("clean is not idempotent on %q", s)
		}
	})
}

func TestClean(t *testing.T) {
	for in, want := range map[string]string{
		"plain": "plain", "件名": "件名", "a\x00b": `a\x00b`, "\xff件": `\xff件`, "\xe4\xbb": `\xe4\xbb`,
	} {
		if got := clean(in); got != want {
			t.Errorf("clean(%q) = %q, want %q", in, got, want)
		}
	}
}
