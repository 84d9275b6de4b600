package attach

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	diskfile "github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
	"golang.org/x/text/encoding/japanese"

	"github.com/mailguard/mailguard/reason"
)

// tool runs a command in dir and fails the test on error.
func tool(t testing.TB, dir string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// fixtureDir writes files into a fresh directory.
func fixtureDir(t testing.TB, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for n, b := range files {
		p := filepath.Join(dir, n)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func readFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// encArchive builds an encrypted archive of a PE and a text file with the
// real tools: kind is "zipcrypto", "aes" (zip AES-256) or "7zhe" (7z with
// encrypted headers).
func encArchive(t testing.TB, kind, password string) (name string, data []byte) {
	t.Helper()
	dir := fixtureDir(t, map[string][]byte{"請求書.exe": minimalPE(), "readme.txt": []byte("hello")})
	switch kind {
	case "zipcrypto":
		need(t, "zip")
		tool(t, dir, "zip", "-q", "-P", password, "out.zip", "請求書.exe", "readme.txt")
		return "invoice.zip", readFile(t, filepath.Join(dir, "out.zip"))
	case "aes":
		need(t, "7z")
		tool(t, dir, "7z", "a", "-tzip", "-mem=AES256", "-p"+password, "out.zip", "請求書.exe", "readme.txt")
		return "invoice.zip", readFile(t, filepath.Join(dir, "out.zip"))
	case "7zhe":
		need(t, "7z")
		tool(t, dir, "7z", "a", "-t7z", "-mhe=on", "-p"+password, "out.7z", "請求書.exe", "readme.txt")
		return "invoice.7z", readFile(t, filepath.Join(dir, "out.7z"))
	}
	t.Fatalf("unknown kind %s", kind)
	return "", nil
}

func TestEncryptedArchivesWithBodyPassword(t *testing.T) {
	bodies := map[string]string{
		"ja full-width colon": "お世話になっております。\r\n添付ファイルのパスワード：%s\r\nよろしくお願いいたします。",
		"ja brackets":         "解凍パスワードは「%s」です。",
		"ja next line":        "パスワードは下記の通りです。\r\n\r\n　%s\r\n",
		"en":                  "Hi,\r\nThe password for the zip file is %s\r\nThanks",
	}
	for _, kind := range []string{"zipcrypto", "aes", "7zhe"} {
		for shape, body := range bodies {
			t.Run(kind+"/"+shape, func(t *testing.T) {
				const pw = "Xk7#p2Qz"
				name, data := encArchive(t, kind, pw)
				raw := mkMessage("見積書送付の件", part{header: "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n",
					body: strings.ReplaceAll(body, "%s", pw)}, attachment(name, "application/octet-stream", data))
				res := walk(t, raw, Options{})
				arc := file(t, res, name)
				if !arc.Encrypted || !arc.Decrypted || arc.PasswordSource != SourceBody {
					t.Errorf("archive encrypted=%v decrypted=%v source=%q findings=%+v", arc.Encrypted, arc.Decrypted, arc.PasswordSource, arc.Findings)
				}
				wantTag(t, arc.Findings, reason.PasswordFoundBody)
				wantNoTag(t, arc.Findings, reason.EncryptedUnscannable)
				exe := file(t, res, name+"/請求書.exe")
				if !exe.Decrypted || exe.PasswordSource != SourceBody || !bytes.Equal(content(t, exe), minimalPE()) {
					t.Errorf("exe decrypted=%v source=%q", exe.Decrypted, exe.PasswordSource)
				}
				wantTag(t, exe.Findings, reason.ExecAttachment)
				wantTag(t, exe.Findings, reason.LNKInContainer)
				for _, f := range res.AllFindings() {
					if strings.Contains(f.Detail, pw) {
						t.Errorf("password in finding %+v", f)
					}
				}
			})
		}
	}
}

func TestEncryptedArchiveLocked(t *testing.T) {
	for _, kind := range []string{"zipcrypto", "aes", "7zhe"} {
		t.Run(kind, func(t *testing.T) {
			name, data := encArchive(t, kind, "Right-Pass1")
			for _, body := range []string{"no password here", "パスワード：Wrong-Pass9"} {
				raw := mkMessage("x", textPart(body), attachment(name, "application/octet-stream", data))
				res := walk(t, raw, Options{})
				arc := file(t, res, name)
				wantTag(t, arc.Findings, reason.EncryptedUnscannable)
				if !arc.Encrypted || arc.Decrypted || arc.PasswordSource != SourceNone {
					t.Errorf("%q: encrypted=%v decrypted=%v source=%q", body, arc.Encrypted, arc.Decrypted, arc.PasswordSource)
				}
				if kind != "7zhe" && !slices.Contains(arc.Features.Entries, "請求書.exe") {
					t.Errorf("%q: listable names %q", body, arc.Features.Entries)
				}
			}
		})
	}
}

func TestEncryptedArchiveThreadPassword(t *testing.T) {
	name, data := encArchive(t, "zipcrypto", "Thread-Pw7")
	raw := mkMessage("Re: 見積書", textPart("パスワードは別途お送りします。"), attachment(name, "application/zip", data))
	res := walk(t, raw, Options{Passwords: []Password{{Value: "nope-nope", Source: SourcePolicy}, {Value: "Thread-Pw7", Source: SourceThread}}})
	arc := file(t, res, name)
	if !arc.Decrypted || arc.PasswordSource != SourceThread {
		t.Errorf("decrypted=%v source=%q %+v", arc.Decrypted, arc.PasswordSource, arc.Findings)
	}
	wantTag(t, arc.Findings, reason.PasswordFoundThread)
	wantNoTag(t, arc.Findings, reason.PasswordFoundBody)
	if !res.PasswordAnnounced {
		t.Error("announcement not seen")
	}
}

func TestNestedArchivesThreeDeep(t *testing.T) {
	need(t, "zip", "7z")
	dir := fixtureDir(t, map[string][]byte{"payload.exe": minimalPE()})
	tool(t, dir, "zip", "-q", "level3.zip", "payload.exe")
	tool(t, dir, "7z", "a", "-t7z", "level2.7z", "level3.zip")
	tool(t, dir, "zip", "-q", "level1.zip", "level2.7z")
	raw := mkMessage("x", attachment("level1.zip", "application/zip", readFile(t, filepath.Join(dir, "level1.zip"))))
	res := walk(t, raw, Options{})
	exe := file(t, res, "level1.zip/level2.7z/level3.zip/payload.exe")
	if exe.Depth != 3 {
		t.Errorf("depth %d", exe.Depth)
	}
	wantTag(t, exe.Findings, reason.ExecAttachment)
	if !res.Complete {
		t.Errorf("incomplete: %+v", res.AllFindings())
	}
	// With MaxDepth 2 the innermost container is not opened.
	res = walk(t, raw, Options{Limits: Limits{MaxDepth: 2}})
	wantTag(t, file(t, res, "level1.zip/level2.7z/level3.zip").Findings, reason.ArchiveDepth)
	wantTag(t, res.Findings, reason.ArchiveDepth)
	if res.Complete {
		t.Error("complete despite the depth limit")
	}
}

func TestArchiveBombs(t *testing.T) {
	t.Run("ratio", func(t *testing.T) {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		w, _ := zw.Create("zeros.bin")
		w.Write(make([]byte, 16<<20))
		zw.Close()
		start := time.Now()
		res := walk(t, mkMessage("x", attachment("bomb.zip", "application/zip", buf.Bytes())), Options{})
		wantTag(t, res.AllFindings(), reason.ArchiveBomb)
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("took %v", d)
		}
		if n := res.TotalBytes(); n > 16<<20 {
			t.Errorf("extracted %d bytes", n)
		}
	})
	t.Run("nested quine-like", func(t *testing.T) {
		// A zip of ten zips of ten zips of 4 MiB zero files.
		inner := func(n int, name string, data []byte) []byte {
			var b bytes.Buffer
			zw := zip.NewWriter(&b)
			for i := 0; i < n; i++ {
				w, _ := zw.Create(strings.Replace(name, "N", string(rune('a'+i)), 1))
				w.Write(data)
			}
			zw.Close()
			return b.Bytes()
		}
		l3 := inner(10, "N.bin", make([]byte, 2<<20))
		l2 := inner(10, "N.zip", l3)
		l1 := inner(10, "N.zip", l2)
		lim := Limits{MaxTotalBytes: 24 << 20, MaxFiles: 200}
		res := walk(t, mkMessage("x", attachment("42.zip", "application/zip", l1)), Options{Limits: lim})
		wantTag(t, res.Findings, reason.ArchiveBomb)
		if res.Complete {
			t.Error("complete")
		}
		if n := res.TotalBytes(); n > lim.MaxTotalBytes {
			t.Errorf("extracted %d bytes, limit %d", n, lim.MaxTotalBytes)
		}
	})
	t.Run("overlapping entries", func(t *testing.T) {
		z := overlapZip(t)
		res := walk(t, mkMessage("x", attachment("overlap.zip", "application/zip", z)), Options{})
		wantTag(t, file(t, res, "overlap.zip").Findings, reason.ArchiveBomb)
	})
	t.Run("file count", func(t *testing.T) {
		files := map[string][]byte{}
		var order []string
		for i := 0; i < 100; i++ {
			n := "f" + string(rune('A'+i%26)) + string(rune('a'+i/26)) + ".txt"
			files[n] = []byte("x")
			order = append(order, n)
		}
		res := walk(t, mkMessage("x", attachment("many.zip", "application/zip", mkZip(t, files, order...))), Options{Limits: Limits{MaxFiles: 20}})
		wantTag(t, res.Findings, reason.ArchiveBomb)
		if len(res.Files) > 20 {
			t.Errorf("%d files", len(res.Files))
		}
	})
}

// overlapZip builds a zip whose two central directory entries point at
// the same local file (the Fifield construction in miniature).
func overlapZip(t testing.TB) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("a.bin")
	w.Write(bytes.Repeat([]byte("A"), 100000))
	zw.Close()
	b := buf.Bytes()
	eocd := bytes.LastIndex(b, []byte("PK\x05\x06"))
	cdOff := int(binary.LittleEndian.Uint32(b[eocd+16:]))
	cd := append([]byte(nil), b[cdOff:eocd]...)
	cd2 := append([]byte(nil), cd...)
	copy(cd2[46:], "b") // second name "b.bin", same local header offset
	out := append([]byte(nil), b[:cdOff]...)
	out = append(out, cd...)
	out = append(out, cd2...)
	e := append([]byte(nil), b[eocd:]...)
	binary.LittleEndian.PutUint16(e[8:], 2)
	binary.LittleEndian.PutUint16(e[10:], 2)
	binary.LittleEndian.PutUint32(e[12:], uint32(2*len(cd)))
	return append(out, e...)
}

func TestArchiveTraversalAndRTLO(t *testing.T) {
	z := mkZip(t, map[string][]byte{
		"../../etc/cron.d/x":        []byte("x"),
		"/abs/evil.txt":             []byte("x"),
		`C:\Windows\evil.dll`:       minimalPE(),
		"invoice\u202efdp.exe":      minimalPE(),
		"docs/report.pdf      .scr": minimalPE(),
	}, "../../etc/cron.d/x", "/abs/evil.txt", `C:\Windows\evil.dll`, "invoice\u202efdp.exe", "docs/report.pdf      .scr")
	res := walk(t, mkMessage("x", attachment("t.zip", "application/zip", z)), Options{})
	all := res.AllFindings()
	count := func(tag reason.Tag) int {
		n := 0
		for _, f := range all {
			if f.Tag == tag {
				n++
			}
		}
		return n
	}
	if count(reason.PathTraversal) < 3 {
		t.Errorf("path_traversal findings %d", count(reason.PathTraversal))
	}
	wantTag(t, all, reason.RTLOFilename)
	wantTag(t, all, reason.DoubleExtension)
	for _, f := range res.Files {
		if strings.ContainsRune(f.Path, '\u202e') || strings.Contains(f.Path, "\x00") {
			t.Errorf("unsanitised path %q", f.Path)
		}
	}
}

func TestLNKInISO(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "x.iso")
	os.Mkdir(filepath.Join(dir, "ws"), 0o755)
	st, err := diskfile.CreateFromPath(img, 4<<20)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := iso9660.Create(st, 0, 0, 2048, filepath.Join(dir, "ws"))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"/INVOICE.LNK": mkLNK(`C:\Windows\System32\cmd.exe`, "/c start payload.dll", "", ""), "/PAYLOAD.DLL": minimalPE()} {
		f, err := fs.OpenFile(name, os.O_CREATE|os.O_RDWR)
		if err != nil {
			t.Fatal(err)
		}
		f.Write(data)
		f.Close()
	}
	if err := fs.Finalize(iso9660.FinalizeOptions{}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	raw := mkMessage("x", attachment("invoice.iso", "application/octet-stream", readFile(t, img)))
	res := walk(t, raw, Options{})
	iso := file(t, res, "invoice.iso")
	if iso.Type != typeISO || iso.Features.Container == "" {
		t.Errorf("iso type %q container %q findings %+v", iso.Type, iso.Features.Container, iso.Findings)
	}
	var lnk *File
	for _, f := range res.Files {
		if strings.HasSuffix(strings.ToLower(f.Path), "invoice.lnk") {
			lnk = f
		}
	}
	if lnk == nil {
		t.Fatalf("lnk not found; iso findings %+v", iso.Findings)
	}
	wantTag(t, lnk.Findings, reason.LNKInContainer)
	if lnk.Features.LNK == nil || !strings.Contains(lnk.Features.LNK.Target, "cmd.exe") {
		t.Errorf("lnk %+v", lnk.Features.LNK)
	}
}

