package archive

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

// zeroZip returns a zip with one deflated entry of n zero bytes.
func zeroZip(t testing.TB, name string, n int64) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	w, err := zw.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(w, zeroReader{}, n); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// storedZip puts the given members, stored, into a zip.
func storedZip(t testing.TB, members map[string][]byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for name, data := range members {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
	}
	zw.Close()
	return b.Bytes()
}

// heapGrowth runs f and returns how much the live heap grew at most, by
// sampling while f runs.
func heapGrowth(f func()) uint64 {
	defer debug.SetGCPercent(debug.SetGCPercent(10)) // keep garbage from counting as growth
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	base := m.HeapAlloc
	done, result := make(chan struct{}), make(chan uint64)
	go func() {
		peak := base
		for {
			select {
			case <-done:
				result <- peak
				return
			case <-time.After(5 * time.Millisecond):
				var s runtime.MemStats
				runtime.ReadMemStats(&s)
				peak = max(peak, s.HeapAlloc)
			}
		}
	}()
	f()
	close(done)
	peak := <-result
	return peak - base
}

// TestNestedZipBomb: the 42.zip shape (16 copies of 16 copies of … a
// highly compressed file), walked the way the caller recurses: every walk
// stays within its limits, the ratio is reported, and it is quick.
func TestNestedZipBomb(t *testing.T) {
	inner := zeroZip(t, "0.dat", 4<<20) // 4 MiB of zeros, ~4 KiB compressed: 16 GiB in all
	layer := inner
	for level := 0; level < 3; level++ {
		m := map[string][]byte{}
		for i := range 16 {
			m[fmt.Sprintf("lib%d.zip", i)] = layer
		}
		layer = storedZip(t, m)
	}
	lim := Limits{MaxEntryBytes: 32 << 20, MaxTotalBytes: 128 << 20, MaxRatio: 100}
	var walks, ratio int
	var delivered int64
	var walk func(data []byte, depth int)
	walk = func(data []byte, depth int) {
		walks++
		res, err := Walk(context.Background(), Zip, bytes.NewReader(data), int64(len(data)), Options{Limits: lim},
			func(e Entry, r io.Reader) error {
				b, _ := io.ReadAll(r)
				if Sniff(bytes.NewReader(b), int64(len(b))) == Zip && depth < 4 && walks < 40 {
					walk(b, depth+1)
				}
				return nil
			})
		if err != nil {
			t.Fatal(err)
		}
		if res.Bytes > lim.MaxTotalBytes {
			t.Errorf("walk delivered %d bytes, limit %d", res.Bytes, lim.MaxTotalBytes)
		}
		if res.HasProblem(ProblemRatio) {
			ratio++
		}
		delivered += res.Bytes
	}
	start := time.Now()
	grew := heapGrowth(func() { walk(layer, 0) })
	if ratio == 0 {
		t.Errorf("no %s problem in %d walks", ProblemRatio, walks)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("took %v", d)
	}
	if grew > 64<<20 {
		t.Errorf("heap grew by %d MiB", grew>>20)
	}
	t.Logf("%d walks, %d ratio problems, %d MiB delivered, heap +%d MiB, %v", walks, ratio, delivered>>20, grew>>20, time.Since(start))
}

// overlapZip builds the Fifield shape: one local file (deflated zeros) and
// n central directory entries that all point at it.
func overlapZip(t testing.TB, n int) []byte {
	t.Helper()
	one := zeroZip(t, "x", 8<<20)
	r, err := zip.NewReader(bytes.NewReader(one), int64(len(one)))
	if err != nil {
		t.Fatal(err)
	}
	f := r.File[0]
	dataOff, _ := f.DataOffset()
	local := one[:dataOff+int64(f.CompressedSize64)]
	le := binary.LittleEndian
	var cd []byte
	for i := range n {
		name := fmt.Sprintf("copy%03d", i)
		h := le.AppendUint32(nil, 0x02014b50)
		h = le.AppendUint16(h, 20)
		h = le.AppendUint16(h, 20)
		h = le.AppendUint16(h, 0)
		h = le.AppendUint16(h, zip.Deflate)
		h = le.AppendUint32(h, 0)
		h = le.AppendUint32(h, f.CRC32)
		h = le.AppendUint32(h, uint32(f.CompressedSize64))
		h = le.AppendUint32(h, uint32(f.UncompressedSize64))
		h = le.AppendUint16(h, uint16(len(name)))
		h = append(h, make([]byte, 12)...) // extra, comment, disk, attrs
		h = le.AppendUint32(h, 0)          // local header at 0
		cd = append(cd, append(h, name...)...)
	}
	eocd := le.AppendUint32(nil, 0x06054b50)
	eocd = append(eocd, 0, 0, 0, 0)
	eocd = le.AppendUint16(eocd, uint16(n))
	eocd = le.AppendUint16(eocd, uint16(n))
	eocd = le.AppendUint32(eocd, uint32(len(cd)))
	eocd = le.AppendUint32(eocd, uint32(len(local)))
	eocd = append(eocd, 0, 0)
	return append(append(append([]byte{}, local...), cd...), eocd...)
}

