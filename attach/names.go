package attach

import (
	"fmt"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/jhillyerd/enmime/v2/mediatype"

	"github.com/mailguard/mailguard/reason"
)

// partFilename returns the decoded file name of a MIME entity: the
// Content-Disposition filename, else the Content-Type name, each from its
// RFC 2231 form (continuations and any charset) when present, else from
// the plain form with RFC 2047 words and raw 8-bit bytes decoded.
func partFilename(e *entity) string {
	disp := e.get("content-disposition")
	if n := param2231(disp, "filename"); n != "" {
		return n
	}
	if !isASCII(disp) {
		// Raw 8-bit names: the media type parser would replace the bytes.
		if v := rawParam(disp, "filename"); v != "" {
			return decodeWords(v)
		}
	}
	if disp != "" {
		if _, params, _, err := mediatype.Parse(disp); err == nil && params["filename"] != "" {
			return decodeWords(params["filename"])
		}
		if v := rawParam(disp, "filename"); v != "" {
			return decodeWords(v)
		}
	}
	ct := e.get("content-type")
	if n := param2231(ct, "name"); n != "" {
		return n
	}
	if !isASCII(ct) {
		if v := rawParam(ct, "name"); v != "" {
			return decodeWords(v)
		}
	}
	if v := e.params["name"]; v != "" {
		return decodeWords(v)
	}
	if v := rawParam(ct, "name"); v != "" {
		return decodeWords(v)
	}
	return ""
}

// disposition returns the lower-case Content-Disposition type.
func disposition(e *entity) string {
	d := e.get("content-disposition")
	if i := strings.IndexByte(d, ';'); i >= 0 {
		d = d[:i]
	}
	return strings.ToLower(strings.TrimSpace(d))
}

// splitParams splits a header value into (lower-case name, raw value)
// pairs, honouring quoted strings. The first element (the media type) is
// skipped.
func splitParams(v string) [][2]string {
	var out [][2]string
	var parts []string
	inq, esc := false, false
	startAt := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case esc:
			esc = false
		case c == '\\' && inq:
			esc = true
		case c == '"':
			inq = !inq
		case c == ';' && !inq:
			parts = append(parts, v[startAt:i])
			startAt = i + 1
		}
	}
	parts = append(parts, v[startAt:])
	for _, p := range parts[1:] {
		eq := strings.IndexByte(p, '=')
		if eq <= 0 {
			continue
		}
		name := strings.ToLower(strings.TrimSpace(p[:eq]))
		val := strings.TrimSpace(p[eq+1:])
		if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
			val = unquote(val[1 : len(val)-1])
		} else if len(val) >= 1 && val[0] == '"' {
			val = unquote(val[1:])
		}
		out = append(out, [2]string{name, val})
	}
	return out
}

func unquote(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	esc := false
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && !esc {
			esc = true
			continue
		}
		esc = false
		b.WriteByte(s[i])
	}
	return b.String()
}

// rawParam returns the raw value of a plain parameter, for values that the
// strict media type parser rejected (unquoted 8-bit bytes, specials).
func rawParam(v, name string) string {
	for _, p := range splitParams(v) {
		if p[0] == name {
			return p[1]
		}
	}
	return ""
}

// param2231 decodes an RFC 2231 parameter: name*=charset'lang'pct-encoded,
// or continuations name*0, name*1*, … in any order, with any charset the
// x/text indexes know (ISO-2022-JP, Shift_JIS, EUC-JP, UTF-8 …).
func param2231(v, name string) string {
	if v == "" || !strings.Contains(v, "*") {
		return ""
	}
	type seg struct {
		n   int
		enc bool
		val string
	}
	var segs []seg
	for _, p := range splitParams(v) {
		k := p[0]
		if !strings.HasPrefix(k, name+"*") {
			continue
		}
		rest := k[len(name)+1:]
		switch {
		case rest == "":
			segs = append(segs, seg{0, true, p[1]})
		default:
			enc := strings.HasSuffix(rest, "*")
			num, err := strconv.Atoi(strings.TrimSuffix(rest, "*"))
			if err != nil || num < 0 || num > 999 {
				continue
			}
			segs = append(segs, seg{num, enc, p[1]})
		}
	}
	if len(segs) == 0 {
		return ""
	}
	sort.SliceStable(segs, func(i, j int) bool { return segs[i].n < segs[j].n })
	charset := ""
	var raw []byte
	for i, s := range segs {
		val := s.val
		if s.enc {
			if i == 0 {
				// charset'language'value
				if a := strings.IndexByte(val, '\''); a >= 0 {
					if b := strings.IndexByte(val[a+1:], '\''); b >= 0 {
						charset = val[:a]
						val = val[a+1+b+1:]
					}
				}
			}
			raw = append(raw, pctDecode(val)...)
		} else {
			raw = append(raw, val...)
		}
	}
	if charset != "" {
		if s, ok := decodeCharset(charset, raw); ok {
			return s
		}
	}
	return decodeRaw(string(raw))
}

