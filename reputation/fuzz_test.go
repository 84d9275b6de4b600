package reputation

import (
	"net/netip"
	"strings"
	"testing"
	"unicode/utf8"
)

// checkURLs asserts the invariants every extracted URL keeps, whatever the
// input.
func checkURLs(t *testing.T, urls []URL, max int) {
	t.Helper()
	if len(urls) > max {
		t.Fatalf("%d URLs, limit %d", len(urls), max)
	}
	seen := map[string]bool{}
	for _, u := range urls {
		if u.Host == "" || u.Domain == "" || u.Normalized == "" {
			t.Fatalf("empty field in %+v", u)
		}
		if seen[u.Normalized] {
			t.Fatalf("duplicate %q", u.Normalized)
		}
		seen[u.Normalized] = true
		if len(u.Raw) > maxRawLen || len(u.Normalized) > maxRawLen || len(u.Text) > maxTextLen {
			t.Fatalf("field over its bound in %+v", u)
		}
		if u.IPLiteral {
			if _, err := netip.ParseAddr(u.Host); err != nil {
				t.Fatalf("IP literal host %q: %v", u.Host, err)
			}
		} else if !validHostname(u.Host) {
			t.Fatalf("invalid host %q from %q", u.Host, u.Raw)
		}
		if !strings.HasSuffix(u.Host, u.Domain) {
			t.Fatalf("domain %q is not a suffix of host %q", u.Domain, u.Host)
		}
		if !utf8.ValidString(u.Text) || !utf8.ValidString(u.Raw) {
			t.Fatalf("text %q or raw %q is not UTF-8", u.Text, u.Raw)
		}
	}
}

func FuzzExtractURLs(f *testing.F) {
	f.Add("see https://example.com/x and www.example.org", `<a href="https://evil.example/">paypal.com</a>`)
	f.Add("hxxps[://]evil[.]net/p http://3232235777/ http://[::1]/ http://%65vil.com", "")
	f.Add("", phishHTML)
	f.Add("http://аррӏе.com https://例え.テスト/ページ https://example.jpをご確認", `<!--[if mso]><v:rect href="//x.example.com/"><![endif]-->`)
	f.Add("http://a@b@c.com:99:99/ http://0x.0x.0x.0x http://1.2.3.4.5 www.x", `<meta http-equiv=refresh content="0;url=http://r.example.com">`)
	f.Fuzz(func(t *testing.T, text, htmlBody string) {
		checkURLs(t, ExtractURLs(text, htmlBody, 50), 50)
	})
}

func FuzzExtractPDF(f *testing.F) {
	f.Add([]byte("/URI (https://a.example.com/\\(x\\)) /URI <68747470733A2F2F622E6578616D706C652E636F6D2F> www.c.example.com"))
	f.Add([]byte("/URI (unterminated \\0"))
	f.Add([]byte("/URI <6"))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkURLs(t, ExtractPDF(data, 20), 20)
	})
}

func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{"", "127.0.0.2", "=127.0.0.[2..11]", "127.0.0.[2;4;8]", "127.*.[0..3;9].[1..255]", "&0x0e", "&8, 127.0.0.2"} {
		f.Add(s, uint32(0x7f000002))
	}
	f.Fuzz(func(t *testing.T, s string, addr uint32) {
		flt, err := ParseFilter(s)
		a := netip.AddrFrom4([4]byte{byte(addr >> 24), byte(addr >> 16), byte(addr >> 8), byte(addr)})
		listed, problem := classify(flt, a)
		if err != nil {
			return
		}
		if listed && problem != "" {
			t.Fatalf("classify(%q, %s) is both listed and a problem", s, a)
		}
		if a.As4()[0] == 127 && a.As4()[1] == 255 && a.As4()[2] == 255 && listed {
			t.Fatalf("filter %q lists the error code %s", s, a)
		}
		// A zone spec built from the filter parses back to the same filter.
		z, err := ParseZone("list.example=" + s + "*2")
		if err != nil {
			if !strings.ContainsAny(s, "*=") {
				t.Fatalf("ParseZone with valid filter %q: %v", s, err)
			}
			return
		}
		f2, _ := ParseFilter(z.Filter)
		if f2.Match(a) != flt.Match(a) {
			t.Fatalf("filter %q changed meaning through ParseZone", s)
		}
	})
}
