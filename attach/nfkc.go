package attach

import (
	"sync"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// nfkc returns norm.NFKC.String(s). Runs of characters that NFKC leaves
// as they are (nfkcStable) are copied; only what lies between them goes
// through norm, from the character before (it may compose with what
// follows, as カ with a voiced sound mark). norm looks every character up
// in its tables: a 100 KB Japanese body took 1 ms per pass, and the walk
// made two.
//
// Copying a run unchanged is the quick check of UAX #15: a character with
// NFKC_Quick_Check=Yes and canonical combining class 0 that cannot combine
// with a character before it starts a segment that NFKC does not touch;
// norm.NFKC.String is the reference (TestNFKCEveryRune, FuzzNFKC), and
// text with invalid UTF-8 is left to it.
func nfkc(s string) string {
	t := nfkcTable()
	var out []byte
	last := 0  // s[:last] is in out
	prev := -1 // start of the previous character when it was stable
	for i := 0; i < len(s); {
		if s[i] < utf8.RuneSelf {
			prev = i
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if t.stable(r) {
			prev = i
			i += size
			continue
		}
		if r == utf8.RuneError && size == 1 {
			// norm treats a segment ending in invalid UTF-8 unlike the
			// same bytes inside a longer text: keep to its whole-text result.
			return norm.NFKC.String(s)
		}
		start := i
		if prev >= last {
			start = prev
		}
		// The part for norm ends before a stable run of nfkcMinRun bytes
		// (or at the end): many short calls cost more than norm's own
		// quick span over the stable characters in between.
		end, run := i+size, -1
		for end < len(s) && (run < 0 || end-run < nfkcMinRun) {
			if end-start > nfkcMaxPart {
				// Mostly characters NFKC changes (full-width letters,
				// half-width kana): norm alone is quicker for the rest.
				return string(append(append(out, s[last:start]...), norm.NFKC.String(s[start:])...))
			}
			r, size := rune(s[end]), 1
			if r >= utf8.RuneSelf {
				r, size = utf8.DecodeRuneInString(s[end:])
			}
			switch {
			case r < utf8.RuneSelf || t.stable(r):
				if run < 0 {
					run = end
				}
			case r == utf8.RuneError && size == 1:
				return norm.NFKC.String(s)
			default:
				run = -1
			}
			end += size
		}
		if run >= 0 {
			end = run
		}
		if out == nil {
			out = make([]byte, 0, len(s)+len(s)/8)
		}
		out = append(out, s[last:start]...)
		out = append(out, norm.NFKC.String(s[start:end])...)
		last, i, prev = end, end, -1
	}
	if out == nil {
		return s
	}
	return string(append(out, s[last:]...))
}

// nfkcMinRun is the stable run that ends a part given to norm; a part
// longer than nfkcMaxPart gives norm the rest of the text.
const (
	nfkcMinRun  = 64
	nfkcMaxPart = 4096
)

// nfkcStable reports whether r, outside ASCII, is left as it is by NFKC
// whatever surrounds it.
func nfkcStable(r rune) bool { return nfkcTable().stable(r) }

// stableTable has a bit for each character of the Basic Multilingual
// Plane that NFKC leaves as it is (only that plane is tabled).
type stableTable [1024]uint64

func (t *stableTable) stable(r rune) bool {
	return r < 0x10000 && r != utf8.RuneError && t[r>>6]&(1<<(r&63)) != 0
}

var nfkcTable = sync.OnceValue(func() *stableTable {
	var t stableTable
	var buf [utf8.UTFMax]byte
	for r := rune(0x80); r < 0x10000; r++ {
		if r >= 0xD800 && r <= 0xDFFF || r == utf8.RuneError {
			continue
		}
		b := buf[:utf8.EncodeRune(buf[:], r)]
		p := norm.NFKC.Properties(b)
		if p.CCC() == 0 && p.BoundaryBefore() && norm.NFKC.IsNormal(b) {
			t[r>>6] |= 1 << (r & 63)
		}
	}
	return &t
})
