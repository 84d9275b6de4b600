package scan

import (
	"bytes"
	"context"
	"testing"
)

// FuzzScanStarterRules scans arbitrary bytes (and the same bytes through
// the block path) with the starter rules: no crash, no error, and the two
// paths agree for rules that do not depend on file structure beyond the
// first block.
func FuzzScanStarterRules(f *testing.F) {
	f.Add([]byte(eicar))
	f.Add(lnkFile(`C:\Windows\System32\cmd.exe`, "/c calc"))
	f.Add(oneNote("x", peStub()))
	f.Add(pdfFile("/OpenAction << /S /Launch >>", "x"))
	f.Add([]byte("ID;P\r\nC;X1;Y1;K0;EEXEC(\"calc\")\r\n"))
	f.Add(xlsBIFF(1, 2, 0x006E, 1))
	e := starterEngine(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m1, err := e.ScanBytes(context.Background(), data, Vars{Filename: "f.bin"})
		if err != nil {
			t.Fatalf("ScanBytes: %v", err)
		}
		m2, err := e.Scan(context.Background(), bytes.NewReader(data), int64(len(data)), Vars{Filename: "f.bin"})
		if err != nil {
			t.Fatalf("Scan: %v", err)
		}
		if a, b := ruleNames(m1), ruleNames(m2); len(a) != len(b) {
			t.Fatalf("ScanBytes %v, Scan %v", a, b)
		}
	})
}
