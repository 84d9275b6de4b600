package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/diskfs/go-diskfs/filesystem/iso9660"
	"github.com/ulikunitz/xz"
)

// Each reader has a fuzz target. The seeds are built here (f.Add) and
// committed under testdata/fuzz/<Target>/ (made with zip and 7z by
// TestWriteFuzzSeeds); plain "go test" runs them all.

var fuzzLimits = Limits{
	MaxEntries: 16, MaxEntryBytes: 64 << 10, MaxTotalBytes: 256 << 10, MaxRatio: 50,
	MaxAttempts: 2, MaxPasswordTime: 2 * time.Second, MaxDictionary: 4 << 20,
}

var fuzzPasswords = []Password{{"wrong", "body"}, {"infected", "thread"}}

// fuzzWalk walks data as f and checks the limits held and nothing else
// than ctx could fail.
func fuzzWalk(t *testing.T, f Format, data []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	defer func() {
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("walking %d bytes as %s took %v", len(data), f, d)
		}
	}()
	var entries int
	var read int64
	res, err := Walk(ctx, f, bytes.NewReader(data), int64(len(data)),
		Options{Limits: fuzzLimits, Passwords: fuzzPasswords, SevenZipPath: "-", Name: "x.gz"},
		func(e Entry, r io.Reader) error {
			entries++
			if r != nil {
				n, _ := io.Copy(io.Discard, r)
				read += n
			}
			return nil
		})
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Walk error %v", err)
	}
	if entries > fuzzLimits.MaxEntries || res.Entries != entries {
		t.Fatalf("%d entries visited (result %d), limit %d", entries, res.Entries, fuzzLimits.MaxEntries)
	}
	if read > fuzzLimits.MaxTotalBytes || res.Bytes != read {
		t.Fatalf("%d bytes delivered (result %d), limit %d", read, res.Bytes, fuzzLimits.MaxTotalBytes)
	}
}

func FuzzZip(f *testing.F) {
	f.Add(storedZip(f, map[string][]byte{"a.txt": []byte("hello"), "../b": []byte("x")}))
	f.Add(zeroZip(f, "z", 100000))
	f.Add(overlapZip(f, 3))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzWalk(t, Zip, data) })
}

func Fuzz7z(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzWalk(t, SevenZip, data) })
}

func FuzzRAR(f *testing.F) {
	files := []rarFile{{name: "d", dir: true}, {name: "d/a.txt", data: []byte("hello rar")}}
	f.Add(buildRAR5(f, files, rar5Opts{}))
	f.Add(buildRAR5(f, files, rar5Opts{solid: true}))
	f.Add(buildRAR5(f, files, rar5Opts{password: "infected", kdfLog: 4}))
	f.Add(buildRAR5(f, files, rar5Opts{password: "infected", encryptHeaders: true, kdfLog: 4}))
	f.Add(buildRAR4(f, files, false))
	f.Add(buildRAR4Enc(f, files, true, "infected", false))
	f.Add(buildRAR4Enc(f, files, false, "infected", true))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzWalk(t, RAR, data) })
}

func FuzzTar(f *testing.F) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tw.WriteHeader(&tar.Header{Name: "a.txt", Size: 5, Mode: 0o644})
	tw.Write([]byte("hello"))
	tw.WriteHeader(&tar.Header{Name: "l", Linkname: "../x", Typeflag: tar.TypeSymlink})
	tw.WriteHeader(&tar.Header{Name: "pax-ünï", Size: 1, Format: tar.FormatPAX})
	tw.Write([]byte("x"))
	tw.Close()
	f.Add(b.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) { fuzzWalk(t, Tar, data) })
}

func FuzzCompressed(f *testing.F) {
	var gz, x bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Name = "inner.txt"
	zw.Write(bytes.Repeat([]byte("gzip "), 100))
	zw.Close()
	xw, _ := xz.NewWriter(&x)
	xw.Write(bytes.Repeat([]byte("xz "), 100))
	xw.Close()
	f.Add(byte(0), gz.Bytes())
	f.Add(byte(2), x.Bytes())
	f.Fuzz(func(t *testing.T, which byte, data []byte) {
		fuzzWalk(t, []Format{Gzip, Bzip2, XZ}[int(which)%3], data)
	})
}

