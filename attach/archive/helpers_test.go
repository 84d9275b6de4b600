package archive

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// need skips the test when a tool is missing, or fails it when
// MAILGUARD_E2E_STRICT=1.
func need(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("MAILGUARD_E2E_STRICT") == "1" {
				t.Fatalf("%s not installed (MAILGUARD_E2E_STRICT=1)", tool)
			}
			t.Skipf("%s not installed", tool)
		}
	}
}

// run runs a command in dir and fails the test on error.
func run(t testing.TB, dir string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// writeFiles creates files (name → content) under dir.
func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// walked is what walkBytes saw.
type walked struct {
	res     Result
	err     error
	entries []Entry
	content map[string][]byte // entries with a reader, fully read
	readErr map[string]error
}

func (w *walked) entry(name string) (Entry, bool) {
	for _, e := range w.entries {
		if e.Name == name {
			return e, true
		}
	}
	return Entry{}, false
}

// walkBytes walks data as format f and reads every entry fully.
func walkBytes(t testing.TB, f Format, data []byte, opt Options) *walked {
	t.Helper()
	out := &walked{content: map[string][]byte{}, readErr: map[string]error{}}
	out.res, out.err = Walk(context.Background(), f, bytes.NewReader(data), int64(len(data)), opt,
		func(e Entry, r io.Reader) error {
			out.entries = append(out.entries, e)
			if r == nil {
				return nil
			}
			b, err := io.ReadAll(r)
			out.content[e.Name] = b
			if err != nil {
				out.readErr[e.Name] = err
			}
			return err
		})
	return out
}
