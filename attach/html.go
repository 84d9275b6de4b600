package attach

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"

	"golang.org/x/net/html"

	"github.com/mailguard/mailguard/reason"
)

// isHTMLType reports HTML-like content: HTML, XHTML, SVG (which runs
// script) and HTA by name.
func isHTMLType(t, name string) bool {
	switch t {
	case "text/html", "application/xhtml+xml", "image/svg+xml", "application/hta":
		return true
	}
	switch extOf(name) {
	case "htm", "html", "xhtml", "shtml", "svg", "hta", "mht", "mhtml":
		return t == "text/plain" || t == "text/xml" || t == "application/xml" || t == "application/octet-stream"
	}
	return false
}

var (
	reBlob        = regexp.MustCompile(`(?i)new\s+(?:window\s*\.\s*|self\s*\.\s*)?blob\s*\(|\bblob\s*\(\s*\[`)
	reObjectURL   = regexp.MustCompile(`(?i)createobjecturl|\[\s*["']createObjectURL["']\s*\]`)
	reMsSave      = regexp.MustCompile(`(?i)mssaveblob|mssaveoropenblob`)
	reDownload    = regexp.MustCompile(`(?i)(?:\.download\s*=|\bdownload\s*=\s*["']?[^\s>]|setattribute\s*\(\s*["']download["']|<a\b[^>]*\sdownload[\s>=])`)
	reAtob        = regexp.MustCompile(`(?i)\batob\s*\(|base64tobytes|base64decode|fromcharcode`)
	reClickNav    = regexp.MustCompile(`(?i)\.click\s*\(\s*\)|dispatchevent\s*\(|location(?:\.href)?\s*=`)
	reDataURI     = regexp.MustCompile(`(?i)data:([a-z0-9.+/-]*)(?:;[a-z0-9=._-]+)*;base64,([A-Za-z0-9+/=\s\\]{16,})`)
	execDataTypes = map[string]bool{
		"application/octet-stream": true, "application/x-msdownload": true, "application/x-msdos-program": true,
		"application/x-dosexec": true, "application/zip": true, "application/x-zip-compressed": true,
		"application/x-iso9660-image": true, "application/x-rar-compressed": true, "application/x-7z-compressed": true,
		"application/vnd.microsoft.portable-executable": true, "application/hta": true, "application/javascript": true,
		"application/x-javascript": true, "text/javascript": true, "application/vnd.ms-excel": true,
		"application/msword": true, "application/x-ms-shortcut": true, "application/vnd.rar": true,
		"application/x-msi": true, "application/x-ole-storage": true,
	}
)

// smugglingIndicators reports the ways an HTML document assembles a file
// in the browser. It returns nil unless a combination that delivers a
// file is present (a Blob or an atob'ed payload plus a way to save or
// open it, or a data: URI that carries an executable or archive).
func smugglingIndicators(doc []byte) []string {
	var ind []string
	lower := asciiLower(doc)
	blob := matchNear(reBlob, doc, lower, "blob")
	objURL := matchNear(reObjectURL, doc, lower, "createobjecturl")
	msSave := matchNear(reMsSave, doc, lower, "mssave")
	dl := matchNear(reDownload, doc, lower, "download")
	atob := matchNear(reAtob, doc, lower, "atob", "base64tobytes", "base64decode", "fromcharcode")
	nav := matchNear(reClickNav, doc, lower, ".click", "dispatchevent", "location")
	big := 0
	for _, m := range b64Runs(doc, 2048, 64) {
		big = max(big, m[1]-m[0])
	}
	deliver := objURL || msSave || dl
	if blob && deliver {
		ind = append(ind, "Blob assembled and saved ("+joinTrue(map[string]bool{"createObjectURL": objURL, "msSaveBlob": msSave, "download": dl})+")")
	}
	if atob && big >= 4096 && (deliver || blob) {
		ind = append(ind, fmt.Sprintf("base64 payload of %d characters decoded in script", big))
	}
	if big >= 64<<10 && dl && !blob {
		ind = append(ind, fmt.Sprintf("base64 blob of %d characters with a download", big))
	}
	for _, m := range findDataURIs(doc) {
		typ := strings.ToLower(string(m[1]))
		payload := decodeB64Prefix(m[2], 64)
		kind := payloadKind(payload)
		switch {
		case kind != "":
			ind = append(ind, "data: URI carrying "+kind)
		case execDataTypes[typ] && (dl || nav):
			ind = append(ind, "data: URI of type "+typ+" with a download or navigation")
		}
	}
	return dedupe(ind)
}

