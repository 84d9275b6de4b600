package archive

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// The benchmarks walk the same 32 MiB input (base64 of pseudo-random
// bytes, which compresses to about 76 %) packed in each format, and report
// MB/s of output. With MAILGUARD_BENCH_DIR set the archives are kept there,
// so that "7z x -so" can be timed on the very same files.

const benchInput = 32 << 20

var benchArchives = []struct {
	name string
	f    Format
	cmd  []string // run in the directory holding "input.txt"; writes the archive name
}{
	{"zip-deflate", Zip, []string{"zip", "-q", "zip-deflate.zip", "input.txt"}},
	{"zip-zipcrypto", Zip, []string{"zip", "-q", "-P", "infected", "zip-zipcrypto.zip", "input.txt"}},
	{"zip-aes256", Zip, []string{"7z", "a", "-bd", "-tzip", "-mem=AES256", "-pinfected", "zip-aes256.zip", "input.txt"}},
	{"7z-lzma2", SevenZip, []string{"7z", "a", "-bd", "-t7z", "7z-lzma2.7z", "input.txt"}},
	{"7z-aes", SevenZip, []string{"7z", "a", "-bd", "-t7z", "-pinfected", "-mhe=on", "7z-aes.7z", "input.txt"}},
	{"tar-gz", Gzip, []string{"sh", "-c", "tar cf - input.txt | gzip -6 > tar-gz.tar.gz"}},
}

// benchDir builds the benchmark archives once per process run.
func benchDir(b *testing.B) string {
	b.Helper()
	need(b, "zip", "7z", "tar", "gzip")
	dir := os.Getenv("MAILGUARD_BENCH_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "mailguard-archive-bench")
	}
	if _, err := os.Stat(filepath.Join(dir, "done")); err == nil {
		return dir
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	raw := make([]byte, benchInput/4*3)
	for i := range raw {
		raw[i] = byte(r.Uint32())
	}
	text := []byte(base64.StdEncoding.EncodeToString(raw))
	if err := os.WriteFile(filepath.Join(dir, "input.txt"), text, 0o644); err != nil {
		b.Fatal(err)
	}
	for _, a := range benchArchives {
		run(b, dir, a.cmd[0], a.cmd[1:]...)
	}
	if err := os.WriteFile(filepath.Join(dir, "done"), nil, 0o644); err != nil {
		b.Fatal(err)
	}
	return dir
}

func benchFile(b *testing.B, dir, name string) []byte {
	b.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, name+".*"))
	if len(m) != 1 {
		b.Fatalf("benchmark archive %s: %v", name, m)
	}
	return readFile(b, m[0])
}

// BenchmarkWalk measures decrypt + decompress throughput (MB/s of output).
// tar-gz is the gzip layer only: the tar inside is a second, cheap walk.
func BenchmarkWalk(b *testing.B) {
	dir := benchDir(b)
	unlimited := Limits{MaxEntries: -1, MaxEntryBytes: -1, MaxTotalBytes: -1, MaxRatio: -1}
	for _, a := range benchArchives {
		data := benchFile(b, dir, a.name)
		b.Run(a.name, func(b *testing.B) {
			opt := Options{Limits: unlimited, Passwords: []Password{{"infected", "body"}}}
			b.SetBytes(benchInput)
			b.ReportAllocs()
			for b.Loop() {
				var n int64
				res, err := Walk(context.Background(), a.f, bytes.NewReader(data), int64(len(data)), opt,
					func(e Entry, r io.Reader) error {
						if r != nil {
							k, err := io.Copy(io.Discard, r)
							n += k
							return err
						}
						return nil
					})
				if err != nil || len(res.Problems) > 0 || n < benchInput {
					b.Fatalf("err %v problems %v, %d bytes", err, res.Problems, n)
				}
			}
		})
	}
}

// BenchmarkWrongPassword measures the cost of rejecting one wrong
// candidate: each walk tries 8 wrong ones on a small archive of the format
// (the open itself is included, spread over the 8).
func BenchmarkWrongPassword(b *testing.B) {
	need(b, "zip", "7z")
	dir := b.TempDir()
	writeFiles(b, dir, map[string]string{"a.txt": string(bytes.Repeat([]byte("wrong password benchmark "), 4000))})
	run(b, dir, "zip", "-q", "-P", "infected", "zc.zip", "a.txt")
	run(b, dir, "7z", "a", "-bd", "-tzip", "-mem=AES256", "-pinfected", "aes.zip", "a.txt")
	run(b, dir, "7z", "a", "-bd", "-t7z", "-pinfected", "c.7z", "a.txt")
	run(b, dir, "7z", "a", "-bd", "-t7z", "-pinfected", "-mhe=on", "h.7z", "a.txt")
	files := []rarFile{{name: "a.txt", data: bytes.Repeat([]byte("rar "), 1000)}}
	cases := []struct {
		name string
		f    Format
		data []byte
	}{
		{"zipcrypto", Zip, readFile(b, filepath.Join(dir, "zc.zip"))},
		{"zip-aes256", Zip, readFile(b, filepath.Join(dir, "aes.zip"))},
		{"7z-aes", SevenZip, readFile(b, filepath.Join(dir, "c.7z"))},
		{"7z-aes-mhe", SevenZip, readFile(b, filepath.Join(dir, "h.7z"))},
		{"rar5", RAR, buildRAR5(b, files, rar5Opts{password: "infected"})},
		{"rar5-hp", RAR, buildRAR5(b, files, rar5Opts{password: "infected", encryptHeaders: true})},
	}
	const n = 8
	var wrong []Password
	for i := range n {
		wrong = append(wrong, Password{fmt.Sprintf("wrong-%d", i), "body"})
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			opt := Options{Passwords: wrong, Limits: Limits{MaxAttempts: n + 1}}
			for b.Loop() {
				res, _ := Walk(context.Background(), c.f, bytes.NewReader(c.data), int64(len(c.data)), opt,
					func(Entry, io.Reader) error { return nil })
				if len(res.Locked) == 0 && !res.HeadersEncrypted {
					b.Fatalf("not locked: %+v", res)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/password")
		})
	}
}