func FuzzCAB(f *testing.F) {
	files := []rarFile{{name: "a.txt", data: []byte("hello cab")}, {name: "b", data: bytes.Repeat([]byte("b"), 40000)}}
	f.Add(buildCAB(f, files, cabNone))
	f.Add(buildCAB(f, files, cabMSZIP))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzWalk(t, CAB, data) })
}

func FuzzISO(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzWalk(t, ISO, data) })
}

func FuzzFAT(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzWalk(t, FAT, data) })
}

// FuzzSniff checks that Sniff never panics and that whatever it names,
// Walk survives.
func FuzzSniff(f *testing.F) {
	f.Add([]byte("PK\x03\x04"))
	f.Add([]byte("7z\xbc\xaf\x27\x1c"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if format := Sniff(bytes.NewReader(data), int64(len(data))); format != "" {
			fuzzWalk(t, format, data)
		}
	})
}

// TestWriteFuzzSeeds writes the seeds that need zip, 7z or a disk image
// writer into testdata/fuzz. It runs only with MAILGUARD_WRITE_FUZZ_SEEDS=1.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("MAILGUARD_WRITE_FUZZ_SEEDS") != "1" {
		t.Skip("set MAILGUARD_WRITE_FUZZ_SEEDS=1 to regenerate the committed seeds")
	}
	need(t, "zip", "7z")
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.txt": "hello seed\n", "d/b.bin": "MZ\x90\x00 seed payload"})
	seeds := map[string][]string{ // seed → command; the archive is "out.zip" or "out.7z"
		"FuzzZip/zipcrypto": {"zip", "-q", "-r", "-P", "infected", "out.zip", "a.txt", "d"},
		"FuzzZip/aes256":    {"7z", "a", "-bd", "-tzip", "-mem=AES256", "-pinfected", "out.zip", "a.txt", "d"},
		"FuzzZip/aes128":    {"7z", "a", "-bd", "-tzip", "-mem=AES128", "-pinfected", "out.zip", "a.txt", "d"},
		"Fuzz7z/lzma2":      {"7z", "a", "-bd", "-t7z", "out.7z", "a.txt", "d"},
		"Fuzz7z/nonsolid":   {"7z", "a", "-bd", "-t7z", "-ms=off", "-m0=lzma", "out.7z", "a.txt", "d"},
		"Fuzz7z/aes":        {"7z", "a", "-bd", "-t7z", "-pinfected", "out.7z", "a.txt", "d"},
		"Fuzz7z/aes-mhe":    {"7z", "a", "-bd", "-t7z", "-pinfected", "-mhe=on", "out.7z", "a.txt", "d"},
		"Fuzz7z/bzip2":      {"7z", "a", "-bd", "-t7z", "-m0=bzip2", "out.7z", "a.txt", "d"},
		"Fuzz7z/ppmd":       {"7z", "a", "-bd", "-t7z", "-m0=ppmd:mem=1m", "out.7z", "a.txt", "d"},
	}
	for name, cmd := range seeds {
		os.Remove(filepath.Join(dir, "out.zip"))
		os.Remove(filepath.Join(dir, "out.7z"))
		run(t, dir, cmd[0], cmd[1:]...)
		out := "out.zip"
		if filepath.Dir(name) == "Fuzz7z" {
			out = "out.7z"
		}
		writeSeed(t, name, readFile(t, filepath.Join(dir, out)))
	}
	writeSeed(t, "FuzzISO/rockridge", trimZeros(buildISO(t, map[string][]byte{"A.TXT": []byte("iso seed"), "D/B.TXT": []byte("b")},
		iso9660.FinalizeOptions{RockRidge: true})))
	writeSeed(t, "FuzzISO/joliet", trimZeros(buildISO(t, map[string][]byte{"long name.txt": []byte("joliet seed")},
		iso9660.FinalizeOptions{Joliet: true})))
	writeSeed(t, "FuzzFAT/fat12", trimZeros(buildFAT(t, 12, 1<<20, map[string][]byte{"A.TXT": []byte("fat seed"),
		"dir/long file name.txt": []byte("fat long name")})))
}

// trimZeros drops trailing zero bytes, keeping the image a whole number of
// 2048-byte sectors.
func trimZeros(b []byte) []byte {
	n := len(bytes.TrimRight(b, "\x00"))
	return b[:min(len(b), (n+2047)/2048*2048)]
}

// writeSeed writes one corpus file in the go fuzz format.
func writeSeed(t *testing.T, name string, data []byte) {
	t.Helper()
	p := filepath.Join("testdata", "fuzz", name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
