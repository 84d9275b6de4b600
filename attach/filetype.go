package attach

import (
	"bytes"
	"strings"

	"github.com/gabriel-vasile/mimetype"
)

// sniffBytes is how much of a file the type detection reads. mimetype needs
// 64 KiB to tell .doc from a generic OLE file (libraries.md §8), and the
// ISO/UDF descriptors sit at 0x8001–0x9006.
const sniffBytes = 64 << 10

func init() {
	// mimetype keeps its read limit in a package variable; the detection
	// below hands it at most sniffBytes, so this only lifts its default
	// cap of 4 KiB to what we pass.
	mimetype.SetLimit(sniffBytes)
}

// Types reported beyond what mimetype knows.
const (
	typeISO     = "application/x-iso9660-image"
	typeUDF     = "application/x-udf-image"
	typeVHD     = "application/x-vhd"
	typeVHDX    = "application/x-vhdx"
	typeTNEF    = "application/vnd.ms-tnef"
	typeOLE     = "application/x-ole-storage"
	typeMSG     = "application/vnd.ms-outlook"
	typeEML     = "message/rfc822"
	typePE      = "application/vnd.microsoft.portable-executable"
	typeLNK     = "application/x-ms-shortcut"
	typeOneNote = "application/onenote"
	typeDocm    = "application/vnd.ms-word.document.macroEnabled.12"
	typeXlsm    = "application/vnd.ms-excel.sheet.macroEnabled.12"
	typePptm    = "application/vnd.ms-powerpoint.presentation.macroEnabled.12"
)

// detectType returns the true type of a file from its content, refined by
// the checks mimetype lacks; name is used only for script types that
// sniff as text.
func detectType(head, tail []byte, name string) string {
	if t := imageType(head, tail); t != "" {
		return t
	}
	if len(head) >= 4 && bytes.Equal(head[:4], []byte{0x78, 0x9f, 0x3e, 0x22}) {
		return typeTNEF
	}
	if isSIS(head) {
		return typeSIS
	}
	if i := bytes.Index(head[:min(len(head), 4096)], binhexMarker); i >= 0 {
		return typeBinHex
	}
	t := mimetype.Detect(head).String()
	if i := strings.IndexByte(t, ';'); i >= 0 {
		t = t[:i]
	}
	ext := extOf(name)
	switch {
	case t == "text/plain" || t == "text/html" || t == "application/octet-stream" || t == "text/xml" || t == "application/xml":
		if st, ok := scriptExts[ext]; ok {
			return st
		}
		if t == "text/plain" && looksLikeEML(head) {
			return typeEML
		}
	case t == typeOLE:
		if ext == "msg" || bytes.Contains(head, utf16le("__substg1.0_")) {
			return typeMSG
		}
	}
	return t
}

// imageType recognises disk images: ISO9660 and UDF by their volume
// descriptors, VHD by its "conectix" footer (or header copy), VHDX by its
// file type identifier.
func imageType(head, tail []byte) string {
	if len(head) >= 8 && string(head[:8]) == "vhdxfile" {
		return typeVHDX
	}
	if len(tail) >= 512 && string(tail[len(tail)-512:len(tail)-504]) == "conectix" {
		return typeVHD
	}
	if len(head) >= 8 && string(head[:8]) == "conectix" {
		return typeVHD
	}
	iso, udf := false, false
	for sector := 16; sector < 32; sector++ {
		off := sector*2048 + 1
		if off+5 > len(head) {
			break
		}
		switch string(head[off : off+5]) {
		case "CD001":
			iso = true
		case "BEA01", "NSR02", "NSR03":
			udf = true
		}
	}
	switch {
	case iso:
		// ISO9660 (possibly an ISO/UDF bridge): readable as ISO.
		return typeISO
	case udf:
		return typeUDF
	}
	return ""
}

// looksLikeEML reports text that starts with RFC 5322 header fields.
func looksLikeEML(head []byte) bool {
	h := head
	if len(h) > 4096 {
		h = h[:4096]
	}
	n := 0
	for _, line := range bytes.Split(h, []byte("\n")) {
		l := strings.ToLower(string(bytes.TrimRight(line, "\r")))
		if l == "" {
			break
		}
		for _, f := range []string{"from:", "to:", "subject:", "date:", "message-id:", "received:", "mime-version:", "content-type:", "return-path:"} {
			if strings.HasPrefix(l, f) {
				n++
			}
		}
	}
	return n >= 3
}

func utf16le(s string) []byte {
	out := make([]byte, 0, 2*len(s))
	for i := 0; i < len(s); i++ {
		out = append(out, s[i], 0)
	}
	return out
}

// launcherExts are Windows file types that carry no code of their own but
// run or fetch some when opened, each used in campaigns since 2022: an
// Internet shortcut to a file:// or WebDAV payload (CVE-2023-36025,
// CVE-2024-21412), search-ms and library-ms views of an attacker's share,
// settingcontent-ms, an RDP connection that maps the victim's drives to
// the attacker's server (2024), ClickOnce and App Installer manifests,
// MMC consoles (GrimResource), Excel web queries and SYLK with DDE, and
// .reg imports. Their content is text that sniffing cannot tell from
// any other, so the name decides.
var launcherExts = map[string]bool{
	"url": true, "website": true, "library-ms": true, "search-ms": true, "searchconnector-ms": true,
	"settingcontent-ms": true, "rdp": true, "application": true, "appref-ms": true, "appinstaller": true,
	"msc": true, "iqy": true, "slk": true, "reg": true, "inf": true,
	"msix": true, "msixbundle": true, "appx": true, "appxbundle": true,
}

// executableKind returns "pe", "elf", "macho", "msi", "jar", "chm",
// "script:<ext>", "launcher:<ext>" or "".
func executableKind(typ, name string) string {
	switch typ {
	case typePE, "application/x-msdownload", "application/x-dosexec":
		return "pe"
	case "application/x-executable", "application/x-sharedlib", "application/x-elf",
		"application/x-object", "application/x-pie-executable":
		return "elf"
	case "application/x-mach-binary", "application/x-mach-o-executable":
		return "macho"
	case "application/x-ms-installer", "application/x-msi":
		return "msi"
	case "application/java-archive", "application/x-java-applet":
		return "jar"
	case "application/vnd.ms-htmlhelp", "application/x-chm":
		return "chm"
	}
	ext := extOf(name)
	if launcherExts[ext] {
		return "launcher:" + ext
	}
	if _, ok := scriptExts[ext]; ok {
		switch ext {
		case "js", "jse", "vbs", "vbe", "wsf", "wsh", "wsc", "sct", "hta", "ps1", "psm1", "psd1", "bat", "cmd":
			return "script:" + ext
		}
	}
	if typ == "text/html" && ext == "hta" {
		return "script:hta"
	}
	return ""
}
