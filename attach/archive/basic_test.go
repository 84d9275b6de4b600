package archive

import (
	"bytes"
	"path/filepath"
	"testing"
)

func TestZipTarGzipBasic(t *testing.T) {
	need(t, "zip", "tar", "gzip")
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.txt": "hello\n", "sub/b.txt": string(bytes.Repeat([]byte("b"), 100000))})
	run(t, dir, "zip", "-qr", "x.zip", "a.txt", "sub")
	run(t, dir, "tar", "cf", "x.tar", "a.txt", "sub")
	run(t, dir, "sh", "-c", "gzip -c x.tar > x.tar.gz")
	for _, c := range []struct {
		file string
		f    Format
		want map[string]int
	}{
		{"x.zip", Zip, map[string]int{"a.txt": 6, "sub/b.txt": 100000}},
		{"x.tar", Tar, map[string]int{"a.txt": 6, "sub/b.txt": 100000}},
		{"x.tar.gz", Gzip, map[string]int{"x.tar": 112640}},
	} {
		data := readFile(t, filepath.Join(dir, c.file))
		if got := Sniff(bytes.NewReader(data), int64(len(data))); got != c.f {
			t.Errorf("Sniff(%s) = %q, want %q", c.file, got, c.f)
		}
		w := walkBytes(t, c.f, data, Options{Name: c.file})
		if w.err != nil || len(w.res.Problems) > 0 {
			t.Errorf("%s: err %v problems %v", c.file, w.err, w.res.Problems)
		}
		for name, n := range c.want {
			if got := len(w.content[name]); got != n {
				t.Errorf("%s: %s has %d bytes, want %d", c.file, name, got, n)
			}
		}
	}
}
