package archive

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

const clamDir = "/usr/share/clamav-testfiles"

// deepFind walks data as format f and recursively every entry that
// sniffs as a container, and reports whether want occurs as an entry's
// content at some depth (as the attach package will recurse).
func deepFind(t *testing.T, f Format, data []byte, name string, want []byte, depth int, trail *[]string) bool {
	t.Helper()
	found := false
	res, err := Walk(context.Background(), f, bytes.NewReader(data), int64(len(data)), Options{Name: name},
		func(e Entry, r io.Reader) error {
			*trail = append(*trail, string(f)+":"+e.Name)
			if r == nil {
				return nil
			}
			b, err := io.ReadAll(r)
			if err != nil {
				return err
			}
			if bytes.Equal(b, want) {
				found = true
			}
			if inner := Sniff(bytes.NewReader(b), int64(len(b))); inner != "" && depth > 0 && !found {
				found = deepFind(t, inner, b, e.Name, want, depth-1, trail)
			}
			return nil
		})
	if err != nil || res.Unsupported != "" || len(res.Problems) > 0 {
		*trail = append(*trail, "  result: "+res.Unsupported+" "+problemsString(res.Problems))
	}
	return found
}

func problemsString(ps []Problem) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return strings.Join(s, "; ")
}

// needClamAV skips (or fails, with MAILGUARD_E2E_STRICT=1) without
// Debian's clamav-testfiles.
func needClamAV(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(clamDir); err != nil {
		if os.Getenv("MAILGUARD_E2E_STRICT") == "1" {
			t.Fatalf("clamav-testfiles not installed")
		}
		t.Skip("clamav-testfiles not installed")
	}
}

// TestClamAVTestfiles walks every container among Debian's
// clamav-testfiles and reaches the ClamAV test executable inside. Files
// that are not containers for this package are listed by name.
func TestClamAVTestfiles(t *testing.T) {
	needClamAV(t)
	want := readFile(t, filepath.Join(clamDir, "clam.exe"))
	names, _ := filepath.Glob(filepath.Join(clamDir, "*"))
	sort.Strings(names)
	needs7z := map[string]bool{ // formats or methods only the 7z fallback opens
		"clam.impl.zip": true, "clam.d64.zip": true, "clam.arj": true, "clam.chm": true,
		"clam.bin-be.cpio": true, "clam.bin-le.cpio": true, "clam.newc.cpio": true, "clam.odc.cpio": true,
		"clam.exe.szdd": true,
	}
	has7z := (&walker{}).sevenZip() != ""
	perFormat := map[Format]int{}
	var notContainers []string
	for _, path := range names {
		name := filepath.Base(path)
		data := readFile(t, path)
		f := Sniff(bytes.NewReader(data), int64(len(data)))
		if f == "" {
			notContainers = append(notContainers, name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			var trail []string
			depth := 3
			if name == "clam_cache_emax.tgz" {
				depth = 40 // tgz in tgz in tgz …: ClamAV's recursion-limit sample
			}
			found := deepFind(t, f, data, name, want, depth, &trail)
			switch {
			case found:
				perFormat[f]++
			case needs7z[name] && !has7z:
				t.Logf("%s (%s): needs the 7z fallback, not installed", name, f)
			default:
				t.Errorf("%s (%s): test executable not reached:\n%s", name, f, strings.Join(trail, "\n"))
			}
		})
	}
	t.Logf("reached per format: %v", perFormat)
	t.Logf("not containers for this package: %s", strings.Join(notContainers, ", "))
}
