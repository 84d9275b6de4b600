package archive

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestProbeSlow(t *testing.T) {
	dir := os.Getenv("PROBE_DIR")
	if dir == "" {
		t.Skip()
	}
	format := Format(os.Getenv("PROBE_FORMAT"))
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		s := string(b)
		i := strings.Index(s, "[]byte(")
		if i < 0 {
			continue
		}
		q := strings.TrimSuffix(strings.TrimSpace(s[i+7:]), ")")
		data, err := strconv.Unquote(q)
		if err != nil {
			t.Logf("%s: %v", f, err)
			continue
		}
		start := time.Now()
		fuzzWalk(t, format, []byte(data))
		t.Logf("%s: %d bytes, %v", filepath.Base(f), len(data), time.Since(start))
	}
}