// findDataURIs returns up to 32 base64 data: URIs of doc (submatches of
// reDataURI), without running the regexp over documents that have none.
func findDataURIs(doc []byte) [][][]byte {
	if !containsFold(doc, "data:") {
		return nil
	}
	return reDataURI.FindAllSubmatch(doc, 32)
}

// containsFold reports whether doc contains lit (lower-case ASCII) in any
// case.
func containsFold(doc []byte, lit string) bool {
	for off := 0; off+len(lit) <= len(doc); {
		i := bytes.IndexAny(doc[off:], lit[:1]+strings.ToUpper(lit[:1]))
		if i < 0 {
			return false
		}
		off += i
		if off+len(lit) <= len(doc) && bytes.EqualFold(doc[off:off+len(lit)], []byte(lit)) {
			return true
		}
		off++
	}
	return false
}

// asciiLower is doc with ASCII letters in lower case. Unlike
// bytes.ToLower it keeps every offset (invalid UTF-8 and letters whose
// lower case has another length stay as they are), so an index into it is
// an index into doc.
func asciiLower(doc []byte) []byte {
	out := make([]byte, len(doc))
	for i, c := range doc {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return out
}

// matchNear reports whether re matches doc, running it only around the
// places where one of lits (which every match of re contains, in lower
// case) occurs in lower (doc in lower case): case-insensitive regexps have
// no literal prefix to skip ahead with, and scanning all of a long HTML
// newsletter with each of them cost milliseconds per message.
func matchNear(re *regexp.Regexp, doc, lower []byte, lits ...string) bool {
	const before, after = 4096, 512
	for _, lit := range lits {
		for off := 0; ; {
			i := bytes.Index(lower[off:], []byte(lit))
			if i < 0 {
				break
			}
			i += off
			if re.Match(doc[max(0, i-before):min(len(doc), i+len(lit)+after)]) {
				return true
			}
			off = i + len(lit)
		}
	}
	return false
}

func joinTrue(m map[string]bool) string {
	var out []string
	for _, k := range []string{"createObjectURL", "msSaveBlob", "download"} {
		if m[k] {
			out = append(out, k)
		}
	}
	return strings.Join(out, "+")
}

func dedupe(s []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// payloadKind names executable or container magic at the start of a
// decoded payload.
func payloadKind(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte("MZ")):
		return "a Windows executable"
	case bytes.HasPrefix(b, []byte("\x7fELF")):
		return "an ELF executable"
	case bytes.HasPrefix(b, []byte("PK\x03\x04")):
		return "a zip archive"
	case bytes.HasPrefix(b, []byte("7z\xbc\xaf\x27\x1c")):
		return "a 7z archive"
	case bytes.HasPrefix(b, []byte("Rar!")):
		return "a RAR archive"
	case bytes.HasPrefix(b, []byte{0xd0, 0xcf, 0x11, 0xe0}):
		return "an OLE document"
	case bytes.HasPrefix(b, []byte("L\x00\x00\x00\x01\x14\x02\x00")):
		return "a shell link"
	case bytes.HasPrefix(b, []byte{0xe4, 0x52, 0x5c, 0x7b}):
		return "a OneNote file"
	}
	return ""
}

