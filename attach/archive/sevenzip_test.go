package archive

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// make7z builds 7z archives of the same files: plain (solid and not),
// content-encrypted, and with encrypted names (-mhe=on).
func make7z(t *testing.T, pw string) (string, map[string][]byte) {
	t.Helper()
	need(t, "7z")
	dir := t.TempDir()
	files := map[string]string{
		"doc.txt":       "invoice attached\n",
		"dir/data.bin":  string(bytes.Repeat([]byte("MZ payload 0123456789 "), 20000)),
		"dir/empty.txt": "",
	}
	writeFiles(t, dir, files)
	args := []string{"doc.txt", "dir"}
	sz := func(out string, opts ...string) {
		run(t, dir, "7z", append(append([]string{"a", "-bd", "-t7z", out}, opts...), args...)...)
	}
	sz("plain.7z")
	sz("nonsolid.7z", "-ms=off")
	sz("lzma.7z", "-m0=lzma")
	sz("bzip2.7z", "-m0=bzip2")
	sz("ppmd.7z", "-m0=ppmd")
	sz("deflate.7z", "-m0=deflate")
	sz("copy.7z", "-mx=0")
	sz("bcj.7z", "-mf=bcj")
	sz("enc.7z", "-p"+pw)
	sz("enc-nonsolid.7z", "-p"+pw, "-ms=off")
	sz("hdr.7z", "-p"+pw, "-mhe=on")
	want := map[string][]byte{}
	for k, v := range files {
		want[k] = []byte(v)
	}
	return dir, want
}

func Test7z(t *testing.T) {
	const pw = "パスワード-2024"
	dir, want := make7z(t, pw)
	for _, c := range []struct {
		file      string
		encrypted bool
		headers   bool
	}{
		{"plain.7z", false, false}, {"nonsolid.7z", false, false}, {"lzma.7z", false, false},
		{"bzip2.7z", false, false}, {"ppmd.7z", false, false}, {"deflate.7z", false, false},
		{"copy.7z", false, false}, {"bcj.7z", false, false},
		{"enc.7z", true, false}, {"enc-nonsolid.7z", true, false}, {"hdr.7z", true, true},
	} {
		data := readFile(t, filepath.Join(dir, c.file))
		t.Run(c.file, func(t *testing.T) {
			if got := Sniff(bytes.NewReader(data), int64(len(data))); got != SevenZip {
				t.Errorf("Sniff = %q", got)
			}
			start := time.Now()
			w := walkBytes(t, SevenZip, data, Options{Passwords: []Password{{"nope", "body"}, {pw, "thread"}}})
			if w.err != nil || len(w.res.Problems) > 0 || len(w.res.Locked) > 0 {
				t.Fatalf("err %v problems %v locked %v", w.err, w.res.Problems, w.res.Locked)
			}
			t.Logf("right password second: %v", time.Since(start))
			for n, b := range want {
				if !bytes.Equal(w.content[n], b) && !(len(b) == 0 && len(w.content[n]) == 0) {
					t.Errorf("%s: content differs (%d bytes, want %d)", n, len(w.content[n]), len(b))
				}
			}
			if e, _ := w.entry("dir/data.bin"); e.Encrypted != c.encrypted || e.Decrypted != c.encrypted ||
				(c.encrypted && e.PasswordSource != "thread") {
				t.Errorf("entry %+v", e)
			}
			if w.res.HeadersEncrypted != c.headers || w.res.Encrypted != c.encrypted {
				t.Errorf("result %+v", w.res)
			}
			if !c.encrypted {
				return
			}
			// No candidates: locked (names listed unless they are encrypted).
			w = walkBytes(t, SevenZip, data, Options{})
			if len(w.content) != 0 || w.err != nil {
				t.Errorf("no password: content %d err %v", len(w.content), w.err)
			}
			if c.headers {
				if w.res.Entries != 0 || !w.res.HeadersEncrypted {
					t.Errorf("no password, encrypted names: %+v", w.res)
				}
			} else if len(w.res.Locked) != 2 {
				t.Errorf("no password: locked %q", w.res.Locked)
			}
			// Many wrong candidates: bounded.
			var many []Password
			for i := range 40 {
				many = append(many, Password{fmt.Sprintf("guess%d", i), "body"})
			}
			start = time.Now()
			w = walkBytes(t, SevenZip, data, Options{Passwords: many, Limits: Limits{MaxAttempts: 4}})
			if len(w.content) != 0 || !w.res.HasProblem(ProblemAttempts) {
				t.Errorf("wrong passwords: content %d problems %v", len(w.content), w.res.Problems)
			}
			t.Logf("40 wrong candidates, 4 tried: %v", time.Since(start))
		})
	}
}

// TestSevenZipPaddingCheck: the block-padding check accepts the right
// password and rejects wrong ones before any decoding. (A wrong key used
// to pass the trial decode now and then, as LZMA2 "uncompressed" chunks.)
func TestSevenZipPaddingCheck(t *testing.T) {
	const pw = "padding-pw"
	dir, _ := make7z(t, pw)
	for _, name := range []string{"enc.7z", "enc-nonsolid.7z"} {
		data := readFile(t, filepath.Join(dir, name))
		w := newWalker(context.Background(), SevenZip, bytes.NewReader(data), int64(len(data)), Options{}, nil)
		info, err := w.szReadHeader()
		if err != nil {
			t.Fatal(err)
		}
		s := &szWalk{w: w, info: info}
		for fi := range info.main.folders {
			if !s.paddingOK(fi, pw) {
				t.Errorf("%s folder %d: right password rejected", name, fi)
			}
			for i := range 10 {
				if s.paddingOK(fi, fmt.Sprintf("wrong-%d", i)) {
					t.Errorf("%s folder %d: wrong password %d accepted", name, fi, i)
				}
			}
		}
	}
}
