package attach

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/mailguard/mailguard/reason"
)

const clamDir = "/usr/share/clamav-testfiles"

// clamMarkers are byte strings of the ClamAV test executable (clam.exe).
var clamMarkers = [][]byte{[]byte("CLAMessageBoxA"), []byte("[CLAMAV]")}

// TestClamAVTestfiles walks every file of Debian's clamav-testfiles. Each
// container must either deliver a descendant that holds the test
// executable, or say by name which format it could not open; plain
// executables must be typed as executables.
func TestClamAVTestfiles(t *testing.T) {
	entries, err := os.ReadDir(clamDir)
	if err != nil || len(entries) == 0 {
		need(t, "clamav-testfiles-not-installed")
	}
	var reached, unsupported, plain []string
	for _, e := range entries {
		name := e.Name()
		data, err := os.ReadFile(filepath.Join(clamDir, name))
		if err != nil {
			t.Fatal(err)
		}
		res, err := WalkFile(context.Background(), name, bytes.NewReader(data), int64(len(data)), Options{TempDir: t.TempDir()})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		root := res.Files[0]
		found := false
		for _, f := range res.Files[1:] {
			b, ok := f.bytesUpTo(64 << 20)
			for _, m := range clamMarkers {
				found = found || ok && bytes.Contains(b, m)
			}
		}
		var unsup []string
		for _, f := range res.AllFindings() {
			if f.Tag == reason.UnsupportedContainer || f.Tag == reason.EncryptedUnscannable || f.Tag == reason.ArchiveDepth {
				unsup = append(unsup, f.Path+": "+f.Detail)
			}
		}
		switch {
		case found:
			reached = append(reached, name)
		case len(unsup) > 0:
			unsupported = append(unsupported, name+" ("+strings.Join(unsup, "; ")+")")
		case len(res.Files) == 1 && root.Features.Executable != "":
			plain = append(plain, name+" ("+root.Type+")")
		default:
			var kids []string
			for _, f := range res.Files {
				kids = append(kids, f.Path+" "+f.Type)
			}
			t.Errorf("%s (%s): test executable not reached and nothing reported unsupported; tree %q", name, root.Type, kids)
		}
		res.Close()
	}
	sort.Strings(reached)
	t.Logf("reached %d: %s", len(reached), strings.Join(reached, ", "))
	t.Logf("unsupported %d: %s", len(unsupported), strings.Join(unsupported, "\n  "))
	t.Logf("plain executables %d: %s", len(plain), strings.Join(plain, ", "))
	for _, must := range []string{"clam.zip", "clam.7z", "clam.tar.gz", "clam.exe.bz2", "clam.mail", "clam.exe.mbox.base64",
		"clam.exe.mbox.uu", "clam.tnef", "clam.exe.html", "clam.cab", "clam.exe.rtf"} {
		if _, err := os.Stat(filepath.Join(clamDir, must)); err == nil && !contains(strings.Join(reached, ","), must) {
			t.Errorf("%s: test executable not reached", must)
		}
	}
}
