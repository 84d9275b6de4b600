package archive

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/diskfs/go-diskfs/backend"
	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/filesystem/fat12"
	"github.com/diskfs/go-diskfs/filesystem/fat16"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
)

// buildFAT writes a FAT image of the given bits with go-diskfs's writer.
func buildFAT(t testing.TB, bits int, size int64, files map[string][]byte) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "x.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	b := file.New(f, false)
	var fsys filesystem.FileSystem
	create := map[int]func(backend.Storage) (filesystem.FileSystem, error){
		12: func(b backend.Storage) (filesystem.FileSystem, error) {
			return fat12.Create(b, size, 0, 512, "MG", true)
		},
		16: func(b backend.Storage) (filesystem.FileSystem, error) {
			return fat16.Create(b, size, 0, 512, "MG", true)
		},
		32: func(b backend.Storage) (filesystem.FileSystem, error) {
			return fat32.Create(b, size, 0, 512, "MG", true)
		},
	}
	if fsys, err = create[bits](b); err != nil {
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
		w.Close()
	}
	f.Close()
	return readFile(t, p)
}

func TestFAT(t *testing.T) {
	files := map[string][]byte{
		"README.TXT":                       []byte("hello\n"),
		"docs/Invoice 2024 (final).pdf.js": bytes.Repeat([]byte("var a=1;\n"), 2000),
	}
	for _, c := range []struct {
		bits int
		size int64
	}{{12, 2 << 20}, {16, 20 << 20}, {32, 40 << 20}} {
		data := buildFAT(t, c.bits, c.size, files)
		if got := Sniff(bytes.NewReader(data), int64(len(data))); got != FAT {
			t.Fatalf("FAT%d: Sniff = %q", c.bits, got)
		}
		w := walkBytes(t, FAT, data, Options{})
		if w.err != nil || len(w.res.Problems) > 0 {
			t.Fatalf("FAT%d: err %v problems %v", c.bits, w.err, w.res.Problems)
		}
		var names []string
		for _, e := range w.entries {
			names = append(names, e.Name)
		}
		for n, want := range files {
			if !bytes.Equal(w.content[n], want) {
				t.Errorf("FAT%d: %s: %d bytes, want %d (entries %q)", c.bits, n, len(w.content[n]), len(want), names)
			}
		}
		if c.bits != 16 {
			continue
		}
		// A looping cluster chain: the big file's first cluster points to
		// itself. It must be a problem, not a hang.
		f, err := openFAT(&walker{ra: bytes.NewReader(data), size: int64(len(data))})
		if err != nil {
			t.Fatal(err)
		}
		loop := append([]byte{}, data...)
		for c := uint32(2); c < f.clusters+2; c++ {
			off := f.fatOff + int64(c)*2
			if v := binary.LittleEndian.Uint16(loop[off:]); v == uint16(c+1) {
				binary.LittleEndian.PutUint16(loop[off:], uint16(c)) // c → c
				break
			}
		}
		w = walkBytes(t, FAT, loop, Options{})
		if !w.res.HasProblem(ProblemOverlap) {
			t.Errorf("looping chain: problems %v", w.res.Problems)
		}
	}
}
