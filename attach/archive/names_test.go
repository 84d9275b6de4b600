package archive

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
)

var hostileNames = []string{"../../etc/passwd", "/abs/path.txt", `C:\Windows\x.dll`, "invoice\u202efdp.exe", "a\x00b"}

// TestHostileNames: names come back exactly as stored, from zip, tar and
// RAR, and nothing is written to disk.
func TestHostileNames(t *testing.T) {
	m := map[string][]byte{}
	for i, n := range hostileNames {
		m[n] = []byte{byte('a' + i)}
	}
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	tarNames := hostileNames[:len(hostileNames)-1] // archive/tar cannot write a NUL in a name
	for _, n := range tarNames {
		if err := tw.WriteHeader(&tar.Header{Name: n, Size: 1, Mode: 0o644, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			t.Fatal(err)
		}
		tw.Write(m[n])
	}
	tw.WriteHeader(&tar.Header{Name: "link", Linkname: "../../../root/.ssh/id_rsa", Typeflag: tar.TypeSymlink})
	tw.Close()
	var rf []rarFile
	for _, n := range hostileNames {
		rf = append(rf, rarFile{name: n, data: m[n]})
	}
	for _, c := range []struct {
		f     Format
		data  []byte
		names []string
	}{{Zip, storedZip(t, m), hostileNames}, {Tar, tb.Bytes(), tarNames}, {RAR, buildRAR5(t, rf, rar5Opts{}), hostileNames}} {
		w := walkBytes(t, c.f, c.data, Options{TempDir: t.TempDir()})
		for _, n := range c.names {
			if !bytes.Equal(w.content[n], m[n]) {
				t.Errorf("%s: %q not returned as stored (entries %+v)", c.f, n, w.entries)
			}
		}
		if c.f == Tar {
			if e, ok := w.entry("link"); !ok || e.Link != "../../../root/.ssh/id_rsa" {
				t.Errorf("tar symlink: %+v", e)
			}
		}
	}
}

// TestNestedEncrypted: ZipCrypto zip ⊃ 7z with encrypted names ⊃ AES zip
// ⊃ payload, walked the way the caller recurses, passwords from
// different sources; the innermost bytes come out intact.
func TestNestedEncrypted(t *testing.T) {
	need(t, "zip", "7z")
	dir := t.TempDir()
	payload := bytes.Repeat([]byte("MZ\x90\x00 the real payload "), 4000)
	writeFiles(t, dir, map[string]string{"payload.exe": string(payload)})
	run(t, dir, "7z", "a", "-bd", "-tzip", "-mem=AES256", "-pinner", "l3.zip", "payload.exe")
	run(t, dir, "7z", "a", "-bd", "-t7z", "-pmiddle", "-mhe=on", "l2.7z", "l3.zip")
	run(t, dir, "zip", "-q", "-P", "outer", "l1.zip", "l2.7z")
	cands := []Password{{"outer", "body"}, {"middle", "thread"}, {"inner", "policy"}}
	var got []byte
	var sources []string
	var walk func(f Format, data []byte, depth int)
	walk = func(f Format, data []byte, depth int) {
		res, err := Walk(context.Background(), f, bytes.NewReader(data), int64(len(data)), Options{Passwords: cands},
			func(e Entry, r io.Reader) error {
				sources = append(sources, e.Name+":"+e.PasswordSource)
				b, err := io.ReadAll(r)
				if err != nil {
					return err
				}
				if inner := Sniff(bytes.NewReader(b), int64(len(b))); inner != "" && depth < 3 {
					walk(inner, b, depth+1)
				} else if e.Name == "payload.exe" {
					got = b
				}
				return nil
			})
		if err != nil || len(res.Problems) > 0 || len(res.Locked) > 0 {
			t.Errorf("depth %d (%s): err %v problems %v locked %v", depth, f, err, res.Problems, res.Locked)
		}
	}
	walk(Zip, readFile(t, filepath.Join(dir, "l1.zip")), 0)
	if !bytes.Equal(got, payload) {
		t.Errorf("payload: %d bytes, want %d", len(got), len(payload))
	}
	want := "l2.7z:body l3.zip:thread payload.exe:policy"
	if s := strings.Join(sources, " "); s != want {
		t.Errorf("entries and sources %q, want %q", s, want)
	}
}

// TestRememberedPassword: the candidate that worked is tried first on the
// next entry, so three entries cost one wrong attempt, not three (two are
// allowed here).
func TestRememberedPassword(t *testing.T) {
	need(t, "zip")
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a": "1", "b": "2", "c": "3"})
	run(t, dir, "zip", "-q", "-P", "right", "x.zip", "a", "b", "c")
	data := readFile(t, filepath.Join(dir, "x.zip"))
	w := walkBytes(t, Zip, data, Options{Passwords: []Password{{"wrong", "body"}, {"right", "thread"}},
		Limits: Limits{MaxAttempts: 2}})
	if len(w.res.Locked) != 0 || len(w.content) != 3 {
		t.Errorf("locked %v content %d problems %v", w.res.Locked, len(w.content), w.res.Problems)
	}
}

// TestPasswordNeverReported: a distinctive candidate appears nowhere in
// results, problems, entries or reader errors, whether it is right, wrong,
// or right for damaged content.
func TestPasswordNeverReported(t *testing.T) {
	need(t, "zip", "7z")
	const canary = "CANARY-pw-7741"
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"f.txt": strings.Repeat("content ", 5000)})
	run(t, dir, "zip", "-q", "-P", canary, "zc.zip", "f.txt")
	run(t, dir, "7z", "a", "-bd", "-tzip", "-mem=AES256", "-p"+canary, "aes.zip", "f.txt")
	run(t, dir, "7z", "a", "-bd", "-p"+canary, "-mhe=on", "h.7z", "f.txt")
	archives := map[string][]byte{
		"rar5": buildRAR5(t, []rarFile{{name: "f.txt", data: []byte("x")}}, rar5Opts{password: canary, encryptHeaders: true, kdfLog: 10}),
	}
	for _, n := range []string{"zc.zip", "aes.zip", "h.7z"} {
		archives[n] = readFile(t, filepath.Join(dir, n))
		damaged := append([]byte{}, archives[n]...)
		damaged[len(damaged)/2] ^= 0x55
		archives[n+"-damaged"] = damaged
	}
	for name, data := range archives {
		f := Sniff(bytes.NewReader(data), int64(len(data)))
		for _, cands := range [][]Password{{{canary, "body"}}, {{canary + "x", "body"}, {"x" + canary, "body"}}} {
			w := walkBytes(t, f, data, Options{Passwords: cands})
			blob, _ := json.Marshal(struct {
				R Result
				E []Entry
			}{w.res, w.entries})
			all := string(blob) + fmt.Sprint(w.err)
			for _, err := range w.readErr {
				all += err.Error()
				var ee *EntryError
				if errors.As(err, &ee) {
					all += fmt.Sprintf("%+v", ee)
				}
			}
			if strings.Contains(all, canary) {
				t.Errorf("%s: the password leaks: %s", name, all)
			}
		}
	}
}