func TestOverlapZip(t *testing.T) {
	data := overlapZip(t, 200)
	start := time.Now()
	w := walkBytes(t, Zip, data, Options{Limits: Limits{MaxRatio: -1}})
	if !w.res.HasProblem(ProblemOverlap) {
		t.Errorf("no overlap problem: %v", w.res.Problems)
	}
	if w.res.Entries != 200 || len(w.content) != 1 || w.res.Bytes != 8<<20 {
		t.Errorf("entries %d, decompressed %d, bytes %d", w.res.Entries, len(w.content), w.res.Bytes)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestHighRatioEntry(t *testing.T) {
	data := zeroZip(t, "zeros.bin", 16<<20)
	lim := Limits{MaxRatio: 50}
	w := walkBytes(t, Zip, data, Options{Limits: lim})
	e, _ := w.entry("zeros.bin")
	if !w.res.HasProblem(ProblemRatio) || w.readErr["zeros.bin"] == nil {
		t.Fatalf("problems %v read error %v", w.res.Problems, w.readErr["zeros.bin"])
	}
	allowed := max(ratioFloor, int64(lim.MaxRatio*float64(e.CompressedSize)))
	if got := int64(len(w.content["zeros.bin"])); got > allowed {
		t.Errorf("delivered %d bytes, ratio cap %d", got, allowed)
	}
	var ee *EntryError
	if !errors.As(w.readErr["zeros.bin"], &ee) || ee.Kind != ProblemRatio {
		t.Errorf("read error %v", w.readErr["zeros.bin"])
	}
}

// TestForgedSize: the shape that made yeka/zip allocate 3 GB: a tiny zip
// whose central directory claims 1.5 GB, plain and ZipCrypto-encrypted.
func TestForgedSize(t *testing.T) {
	need(t, "zip")
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.txt": "hello hello hello hello\n"})
	run(t, dir, "zip", "-q", "plain.zip", "a.txt")
	run(t, dir, "zip", "-q", "-P", "pw", "enc.zip", "a.txt")
	for _, name := range []string{"plain.zip", "enc.zip"} {
		data := readFile(t, dir+"/"+name)
		cd := bytes.Index(data, []byte("PK\x01\x02"))
		binary.LittleEndian.PutUint32(data[cd+20:], 1500<<20) // compressed size
		binary.LittleEndian.PutUint32(data[cd+24:], 1500<<20) // uncompressed size
		var w *walked
		start := time.Now()
		grew := heapGrowth(func() {
			w = walkBytes(t, Zip, data, Options{Passwords: []Password{{"pw", "body"}}})
		})
		if !w.res.HasProblem(ProblemTruncated) {
			t.Errorf("%s: problems %v", name, w.res.Problems)
		}
		if grew > 64<<20 || time.Since(start) > 2*time.Second {
			t.Errorf("%s: heap +%d MiB in %v", name, grew>>20, time.Since(start))
		}
		t.Logf("%s (%d bytes): %v, heap +%d KiB", name, len(data), w.res.Problems, grew>>10)
	}
}

func TestTooManyEntries(t *testing.T) {
	m := map[string][]byte{}
	for i := range 50 {
		m[fmt.Sprintf("f%02d", i)] = []byte("x")
	}
	data := storedZip(t, m)
	w := walkBytes(t, Zip, data, Options{Limits: Limits{MaxEntries: 10}})
	if w.res.Entries != 10 || !w.res.HasProblem(ProblemTooManyEntries) {
		t.Errorf("entries %d problems %v", w.res.Entries, w.res.Problems)
	}
}

func TestTotalLimit(t *testing.T) {
	m := map[string][]byte{}
	for i := range 10 {
		m[fmt.Sprintf("f%d", i)] = bytes.Repeat([]byte{byte(i)}, 1000)
	}
	data := storedZip(t, m)
	w := walkBytes(t, Zip, data, Options{Limits: Limits{MaxTotalBytes: 2500}})
	if w.res.Bytes != 2500 || !w.res.HasProblem(ProblemTotalSize) || w.res.Entries != 3 {
		t.Errorf("bytes %d entries %d problems %v", w.res.Bytes, w.res.Entries, w.res.Problems)
	}
}

func TestCancel(t *testing.T) {
	data := zeroZip(t, "z", 16<<20)
	ctx, cancel := context.WithCancel(context.Background())
	res, err := Walk(ctx, Zip, bytes.NewReader(data), int64(len(data)), Options{Limits: Limits{MaxRatio: -1}},
		func(e Entry, r io.Reader) error {
			buf := make([]byte, 1<<20)
			r.Read(buf)
			cancel()
			_, err := io.Copy(io.Discard, r)
			return err
		})
	if err != context.Canceled || res.Bytes > 2<<20 {
		t.Errorf("err %v bytes %d", err, res.Bytes)
	}
}

// TestFnErrors: fn's own error ends the walk and is returned; an entry
// reader's EntryError returned by fn does not.
func TestFnErrors(t *testing.T) {
	data := storedZip(t, map[string][]byte{"a": []byte("1"), "b": []byte("2")})
	stop := fmt.Errorf("caller stops")
	res, err := Walk(context.Background(), Zip, bytes.NewReader(data), int64(len(data)), Options{},
		func(Entry, io.Reader) error { return stop })
	if err != stop || res.Entries != 1 {
		t.Errorf("err %v entries %d", err, res.Entries)
	}
	big := zeroZip(t, "z", 4<<20)
	res, err = Walk(context.Background(), Zip, bytes.NewReader(big), int64(len(big)),
		Options{Limits: Limits{MaxEntryBytes: 100}},
		func(e Entry, r io.Reader) error { _, err := io.Copy(io.Discard, r); return err })
	if err != nil || !res.HasProblem(ProblemTooLarge) {
		t.Errorf("err %v problems %v", err, res.Problems)
	}
}
