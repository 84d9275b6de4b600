package reason

import (
	"os"
	"regexp"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestContractMatchesDesign keeps the tag list equal to DESIGN.md, so a tag
// can be added but never renamed or dropped.
func TestContractMatchesDesign(t *testing.T) {
	raw, err := os.ReadFile("../../shared/DESIGN.md")
	if err != nil {
		t.Skipf("DESIGN.md not beside the checkout: %v", err)
	}
	sec := regexp.MustCompile("(?s)Reason tags \\(stable vocabulary.*?\\n\\n").Find(raw)
	if sec == nil {
		t.Fatal("reason tag paragraph not found in DESIGN.md")
	}
	var want []Tag
	for _, m := range regexp.MustCompile("`([a-z0-9_]+)`").FindAllSubmatch(sec, -1) {
		want = append(want, Tag(m[1]))
	}
	if d := cmp.Diff(want, Contract); d != "" {
		t.Errorf("Contract differs from DESIGN.md (-design +code):\n%s", d)
	}
}

func TestKnown(t *testing.T) {
	for _, tag := range Contract {
		if !Known(tag) {
			t.Errorf("Known(%q) = false", tag)
		}
	}
	if Known("no_such_tag") {
		t.Error("Known(no_such_tag) = true")
	}
}
