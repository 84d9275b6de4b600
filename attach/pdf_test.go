package attach

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"strings"
	"testing"

	"github.com/pdfcpu/pdfcpu/pkg/api"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"

	"github.com/mailguard/mailguard/reason"
)

// mkPDF writes a classic PDF from object bodies (1-based), with a correct
// xref table.
func mkPDF(objs ...string) []byte {
	var b bytes.Buffer
	b.WriteString("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
	offs := make([]int, len(objs))
	for i, o := range objs {
		offs[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	x := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objs)+1)
	for _, o := range offs {
		fmt.Fprintf(&b, "%010d 00000 n \n", o)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(objs)+1, x)
	return b.Bytes()
}

func jsPDF() []byte {
	return mkPDF(
		"<< /Type /Catalog /Pages 2 0 R /OpenAction 4 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
		"<< /Type /Action /S /JavaScript /JS (app.alert\\('x'\\);) >>",
	)
}

// objectStreamPDF builds a PDF 1.5 whose objects live in one
// Flate-compressed object stream, indexed by an xref stream (the shape
// qpdf --object-streams=generate writes), so that no keyword is visible
// in the raw bytes.
func objectStreamPDF(t *testing.T, objs ...string) []byte {
	t.Helper()
	var hdr, body bytes.Buffer
	for i, o := range objs {
		fmt.Fprintf(&hdr, "%d %d ", i+1, body.Len())
		body.WriteString(o + "\n")
	}
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(append(hdr.Bytes(), body.Bytes()...))
	zw.Close()
	var b bytes.Buffer
	b.WriteString("%PDF-1.5\n%\xe2\xe3\xcf\xd3\n")
	n := len(objs)
	stmNum, xrefNum := n+1, n+2
	stmOff := b.Len()
	fmt.Fprintf(&b, "%d 0 obj\n<< /Type /ObjStm /N %d /First %d /Filter /FlateDecode /Length %d >>\nstream\n", stmNum, n, hdr.Len(), z.Len())
	b.Write(z.Bytes())
	b.WriteString("\nendstream\nendobj\n")
	xrefOff := b.Len()
	var x []byte
	x = append(x, 0, 0, 0, 0, 0, 0xff, 0xff)
	for i := 0; i < n; i++ {
		x = append(x, 2, 0, 0, 0, byte(stmNum), 0, byte(i))
	}
	x = append(x, 1, byte(stmOff>>24), byte(stmOff>>16), byte(stmOff>>8), byte(stmOff), 0, 0)
	x = append(x, 1, byte(xrefOff>>24), byte(xrefOff>>16), byte(xrefOff>>8), byte(xrefOff), 0, 0)
	fmt.Fprintf(&b, "%d 0 obj\n<< /Type /XRef /Size %d /W [1 4 2] /Root 1 0 R /Length %d >>\nstream\n", xrefNum, xrefNum+1, len(x))
	b.Write(x)
	fmt.Fprintf(&b, "\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n", xrefOff)
	return b.Bytes()
}

func TestPDFActiveContent(t *testing.T) {
	plain := jsPDF()
	res := walk(t, mkMessage("x", attachment("a.pdf", "application/pdf", plain)), Options{})
	f := file(t, res, "a.pdf")
	wantTag(t, f.Findings, reason.PDFActiveContent)
	if f.Features.PDF == nil || f.Features.PDF.Method != "pdfcpu" {
		t.Errorf("pdf info %+v", f.Features.PDF)
	}

	objstm := objectStreamPDF(t,
		"<< /Type /Catalog /Pages 2 0 R /OpenAction 4 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
		"<< /Type /Action /S /JavaScript /JS (app.alert\\('x'\\);) >>")
	if bytes.Contains(objstm, []byte("/JavaScript")) {
		t.Fatal("test PDF still has /JavaScript in the clear; object streams not generated")
	}
	res = walk(t, mkMessage("x", attachment("b.pdf", "application/pdf", objstm)), Options{})
	f = file(t, res, "b.pdf")
	wantTag(t, f.Findings, reason.PDFActiveContent)
	if !strings.Contains(f.Findings[0].Detail, "/JavaScript") || f.Features.PDF.Method != "pdfcpu" {
		t.Errorf("detail %q method %q", f.Findings[0].Detail, f.Features.PDF.Method)
	}

	// Hex-escaped names in a truncated file: raw scan fallback.
	broken := []byte("%PDF-1.4\n1 0 obj << /OpenAction << /S /J#61vaScript /J#53 (x) >> >>\n")
	res = walk(t, mkMessage("x", attachment("c.pdf", "application/pdf", broken)), Options{})
	f = file(t, res, "c.pdf")
	wantTag(t, f.Findings, reason.PDFActiveContent)
	if f.Features.PDF.Method != "raw-scan" || !strings.Contains(f.Findings[0].Detail, "raw keyword scan") {
		t.Errorf("method %q detail %q", f.Features.PDF.Method, f.Findings[0].Detail)
	}

	// A benign PDF whose OpenAction is only a destination.
	benign := mkPDF("<< /Type /Catalog /Pages 2 0 R /OpenAction [3 0 R /Fit] >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>", "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>")
	res = walk(t, mkMessage("x", attachment("d.pdf", "application/pdf", benign)), Options{})
	wantNoTag(t, file(t, res, "d.pdf").Findings, reason.PDFActiveContent)
}

func TestPDFEmbeddedFile(t *testing.T) {
	pe := minimalPE()
	pdf := mkPDF(
		"<< /Type /Catalog /Pages 2 0 R /Names << /EmbeddedFiles << /Names [(a) 4 0 R] >> >> >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
		"<< /Type /Filespec /F (payload.exe) /UF (payload.exe) /EF << /F 5 0 R >> >>",
		fmt.Sprintf("<< /Type /EmbeddedFile /Length %d >>\nstream\n%s\nendstream", len(pe), pe),
	)
	res := walk(t, mkMessage("x", attachment("e.pdf", "application/pdf", pdf)), Options{})
	wantTag(t, file(t, res, "e.pdf").Findings, reason.PDFActiveContent)
	wantTag(t, file(t, res, "e.pdf/payload.exe").Findings, reason.ExecAttachment)
}

func TestPDFEncrypted(t *testing.T) {
	encrypt := func(user string) []byte {
		conf := pdfConfig()
		conf.UserPW, conf.OwnerPW = user, "owner-secret"
		conf.EncryptUsingAES, conf.EncryptKeyLength = true, 256
		conf.Permissions = model.PermissionsPrint
		var out bytes.Buffer
		if err := api.Encrypt(bytes.NewReader(jsPDF()), &out, conf); err != nil {
			t.Fatalf("encrypt: %v", err)
		}
		return out.Bytes()
	}
	// A user password: unreadable here.
	res := walk(t, mkMessage("x", attachment("locked.pdf", "application/pdf", encrypt("user-secret"))), Options{})
	f := file(t, res, "locked.pdf")
	if !f.Encrypted || f.Decrypted {
		t.Errorf("encrypted=%v decrypted=%v %+v", f.Encrypted, f.Decrypted, f.Findings)
	}
	wantTag(t, f.Findings, reason.EncryptedUnscannable)
	// Owner password only: readable with the empty user password.
	res = walk(t, mkMessage("x", attachment("owner.pdf", "application/pdf", encrypt(""))), Options{})
	f = file(t, res, "owner.pdf")
	if !f.Encrypted || !f.Decrypted {
		t.Errorf("owner-only: encrypted=%v decrypted=%v %+v", f.Encrypted, f.Decrypted, f.Findings)
	}
	wantTag(t, f.Findings, reason.PDFActiveContent)
	wantNoTag(t, f.Findings, reason.EncryptedUnscannable)
	// The open password in the body (PPAP with a PDF): opened, inspected.
	res = walk(t, mkMessage("x", textPart("資料を送付します。\r\nパスワード：user-secret\r\n"), attachment("locked.pdf", "application/pdf", encrypt("user-secret"))), Options{})
	f = file(t, res, "locked.pdf")
	if !f.Encrypted || !f.Decrypted || f.PasswordSource != SourceBody || f.Features.PDF.Method != "pdfcpu" {
		t.Errorf("body password: encrypted=%v decrypted=%v source=%q %+v", f.Encrypted, f.Decrypted, f.PasswordSource, f.Findings)
	}
	wantTag(t, f.Findings, reason.PDFActiveContent)
	wantTag(t, f.Findings, reason.PasswordFoundBody)
	wantNoTag(t, f.Findings, reason.EncryptedUnscannable)
	// Without it the PDF is locked, so a password mail is waited for.
	res = walk(t, mkMessage("x", textPart("password follows"), attachment("locked.pdf", "application/pdf", encrypt("user-secret"))), Options{})
	if f = file(t, res, "locked.pdf"); !f.Locked() {
		t.Errorf("user-password PDF not locked: %+v %+v", f.Features, f.Findings)
	}
}