// TestWrongKeyPassesQuickCheck: a wrong candidate that passes the cheap
// check (the ZipCrypto check byte; RAR 3.x has none at all) on a large
// stored member is still rejected, so the right candidate after it wins.
func TestWrongKeyPassesQuickCheck(t *testing.T) {
	need(t, "zip")
	dir := t.TempDir()
	big := bytes.Repeat([]byte("stored and large, 0123456789abcdef\n"), 60000) // 2.1 MB
	writeFiles(t, dir, map[string]string{"big.bin": string(big)})
	run(t, dir, "zip", "-q", "-0", "-P", "right", "zc.zip", "big.bin")
	data := readFile(t, filepath.Join(dir, "zc.zip"))
	w := &walker{ra: bytes.NewReader(data), size: int64(len(data))}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	m := w.zipMemberOf(zr.File[0])
	head := data[m.dataOff : m.dataOff+12]
	impostor := ""
	for i := 0; impostor == "" && i < 100000; i++ {
		if cand := fmt.Sprintf("w%d", i); zipCryptoKeyFor(m, head, cand) != nil {
			impostor = cand
		}
	}
	if impostor == "" {
		t.Fatal("no candidate passing the check byte found")
	}
	rar := buildRAR4Enc(t, []rarFile{{name: "big.bin", data: big}}, false, "right", false)
	for _, c := range []struct {
		f     Format
		data  []byte
		wrong string
	}{{Zip, data, impostor}, {RAR, rar, "wrong"}} {
		got := walkBytes(t, c.f, c.data, Options{Passwords: []Password{{c.wrong, "body"}, {"right", "thread"}}})
		e, _ := got.entry("big.bin")
		if !bytes.Equal(got.content["big.bin"], big) || e.PasswordSource != "thread" {
			t.Errorf("%s: %d bytes, entry %+v, problems %v", c.f, len(got.content["big.bin"]), e, got.res.Problems)
		}
	}
}
