package attach

import (
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