// cp932Zip is a zip as Windows Explorer in Japan writes it: names in
// CP932 with no UTF-8 flag. Go's writer always flags non-ASCII names, so
// the names are written as same-length ASCII and replaced afterwards.
func cp932Zip(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	enc := japanese.ShiftJIS.NewEncoder()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	var swaps [][2][]byte
	i := 0
	for name, data := range files {
		raw, err := enc.Bytes([]byte(name))
		if err != nil {
			t.Fatal(err)
		}
		ph := []byte(fmt.Sprintf("%c%s", 'A'+i, strings.Repeat("x", len(raw)-1)))
		i++
		w, err := zw.CreateHeader(&zip.FileHeader{Name: string(ph), Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		swaps = append(swaps, [2][]byte{ph, raw})
	}
	zw.Close()
	b := buf.Bytes()
	for _, s := range swaps {
		b = bytes.ReplaceAll(b, s[0], s[1])
	}
	return b
}

// TestZipCP932Names: names decode whole, including 表 whose second byte
// is a back slash.
func TestZipCP932Names(t *testing.T) {
	z := cp932Zip(t, map[string][]byte{"見積表/請求書.pdf.exe": minimalPE()})
	res := walk(t, mkMessage("x", attachment("a.zip", "application/zip", z)), Options{})
	f := file(t, res, "a.zip/見積表/請求書.pdf.exe")
	wantTag(t, f.Findings, reason.DoubleExtension)
	wantTag(t, f.Findings, reason.ExecAttachment)
}
