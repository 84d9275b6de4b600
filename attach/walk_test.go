package attach

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mailguard/mailguard/reason"
)

func TestWalkBasic(t *testing.T) {
	raw := mkMessage("Invoice", textPart("Please find the invoice attached.\r\n"),
		attachment("invoice.pdf.exe", "application/octet-stream", minimalPE()),
		attachment("notes.txt", "text/plain", []byte("just text\n")))
	res := walk(t, raw, Options{})
	if !res.Complete {
		t.Errorf("incomplete walk: %+v", res.Findings)
	}
	if got := res.Header.Subject; got != "Invoice" {
		t.Errorf("subject %q", got)
	}
	if len(res.Header.From) != 1 || res.Header.From[0].Addr != "sender@example.org" || res.Header.FromFields != 1 {
		t.Errorf("from %+v", res.Header.From)
	}
	if res.Header.MessageID != "m1@example.org" {
		t.Errorf("message id %q", res.Header.MessageID)
	}
	exe := file(t, res, "invoice.pdf.exe")
	if exe.Type != typePE || exe.Size != 512 || exe.Depth != 0 {
		t.Errorf("exe: type %q size %d depth %d", exe.Type, exe.Size, exe.Depth)
	}
	wantTag(t, exe.Findings, reason.ExecAttachment)
	wantTag(t, exe.Findings, reason.DoubleExtension)
	txt := file(t, res, "notes.txt")
	if len(txt.Findings) != 0 {
		t.Errorf("notes.txt findings %+v", txt.Findings)
	}
	if len(res.Bodies) != 1 || !strings.Contains(string(res.Bodies[0].data), "invoice attached") {
		t.Errorf("bodies %+v", res.Bodies)
	}
	if !bytes.Equal(content(t, exe), minimalPE()) {
		t.Error("exe content differs")
	}
	if want := sha256Hex(minimalPE()); exe.SHA256 != want {
		t.Errorf("sha256 %s, want %s", exe.SHA256, want)
	}
}

func TestWalkDeterministic(t *testing.T) {
	raw := mkMessage("x", textPart("a"), attachment("a.exe", "application/octet-stream", minimalPE()),
		attachment("b.txt", "text/plain", []byte("b")))
	a, b := walk(t, raw, Options{}), walk(t, raw, Options{})
	if len(a.Files) != len(b.Files) {
		t.Fatal("file counts differ")
	}
	for i := range a.Files {
		if a.Files[i].Path != b.Files[i].Path || a.Files[i].SHA256 != b.Files[i].SHA256 {
			t.Errorf("file %d differs: %s vs %s", i, a.Files[i].Path, b.Files[i].Path)
		}
	}
}

func TestSpillAndClose(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 8192) // 128 KiB
	dir := t.TempDir()
	raw := mkMessage("x", attachment("big.bin", "application/octet-stream", big), attachment("small.txt", "text/plain", []byte("s")))
	res, err := Walk(context.Background(), bytes.NewReader(raw), int64(len(raw)), Options{TempDir: dir, Limits: Limits{MemoryFileBytes: 4096}})
	if err != nil {
		t.Fatal(err)
	}
	f := file(t, res, "big.bin")
	if f.path == "" {
		t.Fatal("large file not spilled")
	}
	if !bytes.Equal(content(t, f), big) {
		t.Error("spilled content differs")
	}
	ra, n, err := f.ReaderAt()
	if err != nil || n != int64(len(big)) {
		t.Fatalf("ReaderAt: %d, %v", n, err)
	}
	b := make([]byte, 16)
	if _, err := ra.ReadAt(b, 16); err != nil || string(b) != "0123456789abcdef" {
		t.Errorf("ReadAt %q %v", b, err)
	}
	if file(t, res, "small.txt").path != "" {
		t.Error("small file spilled")
	}
	if err := res.Close(); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("spill files left after Close: %v", left)
	}
	if err := res.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestTimeBudget(t *testing.T) {
	raw := mkMessage("x", attachment("a.zip", "application/zip", mkZip(t, map[string][]byte{"a.txt": []byte("a")}, "a.txt")))
	res := walk(t, raw, Options{Limits: Limits{MaxDuration: time.Nanosecond}})
	if res.Complete {
		t.Error("complete despite a spent budget")
	}
	wantTag(t, res.Findings, reason.ArchiveBomb)
}

func TestShortNestedMessageByDeclaration(t *testing.T) {
	inner := "Subject: hi\r\nContent-Type: application/octet-stream; name=x.exe\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		base64.StdEncoding.EncodeToString(minimalPE()) + "\r\n"
	raw := mkMessage("x", part{header: "Content-Type: message/rfc822\r\n", body: inner})
	res := walk(t, raw, Options{})
	wantTag(t, file(t, res, "part1.eml/x.exe").Findings, reason.ExecAttachment)
}

func TestParserPanicBecomesFinding(t *testing.T) {
	res := &Result{Files: []*File{}, spill: &spillDir{}}
	w := &walker{res: res}
	f := &File{Path: "x.bin"}
	if err := w.safely(f, "test", func() error { panic("boom") }); err != nil {
		t.Fatal(err)
	}
	wantTag(t, f.Findings, reason.MalformedMIME)
	if len(res.Panics) != 1 || !strings.Contains(res.Panics[0], "boom") || res.Complete {
		t.Errorf("panics %q complete %v", res.Panics, res.Complete)
	}
	if err := w.guard(func() error { panic("bang") }); err != nil {
		t.Fatal(err)
	}
	wantTag(t, res.Findings, reason.MalformedMIME)
}

func TestUniquePaths(t *testing.T) {
	raw := mkMessage("x", attachment("a.txt", "text/plain", []byte("1")), attachment("a.txt", "text/plain", []byte("2")),
		attachment("a.txt", "text/plain", []byte("3")))
	res := walk(t, raw, Options{})
	file(t, res, "a.txt")
	file(t, res, "a.txt (2)")
	if f := file(t, res, "a.txt (3)"); f.Name != "a.txt" || string(content(t, f)) != "3" {
		t.Errorf("third: name %q content %q", f.Name, content(t, f))
	}
}
