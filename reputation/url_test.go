package reputation

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseURLNormalisation(t *testing.T) {
	type want struct {
		host, domain, norm                        string
		ip, puny, userinfo, obfuscated, shortener bool
	}
	cases := map[string]want{
		"http://Example.COM./a?b=1#c":         {host: "example.com", domain: "example.com", norm: "http://example.com/a?b=1#c"},
		"https://login.bank.co.uk:8443/x":     {host: "login.bank.co.uk", domain: "bank.co.uk", norm: "https://login.bank.co.uk/x"},
		"http://bank.example.com@evil.net/x":  {host: "evil.net", domain: "evil.net", norm: "http://evil.net/x", userinfo: true},
		"http://user:pw@evil.net:80":          {host: "evil.net", domain: "evil.net", norm: "http://evil.net", userinfo: true},
		"hxxp://evil[.]net/p":                 {host: "evil.net", domain: "evil.net", norm: "http://evil.net/p", obfuscated: true},
		"hxxps[://]evil(.)co(.)jp/":           {host: "evil.co.jp", domain: "evil.co.jp", norm: "https://evil.co.jp/", obfuscated: true},
		"https://evil[dot]net":                {host: "evil.net", domain: "evil.net", norm: "https://evil.net", obfuscated: true},
		"http://%65vil.net/":                  {host: "evil.net", domain: "evil.net", norm: "http://evil.net/", obfuscated: true},
		"http://xn--80ak6aa92e.com/":          {host: "xn--80ak6aa92e.com", domain: "xn--80ak6aa92e.com", norm: "http://xn--80ak6aa92e.com/", puny: true},
		"http://аррӏе.com/login":              {host: "xn--80ak6aa92e.com", domain: "xn--80ak6aa92e.com", norm: "http://xn--80ak6aa92e.com/login", puny: true},
		"http://ｅｖｉｌ．ｎｅｔ/":                    {host: "evil.net", domain: "evil.net", norm: "http://evil.net/", obfuscated: true},
		"http://3232235777/":                  {host: "192.168.1.1", domain: "192.168.1.1", norm: "http://192.168.1.1/", ip: true, obfuscated: true},
		"http://0xC0.0250.1.1/":               {host: "192.168.1.1", domain: "192.168.1.1", norm: "http://192.168.1.1/", ip: true, obfuscated: true},
		"http://203.0.113.9:8080/x":           {host: "203.0.113.9", domain: "203.0.113.9", norm: "http://203.0.113.9/x", ip: true},
		"http://[2001:DB8::1]/x":              {host: "2001:db8::1", domain: "2001:db8::1", norm: "http://[2001:db8::1]/x", ip: true},
		"//cdn.example.net/a.js":              {host: "cdn.example.net", domain: "example.net", norm: "https://cdn.example.net/a.js"},
		"www.example.org/path":                {host: "www.example.org", domain: "example.org", norm: "http://www.example.org/path"},
		"https://bit.ly/3xYz":                 {host: "bit.ly", domain: "bit.ly", norm: "https://bit.ly/3xYz", shortener: true},
		"http://evil.net\\@bank.example.com/": {host: "evil.net", domain: "evil.net", norm: "http://evil.net/@bank.example.com/"},
		"https://my_host.example.com/":        {host: "my_host.example.com", domain: "example.com", norm: "https://my_host.example.com/"},
	}
	for raw, w := range cases {
		u, ok := parseURL(raw, false)
		if !ok {
			t.Errorf("parseURL(%q) failed", raw)
			continue
		}
		got := want{u.Host, u.Domain, u.Normalized, u.IPLiteral, u.Punycode, u.Userinfo, u.Obfuscated, u.Shortener}
		if got != w {
			t.Errorf("parseURL(%q):\n got %+v\nwant %+v", raw, got, w)
		}
	}
	if u, _ := parseURL("http://xn--80ak6aa92e.com/", false); u.Unicode != "аррӏе.com" {
		t.Errorf("Unicode = %q", u.Unicode)
	}
	for _, bad := range []string{
		"mailto:a@example.com", "javascript:alert(1)", "/relative/path", "#top", "cid:image001",
		"http://", "http:///x", "http://1.2.3.4.5/", "http://256.1.1.1/", "http://%zz.com/", "data:text/html;base64,xx",
		"http://exa mple.com/", "tel:+81-3-0000",
	} {
		if u, ok := parseURL(bad, false); ok {
			t.Errorf("parseURL(%q) = %+v, want rejected", bad, u)
		}
	}
}

