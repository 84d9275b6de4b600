package scan_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mailguard/mailguard/scan"
)

func Example() {
	dir, _ := os.MkdirTemp("", "rules")
	defer os.RemoveAll(dir)
	_ = os.WriteFile(filepath.Join(dir, "demo.yar"), []byte(`
rule Demo_Invoice_Script {
    meta:
        description = "script named like an invoice"
        severity = "medium"
        action = "quarantine"
    strings:
        $ws = "WScript.Shell" nocase
    condition:
        $ws and filename matches /invoice/i
}`), 0o644)

	rules, problems, err := scan.Compile([]string{"*.yar"}, dir)
	if err != nil || rules == nil {
		fmt.Println("compile:", err, problems)
		return
	}
	e := scan.NewEngine(rules, 5*time.Second)
	defer e.Close()

	m, err := e.ScanBytes(context.Background(), []byte(`CreateObject("WScript.Shell").Run "calc"`),
		scan.Vars{Filename: "Invoice-42.vbs", Filetype: "text/plain"})
	for _, x := range m {
		fmt.Println(x.Name(), x.Severity(), x.Action(), x.Strings, err)
	}
	f, _ := scan.Finding(m, "mail/Invoice-42.vbs")
	fmt.Println(f.Tag, f.Detail)
	// Output:
	// demo:Demo_Invoice_Script medium quarantine [$ws] <nil>
	// malware_yara yara: demo:Demo_Invoice_Script (medium)
}
