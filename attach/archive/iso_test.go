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

// tinyISO writes a minimal ISO 9660 image by hand: PVD at 16, terminator
// at 17, then (with udf) BEA01/NSR02/TEA01 at 18–20, the root directory at
// 21 and one file at 22.
func tinyISO(name string, content []byte, udf bool) []byte {
	img := make([]byte, 23*2048+len(content))
	le := binary.LittleEndian
	both32 := func(b []byte, v uint32) { le.PutUint32(b, v); binary.BigEndian.PutUint32(b[4:], v) }
	record := func(extent, size uint32, flags byte, id []byte) []byte {
		n := 33 + len(id)
		n += n % 2
		r := make([]byte, n)
		r[0] = byte(n)
		both32(r[2:], extent)
		both32(r[10:], size)
		r[18], r[19], r[20] = 124, 1, 1 // 2024-01-01
		r[25] = flags
		r[32] = byte(len(id))
		copy(r[33:], id)
		return r
	}
	pvd := img[16*2048:]
	pvd[0] = 1
	copy(pvd[1:], "CD001")
	pvd[6] = 1
	le.PutUint16(pvd[128:], 2048)
	copy(pvd[156:], record(21, 2048, 2, []byte{0}))
	term := img[17*2048:]
	term[0] = 255
	copy(term[1:], "CD001")
	if udf {
		for i, id := range []string{"BEA01", "NSR02", "TEA01"} {
			copy(img[(18+i)*2048+1:], id)
		}
	}
	dir := img[21*2048:]
	off := copy(dir, record(21, 2048, 2, []byte{0}))
	off += copy(dir[off:], record(21, 2048, 2, []byte{1}))
	copy(dir[off:], record(22, uint32(len(content)), 0, []byte(name+";1")))
	copy(img[22*2048:], content)
	return img
}

// TestISOUDFBridge: an image that also announces UDF (an NSR02 descriptor
// after the ISO 9660 set) whose UDF view 7z cannot read falls back to the
// ISO 9660 view, with a problem saying the UDF view was not read.
func TestISOUDFBridge(t *testing.T) {
	plain := tinyISO("A.TXT", []byte("iso view"), false)
	if w := walkBytes(t, ISO, plain, Options{}); string(w.content["A.TXT"]) != "iso view" || len(w.res.Problems) > 0 {
		t.Fatalf("plain tiny ISO: %q %v", w.content["A.TXT"], w.res.Problems)
	}
	data := tinyISO("A.TXT", []byte("iso view"), true)
	if got := Sniff(bytes.NewReader(data), int64(len(data))); got != ISO {
		t.Errorf("Sniff = %q", got)
	}
	for _, sz := range []string{"", "-"} {
		w := walkBytes(t, ISO, data, Options{SevenZipPath: sz})
		if string(w.content["A.TXT"]) != "iso view" || !w.res.HasProblem(ProblemUnsupportedMethod) {
			t.Errorf("7z %q: content %q problems %v", sz, w.content["A.TXT"], w.res.Problems)
		}
	}
	// Without the ISO 9660 descriptors it is UDF-only: 7z or unsupported.
	udfOnly := append([]byte{}, data...)
	clear(udfOnly[16*2048 : 21*2048])
	for i, id := range []string{"BEA01", "NSR02", "TEA01"} {
		copy(udfOnly[(16+i)*2048+1:], id)
	}
	if got := Sniff(bytes.NewReader(udfOnly), int64(len(udfOnly))); got != UDF {
		t.Errorf("UDF-only: Sniff = %q", got)
	}
	if w := walkBytes(t, UDF, udfOnly, Options{SevenZipPath: "-"}); w.res.Unsupported == "" {
		t.Errorf("UDF-only without 7z: %+v", w.res)
	}
}