// A phishing mail shaped like real ones: an HTML body with a table
// layout, entity-encoded hosts, a display-text/target mismatch, a tracking
// pixel, an IDN lookalike, a defanged URL in the text, a meta refresh, an
// Outlook VML button in a conditional comment, and a mailto link.
const phishHTML = `<!DOCTYPE html><html><head>
<meta http-equiv="Content-Type" content="text/html; charset=utf-8">
<meta http-equiv="refresh" content="30; URL='https://refresh.example.net/r'">
<style>a { color: #0563c1 } .x { background: url(https://style.example.com/bg.png) }</style>
</head><body>
<table width="600"><tr><td>
<p>Dear customer,</p>
<p>Your account at <b>Contoso Bank</b> needs verification. Click
<a href="https://contoso-verify&#46;com/login?id=12">https://www.contosobank.com/secure</a> within 24 hours.</p>
<p>Or sign in at <a href="http://&#x61;pple-id.example.org/">apple-id.example.org</a> (same site, no mismatch).</p>
<p><a href="https://xn--pple-43d.com/">Apple Support</a></p>
<p>Questions? <a href="mailto:help@contosobank.com">help@contosobank.com</a></p>
<p>Reference: hxxps://reports[.]evil-cdn[.]net/case/77 and www.portal-login.co.jp/x.</p>
<!--[if mso]><v:roundrect href="https://vml-button.example.com/go" style="height:40px"><center>Open</center></v:roundrect><![endif]-->
<a href="https://bit.ly/3aBcD"><img src="https://img.example.com/logo.png" srcset="https://img.example.com/logo@2x.png 2x, https://img.example.com/logo@3x.png 3x" alt=""></a>
<img src="https://track.example.com/open?u=1" width="1" height="1">
<form action="https://forms.example.net/post"><input type="submit"></form>
<a href="#top">top</a> <a href="/unsubscribe">unsubscribe</a>
<a href="javascript:window.location='https://js-href.example.net/p'">view</a>
<script>window.location = "https://script-redirect.example.net/x";</script>
</td></tr></table></body></html>`

func TestExtractURLsFromHTML(t *testing.T) {
	urls := ExtractURLs("", phishHTML, 0)
	type got struct {
		Norm     string
		Mismatch bool
		Text     string
	}
	var gots []got
	byNorm := map[string]URL{}
	for _, u := range urls {
		gots = append(gots, got{u.Normalized, u.Mismatch, u.Text})
		byNorm[u.Normalized] = u
	}
	want := []got{
		{"https://refresh.example.net/r", false, ""},
		{"https://contoso-verify.com/login?id=12", true, "https://www.contosobank.com/secure"},
		{"http://apple-id.example.org/", false, "apple-id.example.org"},
		{"https://xn--pple-43d.com/", false, "Apple Support"},
		{"https://vml-button.example.com/go", false, ""},
		{"https://img.example.com/logo.png", false, ""},
		{"https://img.example.com/logo@2x.png", false, ""},
		{"https://img.example.com/logo@3x.png", false, ""},
		{"https://bit.ly/3aBcD", false, ""},
		{"https://track.example.com/open?u=1", false, ""},
		{"https://forms.example.net/post", false, ""},
		{"https://js-href.example.net/p", false, ""},
		{"https://reports.evil-cdn.net/case/77", false, ""},
		{"http://www.portal-login.co.jp/x", false, ""},
		{"https://script-redirect.example.net/x", false, ""},
	}
	if diff := cmp.Diff(want, gots); diff != "" {
		t.Errorf("ExtractURLs (-want +got):\n%s", diff)
	}
	if u := byNorm["https://xn--pple-43d.com/"]; !u.Punycode || u.Unicode != "аpple.com" {
		t.Errorf("IDN lookalike: %+v", u)
	}
	if u := byNorm["https://bit.ly/3aBcD"]; !u.Shortener {
		t.Errorf("shortener not flagged: %+v", u)
	}
	if u := byNorm["https://reports.evil-cdn.net/case/77"]; !u.Obfuscated || u.Source != "text" {
		t.Errorf("defanged text URL: %+v", u)
	}
}

