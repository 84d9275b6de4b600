package attach

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// fuzzSeeds are the test messages of this package, one of each shape.
func fuzzSeeds(t testing.TB) [][]byte {
	one := mkOneNote(minimalPE())
	seeds := [][]byte{
		mkMessage("x", textPart("パスワード：Abc12345"), attachment("a.exe", "application/octet-stream", minimalPE())),
		mkMessage("x", attachment("d.docm", "application/octet-stream", mkDocm(t))),
		mkMessage("x", attachment("a.pdf", "application/pdf", jsPDF())),
		mkMessage("x", attachment("a.lnk", "application/octet-stream", mkLNK(`C:\a.exe`, "x", "y", "z"))),
		mkMessage("x", attachment("n.one", "application/onenote", one)),
		mkMessage("x", attachment("z.zip", "application/zip", mkZip(t, map[string][]byte{"a/b.txt": []byte("hi")}, "a/b.txt"))),
		mkMessage("x", textPart("begin 644 a.exe\r\n"+uuencode(minimalPE())+"`\r\nend\r\n")),
		nested(60),
		[]byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n--c\r\n\r\nx\r\n--c--\r\n--b--\r\n"),
	}
	if files, _ := filepath.Glob("testdata/*.eml"); len(files) > 0 {
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil {
				seeds = append(seeds, b)
			}
		}
	}
	return seeds
}

func FuzzWalk(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	lim := Limits{MaxDepth: 4, MaxFiles: 64, MaxTotalBytes: 1 << 20, MaxMIMEParts: 200, MaxMIMEDepth: 20, MaxDuration: 5 * time.Second}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, raw []byte) {
		res, err := Walk(context.Background(), bytes.NewReader(raw), int64(len(raw)), Options{Limits: lim, TempDir: dir})
		if err != nil {
			t.Fatalf("Walk: %v", err)
		}
		defer res.Close()
		if n := res.TotalBytes(); n > lim.MaxTotalBytes {
			t.Fatalf("walk extracted %d bytes, limit %d", n, lim.MaxTotalBytes)
		}
		if len(res.Files) > lim.MaxFiles {
			t.Fatalf("%d files, limit %d", len(res.Files), lim.MaxFiles)
		}
		for _, fl := range res.Files {
			if fl.Depth > lim.MaxDepth+1 {
				t.Fatalf("file %q at depth %d", fl.Path, fl.Depth)
			}
		}
	})
}

// FuzzWalkFile feeds raw files (OLE, OOXML, PDF, LNK, OneNote, TNEF, RTF,
// BinHex) straight to the per-file parsers.
func FuzzWalkFile(f *testing.F) {
	fib := make([]byte, 64)
	f.Add(buildCFB(append(vbaEntries("Macros/", map[string]string{"Module1": macroSource}), cfbEntry{path: "WordDocument", data: fib},
		cfbEntry{path: "ObjectPool/_1/\x01Ole10Native", data: ole10Native("a.exe", minimalPE())}), nil))
	f.Add(buildCFB([]cfbEntry{{path: "Workbook", data: append(biff(0x0085, []byte{0, 0, 0, 0, 0, 1, 1, 0, 'M'}), biff(0x000A, nil)...)}}, nil))
	f.Add(mkDocm(f))
	f.Add(jsPDF())
	f.Add(mkLNK(`C:\Windows\System32\cmd.exe`, "/c calc", "%TEMP%", "x.ico"))
	f.Add(mkOneNote(minimalPE()))
	f.Add([]byte(`{\rtf1{\object{\*\objdata 0105000002000000080000005061636b61676500}}}`))
	f.Add([]byte("(This file must be converted with BinHex 4.0)\n:#'0XB@dZCAKP!%9B43\"$E'&Y!!!!!!)J!!!!!EY969T3!!)!!!!%!!m!rrm!!,J:\n"))
	f.Add(encryptAgile(f, mkDocm(f), officePassword, 3))
	if b, err := os.ReadFile("testdata/office/lo-velvet.xls"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{\rtf1{\object{\*\objclass Equation.3}{\*\objdata 01050000020000000b0000004571756174696f6e2e3300}}}`))
	f.Add(docxWithRels(f, `<Relationship Id="r" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/attachedTemplate" Target="http://x/t.dotm" TargetMode="External"/>`))
	lim := Limits{MaxDepth: 4, MaxFiles: 64, MaxTotalBytes: 1 << 20, MaxDuration: 5 * time.Second}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, raw []byte) {
		res, err := WalkFile(context.Background(), "fuzz.bin", bytes.NewReader(raw), int64(len(raw)), Options{Limits: lim, TempDir: dir})
		if err != nil {
			t.Fatalf("WalkFile: %v", err)
		}
		defer res.Close()
		if n := res.TotalBytes(); n > lim.MaxTotalBytes {
			t.Fatalf("extracted %d bytes, limit %d", n, lim.MaxTotalBytes)
		}
		if len(res.Files) > lim.MaxFiles {
			t.Fatalf("%d files", len(res.Files))
		}
	})
}
