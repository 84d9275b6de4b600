package archive

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
)

// buildISO writes an ISO 9660 image with go-diskfs's writer.
func buildISO(t testing.TB, files map[string][]byte, opts iso9660.FinalizeOptions) []byte {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "x.iso")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	const size = 4 << 20
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	ws := filepath.Join(dir, "ws")
	if err := os.Mkdir(ws, 0o755); err != nil {
		t.Fatal(err)
	}
	fsys, err := iso9660.Create(file.New(f, false), size, 0, 2048, ws)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if d := filepath.Dir(name); d != "." {
			if err := fsys.Mkdir("/" + d); err != nil {
				t.Fatal(err)
			}
		}
		w, err := fsys.OpenFile("/"+name, os.O_CREATE|os.O_RDWR)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := fsys.Finalize(opts); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return readFile(t, p)
}

func TestISO(t *testing.T) {
	long := bytes.Repeat([]byte("L\x00\x00\x00"), 3000)
	for _, c := range []struct {
		name  string
		opts  iso9660.FinalizeOptions
		files map[string][]byte
	}{
		{"rockridge", iso9660.FinalizeOptions{RockRidge: true},
			map[string][]byte{"README.TXT": []byte("hello\n"), "docs/invoice-2024-final-version.pdf.lnk": long}},
		// go-diskfs writes 8-bit names into Joliet subdirectories (7z shows
		// the same garbage), so the Joliet case keeps to the root.
		{"joliet", iso9660.FinalizeOptions{Joliet: true},
			map[string][]byte{"README.TXT": []byte("hello\n"), "invoice-2024-final-version.pdf.lnk": long}},
		{"plain", iso9660.FinalizeOptions{},
			map[string][]byte{"README.TXT": []byte("hello\n"), "DOCS/INVOICE.LNK": long}},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := buildISO(t, c.files, c.opts)
			if got := Sniff(bytes.NewReader(data), int64(len(data))); got != ISO {
				t.Fatalf("Sniff = %q", got)
			}
			w := walkBytes(t, ISO, data, Options{})
			if w.err != nil || len(w.res.Problems) > 0 {
				t.Fatalf("err %v problems %v", w.err, w.res.Problems)
			}
			var got []string
			for _, e := range w.entries {
				got = append(got, e.Name)
			}
			for n, want := range c.files {
				if !bytes.Equal(w.content[n], want) {
					t.Errorf("%s: %d bytes, want %d (entries %q)", n, len(w.content[n]), len(want), got)
				}
			}
		})
	}
}

// TestISOHostile: a directory that contains itself and a directory
// extent declared at 4 GiB are problems, found quickly.
func TestISOHostile(t *testing.T) {
	data := buildISO(t, map[string][]byte{"A/B.TXT": []byte("x")}, iso9660.FinalizeOptions{})
	v, err := readISOVolumes(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	// The root's third record, after "." and "..", is directory A.
	dir := v.root.extent * 2048
	dot := int64(data[dir])
	a := dir + dot + int64(data[dir+dot])
	if data[a+25]&0x02 == 0 {
		t.Fatalf("third root record is not a directory")
	}
	loop := append([]byte{}, data...)
	binary.LittleEndian.PutUint32(loop[a+2:], uint32(v.root.extent)) // A is the root again
	w := walkBytes(t, ISO, loop, Options{})
	if !w.res.HasProblem(ProblemCorrupt) || w.res.Entries > 3 {
		t.Errorf("loop: problems %v entries %d", w.res.Problems, w.res.Entries)
	}
	huge := append([]byte{}, data...)
	binary.LittleEndian.PutUint32(huge[a+10:], 0xffffffff)
	w = walkBytes(t, ISO, huge, Options{})
	if !w.res.HasProblem(ProblemBomb) {
		t.Errorf("huge directory: problems %v", w.res.Problems)
	}
}