func pctDecode(s string) []byte {
	if u, err := url.PathUnescape(s); err == nil {
		return []byte(u)
	}
	// Lenient: decode valid escapes, keep the rest.
	var out []byte
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				out = append(out, byte(n))
				i += 2
				continue
			}
		}
		out = append(out, s[i])
	}
	return out
}

// isFormatControl reports runes that change how a name is displayed
// without being visible: bidi embeddings, overrides and isolates, marks,
// zero-width characters, and every other Unicode format (Cf) character.
func isFormatControl(r rune) bool {
	switch {
	case r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069,
		r == 0x200E, r == 0x200F, r == 0x061C:
		return true
	}
	return unicode.Is(unicode.Cf, r)
}

// sanitizeComponent makes one path component safe for display: control
// and format characters become \uXXXX escapes, separators are kept
// out, and the empty name gets a placeholder.
func sanitizeComponent(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '/' || r == '\\':
			b.WriteByte('_')
		case unicode.IsControl(r) || isFormatControl(r) || r == unicode.ReplacementChar:
			fmt.Fprintf(&b, "\\u%04X", r)
		default:
			b.WriteRune(r)
		}
	}
	out := b.String()
	if len(out) > 255 {
		out = out[:255] + "…"
	}
	return out
}

// sanitizeText escapes control and format characters in text meant for
// a finding detail, keeping separators.
func sanitizeText(s string) string {
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) || isFormatControl(r) || r == unicode.ReplacementChar {
			fmt.Fprintf(&b, "\\u%04X", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// sanitizePath turns a stored entry name into display path components
// joined by "/": back slashes are separators, empty and "." components
// are dropped, ".." is kept (it is only text here).
func sanitizePath(name string) string {
	name = strings.ReplaceAll(name, "\\", "/")
	var parts []string
	for _, c := range strings.Split(name, "/") {
		if c == "" || c == "." {
			continue
		}
		parts = append(parts, sanitizeComponent(c))
	}
	if len(parts) == 0 {
		return "_"
	}
	return strings.Join(parts, "/")
}

// execExts are extensions Windows runs or that carry code.
var execExts = map[string]bool{
	"exe": true, "scr": true, "com": true, "pif": true, "cpl": true, "msi": true, "msp": true,
	"bat": true, "cmd": true, "js": true, "jse": true, "vbs": true, "vbe": true, "wsf": true,
	"wsh": true, "wsc": true, "hta": true, "ps1": true, "psm1": true, "psd1": true, "lnk": true,
	"jar": true, "reg": true, "dll": true, "sys": true, "msc": true, "appref-ms": true,
	"iso": true, "img": true, "vhd": true, "vhdx": true, "chm": true, "url": true, "inf": true,
	"sct": true, "application": true, "gadget": true, "xll": true, "elf": true, "sh": true,
}

// scriptExts are script languages that sniff as text (brief: js, jse, vbs,
// vbe, wsf, wsh, hta, ps1, bat, cmd …); they count as executables.
var scriptExts = map[string]string{
	"js": "application/javascript", "jse": "application/x-jscript-encoded",
	"vbs": "text/vbscript", "vbe": "text/vbscript-encoded", "wsf": "text/x-wsf",
	"wsh": "text/x-wsh", "wsc": "text/x-wsc", "sct": "text/x-scriptlet",
	"hta": "application/hta", "ps1": "text/x-powershell", "psm1": "text/x-powershell",
	"psd1": "text/x-powershell", "bat": "application/x-bat", "cmd": "application/x-bat",
	"reg": "text/x-ms-regedit", "url": "text/x-url-shortcut", "inf": "text/x-inf",
	"sh": "text/x-shellscript",
}

// decoyExts are extensions of documents a user expects to open safely.
var decoyExts = map[string]bool{
	"pdf": true, "doc": true, "docx": true, "xls": true, "xlsx": true, "ppt": true, "pptx": true,
	"txt": true, "rtf": true, "jpg": true, "jpeg": true, "png": true, "gif": true, "bmp": true,
	"htm": true, "html": true, "csv": true, "odt": true, "ods": true, "zip": true, "rar": true,
	"7z": true, "mp3": true, "mp4": true, "wav": true, "avi": true, "mov": true, "xml": true,
	"eml": true, "msg": true, "tif": true, "tiff": true, "svg": true, "docm": true, "xlsm": true,
	"one": true, "ics": true,
}

// extOf returns the lower-case extension of the last path element, with
// surrounding white space and trailing dots removed ("x.exe . " → "exe").
func extOf(name string) string {
	base := path.Base(strings.ReplaceAll(name, "\\", "/"))
	base = strings.TrimRight(base, " .\t")
	i := strings.LastIndexByte(base, '.')
	if i < 0 {
		return ""
	}
	return strings.ToLower(strings.TrimSpace(base[i+1:]))
}

// nameFindings checks a display name for bidi tricks, double extensions
// and path traversal.
func nameFindings(name, filePath string) []reason.Finding {
	var out []reason.Finding
	var ctrl []string
	for _, r := range name {
		if isFormatControl(r) {
			ctrl = append(ctrl, fmt.Sprintf("U+%04X", r))
			if len(ctrl) >= 8 {
				break
			}
		}
	}
	if len(ctrl) > 0 {
		out = append(out, reason.Finding{Tag: reason.RTLOFilename, Path: filePath,
			Detail: "format control characters " + strings.Join(ctrl, ",") + " in name " + sanitizeComponent(name)})
	}
	if d := doubleExtension(name); d != "" {
		out = append(out, reason.Finding{Tag: reason.DoubleExtension, Path: filePath, Detail: d})
	}
	if t := traversal(name); t != "" {
		out = append(out, reason.Finding{Tag: reason.PathTraversal, Path: filePath, Detail: t})
	}
	return out
}

// doubleExtension reports names like "invoice.pdf.exe" or
// "report.docx      .scr": an executable extension hiding behind a
// document extension, or behind a run of padding.
func doubleExtension(name string) string {
	base := path.Base(strings.ReplaceAll(name, "\\", "/"))
	// Remove invisible characters so that "pdf\u200b.exe" is seen too.
	base = strings.Map(func(r rune) rune {
		if isFormatControl(r) {
			return -1
		}
		return r
	}, base)
	last := extOf(base)
	if !execExts[last] {
		return ""
	}
	trimmed := strings.TrimRight(base, " .\t")
	stem := trimmed[:strings.LastIndexByte(trimmed, '.')]
	padded := len(stem)-len(strings.TrimRight(stem, " \t_")) >= 3
	prev := extOf(stem)
	if decoyExts[prev] || padded && prev != "" {
		return fmt.Sprintf("executable extension .%s after .%s in %s", last, prev, sanitizeComponent(name))
	}
	if padded {
		return fmt.Sprintf("executable extension .%s after padding in %s", last, sanitizeComponent(name))
	}
	return ""
}

// traversal reports entry names that would escape an extraction
// directory: ".." components, absolute paths, drive letters, UNC paths.
func traversal(name string) string {
	n := strings.ReplaceAll(name, "\\", "/")
	switch {
	case strings.HasPrefix(n, "//"):
		return "UNC path " + sanitizeComponent(name)
	case strings.HasPrefix(n, "/"):
		return "absolute path " + sanitizeComponent(name)
	case len(n) >= 2 && n[1] == ':' && (n[0]|0x20 >= 'a' && n[0]|0x20 <= 'z'):
		return "drive letter in " + sanitizeComponent(name)
	}
	for _, c := range strings.Split(n, "/") {
		if strings.TrimSpace(c) == ".." {
			return "parent directory component in " + sanitizeComponent(name)
		}
	}
	return ""
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