func TestExtractURLsMismatch(t *testing.T) {
	check := func(anchorText, href string, want bool) {
		t.Helper()
		urls := ExtractURLs("", `<a href="`+href+`">`+anchorText+`</a>`, 0)
		if len(urls) != 1 || urls[0].Mismatch != want {
			t.Errorf("<a href=%q>%s</a>: %+v, want mismatch %v", href, anchorText, urls, want)
		}
	}
	check("paypal.com", "https://paypal.com.secure-login.net/", true)
	check("www.PayPal.com", "https://www.paypal.com/signin", false)
	check("https://login.microsoftonline.com", "https://login.microsoftonline.com.evil.io/", true)
	check("support@contoso.com", "https://contoso-helpdesk.net/", true)
	check("Click here to view the invoice", "https://evil.example.net/", false)
	check("invoice.zip", "https://files.example.com/invoice.zip", false) // a file name, not a host
	check("Download report.pdf", "https://files.example.com/r.pdf", false)
	check("https://192.0.2.1/login", "https://bank.example.com/", true)
	check("<b>www.</b><i>bank.example.com</i>", "https://www.bank.example.com/", false)
}

func TestExtractURLsFromText(t *testing.T) {
	text := "Hello,\r\nthe report is at https://intranet.example.com/reports/q3.pdf.\r\n" +
		"Old link (http://old.example.com/path_(1)) still works; also see <https://angle.example.org/x>.\r\n" +
		"詳細はhttps://例え.テスト/ページ をご覧ください。または https://shop.example.co.jp/item?id=5&amp;ref=mail をどうぞ。\r\n" +
		"Defanged: hxxp://malware[.]example[.]net/drop and www[.]phish[.]example[.]com/login\r\n" +
		"Entity: http://evil&#46;example&#x2e;com/ and not a url: www.example and file.zip and e.g. x.y\r\n" +
		"日本語の文中https://example.jpをご確認ください\r\n"
	var got []string
	for _, u := range ExtractURLs(text, "", 0) {
		got = append(got, u.Normalized)
	}
	want := []string{
		"https://intranet.example.com/reports/q3.pdf",
		"http://old.example.com/path_(1)",
		"https://angle.example.org/x",
		"https://xn--r8jz45g.xn--zckzah/",
		"https://shop.example.co.jp/item?id=5&ref=mail",
		"http://malware.example.net/drop",
		"http://www.phish.example.com/login",
		"http://evil.example.com/",
		"https://example.jp",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ExtractURLs (-want +got):\n%s", diff)
	}
}

func TestExtractURLsLimitAndDuplicates(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 500; i++ {
		b.WriteString("<a href=\"https://example.com/same\">x</a>")
		b.WriteString("<a href=\"https://host")
		b.WriteString(strings.Repeat("a", i%40+1))
		b.WriteString(".example.net/\">y</a>")
	}
	urls := ExtractURLs("", b.String(), 25)
	if len(urls) != 25 {
		t.Errorf("got %d URLs, want the limit 25", len(urls))
	}
	seen := map[string]bool{}
	for _, u := range urls {
		if seen[u.Normalized] {
			t.Errorf("duplicate %s", u.Normalized)
		}
		seen[u.Normalized] = true
	}
	if n := len(ExtractURLs("", b.String(), 0)); n != 41 {
		t.Errorf("distinct URLs = %d, want 41", n)
	}
}

func TestExtractPDF(t *testing.T) {
	pdf := []byte("%PDF-1.4\n1 0 obj << /Type /Annot /Subtype /Link /A << /S /URI /URI (https://pdf-link.example.com/a\\(1\\)) >> >> endobj\n" +
		"2 0 obj << /A << /S /URI /URI <68747470733A2F2F6865782E6578616D706C652E6E65742F> >> >> endobj\n" +
		"3 0 obj << /A << /S /URI /URI (http://octal\\056example\\056org/) >> >> endobj\n" +
		"4 0 obj << /Length 44 >> stream\nBT (Visit www.text-in-pdf.example.com today) Tj ET\nendstream endobj\n")
	var got []string
	for _, u := range ExtractPDF(pdf, 0) {
		got = append(got, u.Source+" "+u.Normalized)
	}
	want := []string{
		"pdf https://pdf-link.example.com/a(1)",
		"pdf https://hex.example.net/",
		"pdf http://octal.example.org/",
		"text http://www.text-in-pdf.example.com",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ExtractPDF (-want +got):\n%s", diff)
	}
}
