package attach

import (
	"bytes"
	"strings"
	"testing"

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
