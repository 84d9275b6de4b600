package attach

import (
	"archive/zip"
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/klauspost/compress/flate"

	"github.com/mailguard/mailguard/reason"
)

var ooxmlTypes = map[string]bool{
	"application/vnd.openxmlformats-officedocument.wordprocessingml.document":   true,
	"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet":         true,
	"application/vnd.openxmlformats-officedocument.presentationml.presentation": true,
	"application/vnd.ms-excel.sheet.binary.macroEnabled.12":                     true,
	"application/vnd.openxmlformats-officedocument.wordprocessingml.template":   true,
	"application/vnd.openxmlformats-officedocument.spreadsheetml.template":      true,
	"application/vnd.ms-visio.drawing.main+xml":                                 true,
	"application/vnd.visio": true,
}

// isOOXML reports an Office Open XML package: a zip whose first local
// headers name [Content_Types].xml or that mimetype recognised.
func isOOXML(f *File) bool {
	if ooxmlTypes[f.Type] {
		return true
	}
	return f.Type == "application/zip" && bytes.Contains(f.head(sniffBytes), []byte("[Content_Types].xml"))
}

// ooxml inspects an Office Open XML package: macro-enabled content types,
// vbaProject.bin (VBA source decompressed into derived files), Excel 4.0
// macro sheets, and embedded objects (walked as children).
func (w *walker) ooxml(f *File) error {
	ra, size, err := f.ReaderAt()
	if err != nil {
		return errSpill{err}
	}
	zr, err := zip.NewReader(ra, size)
	if err != nil {
		// Not readable as OOXML: let the archive reader judge it.
		return w.archive(f)
	}
	zr.RegisterDecompressor(zip.Deflate, func(r io.Reader) io.ReadCloser { return flate.NewReader(r) })
	f.Features.Container = "ooxml"
	ct := ""
	var vba, macrosheets, embeds, rels []*zip.File
	for _, e := range zr.File {
		n := strings.ToLower(e.Name)
		switch {
		case strings.HasSuffix(n, ".rels"):
			rels = append(rels, e)
		case n == "[content_types].xml":
			if b, err := readZipEntry(e, 4<<20); err == nil {
				ct = string(b)
			}
		case path.Base(n) == "vbaproject.bin":
			vba = append(vba, e)
		case strings.Contains(n, "macrosheets/") && !strings.HasSuffix(n, ".rels"):
			macrosheets = append(macrosheets, e)
		case strings.Contains(n, "/embeddings/") || strings.Contains(n, "/activex/") && strings.HasSuffix(n, ".bin"):
			embeds = append(embeds, e)
		}
	}
	macroCT := strings.Contains(strings.ToLower(ct), "macroenabled") || strings.Contains(ct, "vbaProject")
	if macroCT || len(vba) > 0 {
		switch {
		case strings.Contains(f.Type, "wordprocessingml") || strings.Contains(ct, "word/"):
			f.Type = typeDocm
		case strings.Contains(f.Type, "spreadsheetml") || strings.Contains(ct, "xl/"):
			f.Type = typeXlsm
		case strings.Contains(f.Type, "presentationml") || strings.Contains(ct, "ppt/"):
			f.Type = typePptm
		}
	}
	for _, e := range vba {
		b, err := readZipEntry(e, min(w.lim.MaxFileBytes, maxStream))
		if err != nil {
			f.addFinding(reason.MacroDocument, "VBA project "+sanitizePath(e.Name)+" present but unreadable: "+clip(err.Error(), 80))
			continue
		}
		d, err := openOLE(bytes.NewReader(b))
		if err != nil {
			f.addFinding(reason.MacroDocument, "VBA project "+sanitizePath(e.Name)+" present but not an OLE file")
			continue
		}
		if err := w.vbaProjects(f, d, sanitizePath(e.Name)); err != nil {
			return err
		}
		if !f.has(reason.MacroDocument) {
			f.macroInfo().VBA = true
			f.addFinding(reason.MacroDocument, "VBA project "+sanitizePath(e.Name))
		}
	}
	if macroCT && len(vba) == 0 && len(macrosheets) == 0 {
		f.addFinding(reason.MacroDocument, "macro-enabled content type without a readable VBA project")
	}
	if len(macrosheets) > 0 {
		f.macroInfo().XLM = true
		f.addFinding(reason.MacroDocument, fmt.Sprintf("Excel 4.0 (XLM) macro sheets: %d", len(macrosheets)))
	}
	for _, e := range rels {
		b, err := readZipEntry(e, 4<<20)
		if err != nil {
			continue
		}
		for _, d := range externalRefs(b) {
			f.addFinding(reason.RemoteTemplate, sanitizePath(e.Name)+": "+d)
		}
	}
	return w.ooxmlEmbeds(f, embeds)
}

