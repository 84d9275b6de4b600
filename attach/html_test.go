package attach

import (
	"regexp"
	"strings"
	"testing"
)

func TestContainsFold(t *testing.T) {
	for _, c := range []struct {
		doc  string
		want bool
	}{{"x DATA:y", true}, {"data:", true}, {"Data", false}, {"dat", false}, {"", false}, {"ddata:", true}, {"d d DaTa:", true}} {
		if got := containsFold([]byte(c.doc), "data:"); got != c.want {
			t.Errorf("containsFold(%q) = %v", c.doc, got)
		}
	}
}

// TestMatchNearFar: a match far into a long document, and one whose
// literal occurs only in another case, are found.
func TestMatchNearFar(t *testing.T) {
	doc := []byte(strings.Repeat("<p>harmless text about a download page</p>\n", 2000) +
		`<script>var b = new Blob([x]); a.DOWNLOAD = "x.iso"; URL.CreateObjectURL(b)</script>`)
	if ind := smugglingIndicators(doc); len(ind) == 0 {
		t.Errorf("no indicators in %d bytes with a Blob saved at the end", len(doc))
	}
}

// TestSmugglingOffsets: text whose Unicode lower case has another length
// (invalid UTF-8, the Kelvin sign) before the keywords does not shift
// where they are looked for.
func TestSmugglingOffsets(t *testing.T) {
	doc := []byte(strings.Repeat("\xea\xd0\xc5\u212a", 3000) +
		`<script>var b = new Blob([x]); a.download = "x.iso"; URL.createObjectURL(b)</script>`)
	if ind := smugglingIndicators(doc); len(ind) == 0 {
		t.Errorf("no indicators after %d bytes of odd text", len(doc))
	}
}

// FuzzSmugglingIndicators: any document, no panic; on short ASCII
// documents (one keyword window covers them whole) matchNear agrees with
// running the regexp over everything. (Go's (?i) also folds ſ and the
// Kelvin sign to s and k, which JavaScript does not; hence ASCII.)
func FuzzSmugglingIndicators(f *testing.F) {
	f.Add([]byte(`<script>var b = new Blob([x]); a.download = "x.iso"; URL.createObjectURL(b)</script>`))
	f.Add([]byte("\xea\xd0\xc5\u212a<a download href=\"data:application/zip;base64,UEsDBBQAAAAIAAAAIQAAAAAAAAAAAAAAAAA=\">"))
	f.Add([]byte(`atob("` + strings.Repeat("QUFB", 2000) + `"); document.location = x`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		smugglingIndicators(doc)
		if len(doc) > 512 {
			return
		}
		for _, c := range doc {
			if c >= 0x80 {
				return
			}
		}
		lower := asciiLower(doc)
		for _, c := range []struct {
			re   *regexp.Regexp
			lits []string
		}{
			{reBlob, []string{"blob"}},
			{reObjectURL, []string{"createobjecturl"}},
			{reMsSave, []string{"mssave"}},
			{reDownload, []string{"download"}},
			{reAtob, []string{"atob", "base64tobytes", "base64decode", "fromcharcode"}},
			{reClickNav, []string{".click", "dispatchevent", "location"}},
		} {
			if want, got := c.re.Match(doc), matchNear(c.re, doc, lower, c.lits...); got != want {
				t.Errorf("%s: matchNear %v, whole document %v on %q", c.re, got, want, doc)
			}
		}
	})
}