// decodeB64Prefix decodes the first n bytes of a (possibly escaped)
// base64 string.
func decodeB64Prefix(s []byte, n int) []byte {
	clean := make([]byte, 0, n*2)
	for _, c := range s {
		if c == '\\' || c == ' ' || c == '\r' || c == '\n' || c == '\t' || c == '=' {
			continue
		}
		clean = append(clean, c)
		if len(clean) >= (n+2)/3*4 {
			break
		}
	}
	clean = clean[:len(clean)/4*4]
	out, _ := base64.StdEncoding.DecodeString(string(clean))
	return out
}

// htmlFile checks an HTML attachment for smuggling and extracts embedded
// payloads (data: URIs, long base64 literals that decode to executables or
// containers) as derived children, so that YARA and the sandbox see them.
func (w *walker) htmlFile(f *File) {
	doc, ok := f.bytesUpTo(32 << 20)
	if !ok {
		return
	}
	if ind := smugglingIndicators(doc); len(ind) > 0 {
		f.Features.HTML = ind
		f.addFinding(reason.HTMLSmuggling, strings.Join(ind, ", "))
	}
	if f.Depth+1 > w.lim.MaxDepth {
		return
	}
	n := 0
	extract := func(b64 []byte) {
		if n >= 8 || w.stopped() {
			return
		}
		payload := decodeB64Lenient(b64, w.lim.MaxFileBytes)
		if payloadKind(payload) == "" {
			return
		}
		n++
		child, err := w.addBytes(fileSpec{parent: f, display: fmt.Sprintf("embedded-%d.bin", n), derived: true}, payload)
		if err == nil && child != nil {
			child.Derived = false
			_ = w.inspect(child)
		}
	}
	for _, m := range findDataURIs(doc) {
		extract(m[2])
	}
	for _, m := range b64Runs(doc, 2048, 32) {
		extract(doc[m[0]:m[1]])
	}
}

func decodeB64Lenient(s []byte, max int64) []byte {
	r := newBase64Reader(bytes.NewReader(s))
	var out bytes.Buffer
	_, _ = out.ReadFrom(limitReader(r, max))
	return out.Bytes()
}

// htmlToText renders HTML as plain text for password scanning and
// Result.Text: script and style content is dropped, block elements and
// <br> become line breaks.
func htmlToText(s string) string {
	z := html.NewTokenizer(strings.NewReader(s))
	var b strings.Builder
	skip := 0
	for {
		switch z.Next() {
		case html.ErrorToken:
			return strings.TrimSpace(b.String())
		case html.TextToken:
			if skip == 0 {
				b.Write(z.Text())
			}
		case html.StartTagToken:
			name, _ := z.TagName()
			switch string(name) {
			case "script", "style", "head", "title":
				skip++
			case "br", "p", "div", "tr", "li", "h1", "h2", "h3", "h4", "table", "td", "pre", "blockquote":
				b.WriteByte('\n')
			}
		case html.SelfClosingTagToken:
			if name, _ := z.TagName(); string(name) == "br" {
				b.WriteByte('\n')
			}
		case html.EndTagToken:
			name, _ := z.TagName()
			switch string(name) {
			case "script", "style", "head", "title":
				if skip > 0 {
					skip--
				}
			case "p", "div", "tr", "li", "h1", "h2", "h3", "h4", "table", "pre", "blockquote":
				b.WriteByte('\n')
			}
		}
	}
}

// b64Runs returns up to max runs of at least minLen base64 characters
// (RE2 cannot express such long repeats).
func b64Runs(doc []byte, minLen, max int) [][2]int {
	var out [][2]int
	start := -1
	for i := 0; i <= len(doc) && len(out) < max; i++ {
		in := i < len(doc) && isB64Char(doc[i])
		switch {
		case in && start < 0:
			start = i
		case !in && start >= 0:
			if i-start >= minLen {
				out = append(out, [2]int{start, i})
			}
			start = -1
		}
	}
	return out
}

func isB64Char(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/'
}