type ooxmlRel struct {
	Type       string `xml:"Type,attr"`
	Target     string `xml:"Target,attr"`
	TargetMode string `xml:"TargetMode,attr"`
}

// externalRefs reads a relationships part and describes each external
// target Office fetches or runs by itself when the document opens: a
// template (template injection), an OLE object, frame or sub-document,
// any other part fetched from a UNC or file: path (the user's NTLM hash
// goes to whoever serves it), and any external target in a scheme that
// runs something (mhtml:, ms-msdt:, search-ms: …). Plain hyperlinks and
// links to other workbooks are not: they wait for a click or ask first,
// and business documents are full of them.
func externalRefs(b []byte) []string {
	var doc struct {
		Rels []ooxmlRel `xml:"Relationship"`
	}
	if err := xml.Unmarshal(b, &doc); err != nil {
		return nil
	}
	var out []string
	for _, r := range doc.Rels {
		if !strings.EqualFold(r.TargetMode, "External") {
			continue
		}
		kind := r.Type[strings.LastIndexByte(r.Type, '/')+1:]
		target := strings.TrimSpace(r.Target)
		lt := strings.ToLower(target)
		scheme := ""
		if i := strings.IndexByte(lt, ':'); i > 1 {
			scheme = lt[:i]
		}
		unc := strings.HasPrefix(lt, `\\`) || strings.HasPrefix(lt, "//") || scheme == "file"
		exotic := scheme != "" && scheme != "http" && scheme != "https" && scheme != "mailto" &&
			scheme != "ftp" && scheme != "tel" && scheme != "file" && len(scheme) > 1 // "c:" is a drive
		var why string
		switch {
		case exotic:
			why = "the " + scheme + ": scheme"
		case kind == "attachedTemplate" || kind == "oleObject" || kind == "frame" || kind == "subDocument" || kind == "package":
			why = "loaded when the document opens"
		case unc && kind != "hyperlink" && kind != "externalLinkPath":
			// An image or other part fetched from a share at open.
			why = "fetched from a network or file path at open"
		default:
			// Hyperlinks wait for a click; links to other workbooks
			// ask before they update.
			continue
		}
		out = append(out, fmt.Sprintf("external %s %q (%s)", kind, clip(sanitizeText(target), 200), why))
		if len(out) == 8 {
			break
		}
	}
	return out
}

// ooxmlEmbeds walks embedded objects (oleObject*.bin, packaged files,
// ActiveX binaries) as children.
func (w *walker) ooxmlEmbeds(f *File, embeds []*zip.File) error {
	sort.SliceStable(embeds, func(i, j int) bool { return embeds[i].Name < embeds[j].Name })
	for _, e := range embeds {
		if w.stopped() {
			return nil
		}
		if e.CompressedSize64 > 0 && e.UncompressedSize64 > 1<<20 &&
			float64(e.UncompressedSize64)/float64(e.CompressedSize64) > w.lim.MaxRatio {
			w.bomb(f, fmt.Sprintf("%s: embedded %s expands %d→%d bytes", f.Path, sanitizePath(e.Name), e.CompressedSize64, e.UncompressedSize64))
			continue
		}
		rc, err := e.Open()
		if err != nil {
			f.addFinding(reason.UnsupportedContainer, "ooxml: embedded "+sanitizePath(e.Name)+": "+clip(err.Error(), 80))
			continue
		}
		child, err := w.addFile(fileSpec{parent: f, name: e.Name}, rc)
		rc.Close()
		if err != nil || child == nil {
			return err
		}
		if err := w.inspect(child); err != nil {
			return err
		}
	}
	return nil
}

func readZipEntry(e *zip.File, max int64) ([]byte, error) {
	rc, err := e.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("larger than %d bytes", max)
	}
	return b, nil
}
