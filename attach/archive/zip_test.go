package archive

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"
)

// makeEncryptedZips builds the same two files as ZipCrypto (Info-ZIP zip
// -P), ZipCrypto by 7z, and WinZip AES-128/192/256 (7z -mem=AES*), stored
// and deflated.
func makeEncryptedZips(t *testing.T, pw, asciiPW string) (string, map[string][]byte) {
	t.Helper()
	need(t, "zip", "7z")
	dir := t.TempDir()
	files := map[string]string{
		"doc.txt":     "invoice attached\n",
		"payload.bin": string(bytes.Repeat([]byte("MZ payload 0123456789 "), 5000)),
	}
	writeFiles(t, dir, files)
	run(t, dir, "zip", "-q", "-P", pw, "zc.zip", "doc.txt", "payload.bin")
	run(t, dir, "zip", "-q", "-0", "-P", pw, "zc-store.zip", "doc.txt", "payload.bin")
	// 7-Zip refuses non-ASCII zip passwords; Info-ZIP takes the UTF-8 bytes.
	run(t, dir, "7z", "a", "-bd", "-tzip", "-mem=ZipCrypto", "-p"+asciiPW, "zc7.zip", "doc.txt", "payload.bin")
	for _, s := range []string{"AES128", "AES192", "AES256"} {
		run(t, dir, "7z", "a", "-bd", "-tzip", "-mem="+s, "-p"+asciiPW, s+".zip", "doc.txt", "payload.bin")
		run(t, dir, "7z", "a", "-bd", "-tzip", "-mx=0", "-mem="+s, "-p"+asciiPW, s+"-store.zip", "doc.txt", "payload.bin")
	}
	want := map[string][]byte{}
	for k, v := range files {
		want[k] = []byte(v)
	}
	return dir, want
}

func TestZipEncrypted(t *testing.T) {
	const pw = "Secr3t-パス"
	const asciiPW = "infected"
	dir, want := makeEncryptedZips(t, pw, asciiPW)
	names := []string{"zc.zip", "zc-store.zip", "zc7.zip", "AES128.zip", "AES192.zip", "AES256.zip",
		"AES128-store.zip", "AES192-store.zip", "AES256-store.zip"}
	for _, name := range names {
		data := readFile(t, filepath.Join(dir, name))
		pw := pw
		if name != "zc.zip" && name != "zc-store.zip" {
			pw = asciiPW
		}
		t.Run(name, func(t *testing.T) {
			// Right password as the second candidate.
			w := walkBytes(t, Zip, data, Options{Passwords: []Password{{"wrong", "body"}, {pw, "thread"}}})
			if w.err != nil || len(w.res.Problems) > 0 || len(w.res.Locked) > 0 {
				t.Fatalf("err %v problems %v locked %v", w.err, w.res.Problems, w.res.Locked)
			}
			for n, b := range want {
				if !bytes.Equal(w.content[n], b) {
					t.Errorf("%s: content differs (%d bytes, want %d)", n, len(w.content[n]), len(b))
				}
				e, _ := w.entry(n)
				if !e.Encrypted || !e.Decrypted || e.PasswordSource != "thread" {
					t.Errorf("%s: entry %+v", n, e)
				}
			}
			// No password: locked, names listed.
			w = walkBytes(t, Zip, data, Options{})
			if len(w.res.Locked) != 2 || !w.res.Encrypted || len(w.content) != 0 {
				t.Errorf("no password: locked %v encrypted %v content %d", w.res.Locked, w.res.Encrypted, len(w.content))
			}
			// Many wrong candidates: locked, cheap.
			var many []Password
			for i := range 50 {
				many = append(many, Password{fmt.Sprintf("guess%d", i), "body"})
			}
			w = walkBytes(t, Zip, data, Options{Passwords: many, Limits: Limits{MaxAttempts: 8}})
			if len(w.res.Locked) != 2 || len(w.content) != 0 {
				t.Errorf("wrong passwords: locked %v content %d problems %v", w.res.Locked, len(w.content), w.res.Problems)
			}
			if !w.res.HasProblem(ProblemAttempts) {
				t.Errorf("wrong passwords: no %s problem: %v", ProblemAttempts, w.res.Problems)
			}
		})
	}
}

// TestZipMethods: LZMA and bzip2 members are decoded here; deflate64 and
// PPMd go through the 7z fallback, or are unsupported without it.
func TestZipMethods(t *testing.T) {
	need(t, "7z")
	dir := t.TempDir()
	content := bytes.Repeat([]byte("zip method test line\n"), 3000)
	writeFiles(t, dir, map[string]string{"f.txt": string(content)})
	for _, m := range []struct {
		method string
		native bool
	}{{"LZMA", true}, {"BZip2", true}, {"Deflate64", false}, {"PPMd", false}} {
		name := m.method + ".zip"
		run(t, dir, "7z", "a", "-bd", "-tzip", "-mm="+m.method, name, "f.txt")
		data := readFile(t, filepath.Join(dir, name))
		w := walkBytes(t, Zip, data, Options{})
		if !bytes.Equal(w.content["f.txt"], content) || len(w.res.Problems) > 0 {
			t.Errorf("%s: %d bytes, problems %v", m.method, len(w.content["f.txt"]), w.res.Problems)
		}
		if !m.native {
			w = walkBytes(t, Zip, data, Options{SevenZipPath: "-"})
			if w.res.Unsupported == "" || !w.res.HasProblem(ProblemUnsupportedMethod) || w.res.Entries != 1 {
				t.Errorf("%s without 7z: %+v", m.method, w.res)
			}
		}
	}
}

// TestZipBrokenDirectory: when archive/zip refuses the archive (here the
// central directory is cut off), the members are listed and read from
// their local headers, with a problem.
func TestZipBrokenDirectory(t *testing.T) {
	data := storedZip(t, map[string][]byte{"a.txt": []byte("first"), "b.txt": []byte("second")})
	cut := data[:bytes.Index(data, []byte("PK\x01\x02"))+10]
	w := walkBytes(t, Zip, cut, Options{})
	if string(w.content["a.txt"]) != "first" || string(w.content["b.txt"]) != "second" || !w.res.HasProblem(ProblemCorrupt) {
		t.Errorf("content %q problems %v", w.content, w.res.Problems)
	}
}

// TestZipCLIPassword: an AES member in a method only 7z decodes is
// decrypted through the 7z fallback, the password going in on stdin.
func TestZipCLIPassword(t *testing.T) {
	need(t, "7z")
	dir := t.TempDir()
	content := bytes.Repeat([]byte("ppmd and aes\n"), 2000)
	writeFiles(t, dir, map[string]string{"f.txt": string(content)})
	run(t, dir, "7z", "a", "-bd", "-tzip", "-mm=PPMd", "-mem=AES256", "-pinfected", "p.zip", "f.txt")
	data := readFile(t, filepath.Join(dir, "p.zip"))
	w := walkBytes(t, Zip, data, Options{Passwords: []Password{{"nope", "body"}, {"infected", "thread"}}})
	e, _ := w.entry("f.txt")
	if !bytes.Equal(w.content["f.txt"], content) || !e.Decrypted || e.PasswordSource != "thread" {
		t.Errorf("entry %+v, %d bytes, problems %v", e, len(w.content["f.txt"]), w.res.Problems)
	}
	w = walkBytes(t, Zip, data, Options{Passwords: []Password{{"nope", "body"}}})
	if len(w.res.Locked) != 1 || len(w.content) != 0 {
		t.Errorf("wrong password: locked %v content %d", w.res.Locked, len(w.content))
	}
}
