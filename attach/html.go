package attach

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

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
//
// Script hidden behind a layer of escaping (eval(unescape("%76%61…")),
// "\x76\x61…" strings, eval(atob("dmFy…"))) is decoded and looked at
// again, with the layers above it, up to three layers deep.
func smugglingIndicators(doc []byte) []string {
	if ind := smugglingLayer(doc); len(ind) > 0 {
		return ind
	}
	budget := max(8<<20, 2*len(doc))
	layer := doc
	for depth := 1; depth <= 3; depth++ {
		decoded := unescapeLayer(layer, &budget)
		if len(decoded) == 0 {
			return nil
		}
		// The layers together: the outer one may atob what the inner
		// one wraps in a Blob.
		joined := append(append(append([]byte(nil), doc...), '\n'), decoded...)
		if ind := smugglingLayer(joined); len(ind) > 0 {
			for i := range ind {
				ind[i] += fmt.Sprintf(" (script under %d layer(s) of escaping)", depth)
			}
			return ind
		}
		layer = decoded
	}
	return nil
}

// escapeRuns finds up to maxRuns runs of at least minRun escapes: %XX or %uXXXX when esc
// is '%', \xXX or \uXXXX when esc is '\\' (a hand scanner: the
// equivalent regexp took 10 ms on a 100 KB newsletter).
func escapeRuns(doc []byte, esc byte, minRun, maxRuns int) [][2]int {
	var out [][2]int
	for i := 0; i < len(doc) && len(out) < maxRuns; {
		j := bytes.IndexByte(doc[i:], esc)
		if j < 0 {
			break
		}
		start, n := i+j, 0
		k := start
		for k < len(doc) && doc[k] == esc {
			w := escapeWidth(doc[k:], esc)
			if w == 0 {
				break
			}
			k += w
			n++
		}
		if n >= minRun {
			out = append(out, [2]int{start, k})
		}
		i = max(k, start+1)
	}
	return out
}

// escapeWidth is the length of the escape at the start of b, or 0.
func escapeWidth(b []byte, esc byte) int {
	hexes := func(h []byte) bool {
		for _, c := range h {
			if _, ok := unhex(c); !ok {
				return false
			}
		}
		return true
	}
	switch {
	case len(b) >= 6 && b[1] == 'u' && hexes(b[2:6]):
		return 6
	case esc == '%' && len(b) >= 3 && hexes(b[1:3]):
		return 3
	case esc == '\\' && len(b) >= 4 && b[1] == 'x' && hexes(b[2:4]):
		return 4
	}
	return 0
}

// unescapeLayer decodes the escaped strings of one layer of script: runs
// of %XX or %uXXXX (unescape, decodeURIComponent), of \xXX or \uXXXX
// (string literals), and base64 runs of 256 characters or more whose
// content is text (eval(atob(…))). budget bounds the bytes decoded over
// all layers.
func unescapeLayer(doc []byte, budget *int) []byte {
	var out []byte
	add := func(b []byte) bool {
		if len(b) > *budget {
			return false
		}
		*budget -= len(b)
		out = append(append(out, b...), '\n')
		return true
	}
	for _, esc := range []byte{'%', '\\'} {
		for _, r := range escapeRuns(doc, esc, 48, 256) {
			if !add(unescapeRun(doc[r[0]:r[1]], esc)) {
				return out
			}
		}
	}
	for _, r := range b64Runs(doc, 256, 64) {
		run := doc[r[0]:r[1]]
		if !isScriptText(decodeB64Prefix(run, 192)) { // a payload, not script: not decoded whole
			continue
		}
		if b := decodeB64Prefix(run, min(len(run), *budget)); isScriptText(b) {
			if !add(b) {
				return out
			}
		}
	}
	return out
}

// unescapeRun decodes a run of %XX/%uXXXX (esc '%') or \xXX/\uXXXX
// (esc '\\') escapes; code points above 0xFF are written as UTF-8.
func unescapeRun(m []byte, esc byte) []byte {
	out := make([]byte, 0, len(m)/3)
	for i := 0; i < len(m); {
		if m[i] != esc || i+1 >= len(m) {
			i++
			continue
		}
		n := 2
		if m[i+1] == 'u' {
			n = 4
			i++
		} else if m[i+1] == 'x' {
			i++
		}
		if i+1+n > len(m) {
			break
		}
		v := 0
		for _, c := range m[i+1 : i+1+n] {
			h, _ := unhex(c)
			v = v<<4 | int(h)
		}
		if v < 0x80 {
			out = append(out, byte(v))
		} else {
			out = utf8.AppendRune(out, rune(v))
		}
		i += 1 + n
	}
	return out
}

// isScriptText reports decoded bytes that read as text: at least 64 of
// them and 95 % printable ASCII or white space.
func isScriptText(b []byte) bool {
	if len(b) < 64 {
		return false
	}
	ok := 0
	for _, c := range b {
		if c >= 0x20 && c < 0x7f || c == '\n' || c == '\r' || c == '\t' {
			ok++
		}
	}
	return ok*100 >= len(b)*95
}

// smugglingLayer is smugglingIndicators on one layer of the document.
func smugglingLayer(doc []byte) []string {
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
	// msSaveBlob is Internet Explorer's "save this as a file": emailed
	// HTML has no other use for it.
	if msSave && !blob && big >= 4096 {
		ind = append(ind, fmt.Sprintf("base64 blob of %d characters saved with msSaveBlob", big))
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

var (
	rePasswordInput = regexp.MustCompile(`(?i)<input\b[^>]*\btype\s*=\s*["']?password\b`)
	reFormAction    = regexp.MustCompile(`(?i)<form\b[^>]*\baction\s*=\s*["']?\s*(https?:|//)([^"'\s>]*)`)
	reScriptSend    = regexp.MustCompile(`(?i)\bfetch\s*\(|xmlhttprequest|\$\.(?:ajax|post)\s*\(|navigator\.sendbeacon|\.submit\s*\(\s*\)|api\.telegram\.org`)
)

// credentialForm reports an HTML document that asks for a password and
// sends it away: a password field with a form posting to a web address,
// or with script that sends data (fetch, XMLHttpRequest, jQuery, a
// Telegram bot). Password fields in escaped script count once decoded.
func credentialForm(doc []byte) string {
	if !containsFold(doc, "password") {
		budget := 4 << 20
		if dec := unescapeLayer(doc, &budget); len(dec) > 0 && containsFold(dec, "password") {
			doc = append(append(append([]byte(nil), doc...), '\n'), dec...)
		} else {
			return ""
		}
	}
	if !rePasswordInput.Match(doc) {
		return ""
	}
	if m := reFormAction.FindSubmatch(doc); m != nil {
		return "password field in a form posting to " + clip(sanitizeText(string(m[1])+string(m[2])), 120)
	}
	if m := reScriptSend.Find(doc); m != nil {
		return "password field with script that sends it (" + clip(sanitizeText(string(m)), 40) + ")"
	}
	return ""
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
	if d := credentialForm(doc); d != "" {
		f.addFinding(reason.CredentialForm, d)
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
