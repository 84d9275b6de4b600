package attach

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/richardlehane/mscfb"

	"github.com/mailguard/mailguard/reason"
)

var oleMagic = []byte{0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1}

func isOLE(head []byte) bool { return bytes.HasPrefix(head, oleMagic) }

// maxStream bounds one OLE stream read into memory.
const maxStream = 64 << 20

// oleDoc is an opened compound file with its streams indexed by path.
type oleDoc struct {
	r       *mscfb.Reader
	entries []*mscfb.File
	byPath  map[string]*mscfb.File // lower-case "storage/…/name"
}

func openOLE(ra io.ReaderAt) (*oleDoc, error) {
	r, err := mscfb.New(ra)
	if err != nil {
		return nil, err
	}
	d := &oleDoc{r: r, byPath: map[string]*mscfb.File{}}
	for _, e := range r.File {
		d.entries = append(d.entries, e)
		d.byPath[strings.ToLower(entryPath(e))] = e
		if len(d.entries) > 100000 {
			break
		}
	}
	return d, nil
}

func entryPath(e *mscfb.File) string {
	return strings.Join(append(append([]string(nil), e.Path...), e.Name), "/")
}

func isStorage(e *mscfb.File) bool { return e.FileInfo().IsDir() }

// read returns up to max bytes of a stream.
func readStream(e *mscfb.File, max int64) []byte {
	n := min(e.Size, max)
	if n <= 0 {
		return nil
	}
	b := make([]byte, n)
	k, _ := e.ReadAt(b, 0)
	return b[:k]
}

func (d *oleDoc) stream(p string) *mscfb.File {
	e := d.byPath[strings.ToLower(p)]
	if e == nil || isStorage(e) {
		return nil
	}
	return e
}

// ole inspects an OLE2 compound file: encryption, VBA and XLM macros,
// PowerPoint embedded storages, OLE1 packages, Outlook .msg attachments
// and MSI installers.
func (w *walker) ole(f *File) error {
	ra, _, err := f.ReaderAt()
	if err != nil {
		return errSpill{err}
	}
	d, err := openOLE(ra)
	if err != nil {
		f.addFinding(reason.UnsupportedContainer, "ole: unreadable compound file: "+clip(err.Error(), 120))
		return nil
	}
	if strings.EqualFold(d.r.ID(), "{000C1084-0000-0000-C000-000000000046}") || f.Type == "application/x-ms-installer" {
		f.Type = "application/x-ms-installer"
		if f.Features.Executable == "" {
			f.Features.Executable = "msi"
			f.addFinding(reason.ExecAttachment, "msi (Windows installer)")
		}
		return w.archiveAs(f, "msi")
	}
	workbook, err := w.oleEncryption(f, d)
	if err != nil {
		return err
	}
	for _, e := range d.entries {
		if !isStorage(e) && strings.EqualFold(e.Name, "Equation Native") {
			f.addFinding(reason.ExploitObject, "Equation Editor 3.0 object ("+sanitizePath(entryPath(e))+"), an exploit carrier")
			break
		}
	}
	if err := w.vbaProjects(f, d, ""); err != nil {
		return err
	}
	w.xlm(f, d, workbook)
	if d.stream("__properties_version1.0") != nil || f.Type == typeMSG {
		f.Type = typeMSG
		return w.msg(f, d)
	}
	if err := w.pptStorages(f, d); err != nil {
		return err
	}
	return w.oleObjects(f, d)
}

// oleEncryption recognises encrypted Office documents: OOXML in an OLE
// wrapper (EncryptionInfo + EncryptedPackage), Word's FIB fEncrypted bit,
// Excel's FILEPASS record and PowerPoint's encrypted summary.
//
// An encrypted workbook that a candidate password opens is returned in
// clear text, for the macro-sheet check.
func (w *walker) oleEncryption(f *File, d *oleDoc) ([]byte, error) {
	kind := ""
	switch {
	case d.stream("EncryptionInfo") != nil && d.stream("EncryptedPackage") != nil:
		kind = "ooxml-encrypted-package"
	case d.stream("EncryptedSummary") != nil:
		kind = "ppt-cryptoapi"
	}
	if kind == "" {
		if wd := d.stream("WordDocument"); wd != nil {
			if fib := readStream(wd, 32); len(fib) >= 0x0C && binary.LittleEndian.Uint16(fib[0x0A:])&0x0100 != 0 {
				kind = "doc-fib-encrypted"
			}
		}
	}
	var wbStream string
	if kind == "" {
		for _, name := range []string{"Workbook", "Book"} {
			if wb := d.stream(name); wb != nil && biffHas(readStream(wb, 1<<20), 0x002F) {
				kind, wbStream = "xls-filepass", name
			}
		}
	}
	if kind == "" {
		return nil, nil
	}
	f.Encrypted = true
	f.Features.EncryptedDoc = kind
	why := "content not inspected"
	if kind == "xls-filepass" {
		clear, note := w.decryptXLS(f, readStream(d.stream(wbStream), maxStream))
		if clear != nil {
			return clear, nil
		}
		why = note
	}
	if kind == "ooxml-encrypted-package" {
		opened, err := w.decryptOffice(f, d)
		if opened || err != nil {
			return nil, err
		}
		why = "no candidate password opened it"
		if c, perr := parseOfficeCrypt(readStream(d.stream("EncryptionInfo"), 1<<20)); perr != nil {
			why = clip(perr.Error(), 200)
		} else {
			why += " (" + c.Scheme() + " encryption)"
		}
	}
	f.addFinding(reason.EncryptedUnscannable, "encrypted Office document ("+f.Features.EncryptedDoc+"); "+why)
	return nil, nil
}

// decryptXLS tries the candidate passwords and Excel's own on an RC4
// encrypted Workbook stream. It returns the stream in clear text, or nil
// and why not.
func (w *walker) decryptXLS(f *File, stream []byte) ([]byte, string) {
	var fp []byte
	biffEach(stream, func(typ uint16, rec []byte) bool {
		if typ == 0x002F {
			fp = rec
			return false
		}
		return true
	})
	c, err := parseFilePass(fp)
	if err != nil {
		if len(fp) >= 2 && fp[0] == 0 && fp[1] == 0 {
			f.Features.EncryptedDoc = "xls-xor-obfuscation"
		}
		return nil, clip(err.Error(), 200)
	}
	cands := w.passwords()
	at := min(1, len(cands))
	cands = append(cands[:at], append([]Password{{Value: officePassword, Source: SourcePolicy}}, cands[at:]...)...)
	for _, p := range cands {
		base, ok := c.Key(p.Value)
		if !ok {
			continue
		}
		f.openedWith(p.Source, "workbook")
		if p.Value == officePassword {
			f.Features.EncryptedDoc += " (Excel's default password)"
		}
		return c.Decrypt(base, stream), ""
	}
	scheme := "RC4"
	if c.cryptoAPI {
		scheme = "RC4 CryptoAPI"
	}
	return nil, "no candidate password opened it (" + scheme + " encryption)"
}

// decryptOffice tries the candidate passwords, then Excel's built-in
// one, on an encrypted OOXML package; the package that one opens becomes
// the document's child, inspected like any attachment.
func (w *walker) decryptOffice(f *File, d *oleDoc) (bool, error) {
	c, err := parseOfficeCrypt(readStream(d.stream("EncryptionInfo"), 1<<20))
	if err != nil {
		return false, nil
	}
	pkg := d.stream("EncryptedPackage")
	// Excel's own password second: it costs one attempt and is what a
	// document meant to open without a prompt uses.
	cands := w.passwords()
	at := min(1, len(cands))
	cands = append(cands[:at], append([]Password{{Value: officePassword, Source: SourcePolicy}}, cands[at:]...)...)
	if n := c.Attempts(); len(cands) > n {
		f.Features.EncryptedDoc += fmt.Sprintf(" (%d hash rounds a password: %d of %d candidates tried)", c.spin, n, len(cands))
		cands = cands[:n]
	}
	for _, p := range cands {
		if w.stopped() {
			return false, nil
		}
		key, ok := c.Key(p.Value)
		if !ok {
			continue
		}
		r, size, err := c.Decrypt(key, pkg, pkg.Size)
		if err != nil {
			f.addFinding(reason.UnsupportedContainer, "encrypted Office document: "+clip(err.Error(), 200))
			return true, nil
		}
		name := f.Name
		if name == "" {
			name = "document.zip"
		}
		child, err := w.addFile(fileSpec{parent: f, name: name, hint: size}, r)
		if err != nil || child == nil {
			return true, err
		}
		f.openedWith(p.Source, "Office document")
		child.Decrypted, child.PasswordSource = true, p.Source
		if p.Value == officePassword {
			f.Features.EncryptedDoc += " (Excel's default password)"
		}
		return true, w.inspect(child)
	}
	return false, nil
}

// vbaProjects finds every VBA storage (Macros/VBA, _VBA_PROJECT_CUR/VBA,
// VBA), decompresses each module's source and adds it as a derived file.
func (w *walker) vbaProjects(f *File, d *oleDoc, container string) error {
	var dirs []*mscfb.File
	for _, e := range d.entries {
		if !isStorage(e) && strings.EqualFold(e.Name, "dir") && len(e.Path) > 0 && strings.EqualFold(e.Path[len(e.Path)-1], "VBA") {
			dirs = append(dirs, e)
		}
	}
	hasVBAStorage := false
	for _, e := range d.entries {
		if isStorage(e) && (strings.EqualFold(e.Name, "VBA") || strings.EqualFold(e.Name, "_VBA_PROJECT_CUR") || strings.EqualFold(e.Name, "Macros")) {
			hasVBAStorage = true
		}
	}
	if len(dirs) == 0 && !hasVBAStorage {
		return nil
	}
	mi := f.macroInfo()
	mi.VBA = true
	for _, dir := range dirs {
		base := strings.Join(dir.Path, "/")
		if mi.Where == "" {
			mi.Where = base
			if container != "" {
				mi.Where = container + ":" + base
			}
		}
		dec, derr := DecompressVBA(readStream(dir, maxStream), maxStream)
		mods, perr := parseVBADir(dec)
		if derr != nil && len(dec) == 0 || perr != nil && len(mods) == 0 {
			// Fall back to every stream of the storage that holds source.
			mods = nil
			for _, e := range d.entries {
				if !isStorage(e) && strings.Join(e.Path, "/") == base && !strings.HasPrefix(e.Name, "_") &&
					!strings.EqualFold(e.Name, "dir") {
					mods = append(mods, vbaModule{name: e.Name, stream: e.Name, offset: ^uint32(0)})
				}
			}
			mi.Note = "dir stream unreadable; module sources found by scanning"
		}
		for _, m := range mods {
			s := d.stream(base + "/" + m.stream)
			if s == nil {
				continue
			}
			src, _ := moduleSource(readStream(s, maxStream), m.offset, 16<<20)
			if len(src) == 0 {
				continue
			}
			mi.Modules = append(mi.Modules, m.name)
			mi.AutoRun = dedupe(append(mi.AutoRun, autoRuns(src)...))
			if f.Depth+1 > w.lim.MaxDepth {
				continue
			}
			child, err := w.addBytes(fileSpec{parent: f, display: "vba/" + sanitizeComponent(m.name) + ".vba", derived: true}, src)
			if err != nil {
				return err
			}
			if child != nil {
				child.Name = m.name + ".vba"
				child.Type = "text/x-vba"
			}
		}
	}
	sort.Strings(mi.AutoRun)
	detail := fmt.Sprintf("VBA macros in %s (%d modules)", orDefault(mi.Where, "OLE storage"), len(mi.Modules))
	if len(mi.AutoRun) > 0 {
		detail += "; auto-run: " + strings.Join(mi.AutoRun, ",")
	}
	f.addFinding(reason.MacroDocument, detail)
	return nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func (f *File) macroInfo() *MacroInfo {
	if f.Features.Macros == nil {
		f.Features.Macros = &MacroInfo{}
	}
	return f.Features.Macros
}

// xlm detects Excel 4.0 macro sheets: a BIFF BOUNDSHEET record (0x0085)
// with sheet type 1.
func (w *walker) xlm(f *File, d *oleDoc, decrypted []byte) {
	for _, name := range []string{"Workbook", "Book"} {
		wb := d.stream(name)
		if wb == nil {
			continue
		}
		data := decrypted
		if data == nil {
			if f.Encrypted {
				return // an encrypted sheet list says nothing
			}
			data = readStream(wb, maxStream)
		}
		sheets, hidden := 0, 0
		biffEach(data, func(typ uint16, rec []byte) bool {
			if typ == 0x0085 && len(rec) >= 6 && rec[5] == 1 {
				sheets++
				if rec[4]&0x03 != 0 {
					hidden++
				}
			}
			return true
		})
		if sheets > 0 {
			mi := f.macroInfo()
			mi.XLM = true
			d := fmt.Sprintf("Excel 4.0 (XLM) macro sheets: %d", sheets)
			if hidden > 0 {
				d += fmt.Sprintf(" (%d hidden)", hidden)
			}
			f.addFinding(reason.MacroDocument, d)
		}
	}
}

// biffEach walks BIFF records until fn returns false or the data ends.
func biffEach(b []byte, fn func(typ uint16, rec []byte) bool) {
	for pos := 0; pos+4 <= len(b); {
		typ := binary.LittleEndian.Uint16(b[pos:])
		n := int(binary.LittleEndian.Uint16(b[pos+2:]))
		pos += 4
		if pos+n > len(b) {
			return
		}
		if !fn(typ, b[pos:pos+n]) {
			return
		}
		pos += n
	}
}

func biffHas(b []byte, want uint16) bool {
	found := false
	biffEach(b, func(typ uint16, _ []byte) bool {
		if typ == want {
			found = true
			return false
		}
		return typ != 0x000A // EOF of the globals substream
	})
	return found
}

// pptStorages extracts the OLE storages PowerPoint keeps inside the
// "PowerPoint Document" stream as ExOleObjStg records (type 0x1011,
// zlib-compressed when the instance is 1): embedded objects and the VBA
// project. Each becomes a child; a child holding VBA makes the
// presentation a macro document.
func (w *walker) pptStorages(f *File, d *oleDoc) error {
	s := d.stream("PowerPoint Document")
	if s == nil {
		return nil
	}
	data := readStream(s, maxStream)
	n := 0
	for i := 2; i+6 <= len(data) && n < 32; i++ {
		if data[i] != 0x11 || data[i+1] != 0x10 {
			continue
		}
		ver := binary.LittleEndian.Uint16(data[i-2:])
		length := int(binary.LittleEndian.Uint32(data[i+2:]))
		if ver&0x0f != 0 || ver>>4 > 1 || length < 4 || i+6+length > len(data) {
			continue
		}
		rec := data[i+6 : i+6+length]
		var obj []byte
		if ver>>4 == 1 {
			zr, err := zlib.NewReader(bytes.NewReader(rec[4:]))
			if err != nil {
				continue
			}
			obj, _ = io.ReadAll(io.LimitReader(zr, min(w.lim.MaxFileBytes, maxStream)))
		} else {
			obj = rec
		}
		if !isOLE(obj) {
			continue
		}
		n++
		if f.Depth+1 > w.lim.MaxDepth {
			w.tooDeep(f, "ppt embedded storage")
			return nil
		}
		child, err := w.addBytes(fileSpec{parent: f, display: fmt.Sprintf("ExOleObjStg-%d.ole", n)}, obj)
		if err != nil || child == nil {
			return err
		}
		if err := w.inspect(child); err != nil {
			return err
		}
		if child.Features.Macros != nil && child.Features.Macros.VBA {
			mi := f.macroInfo()
			mi.VBA = true
			mi.Where = "PowerPoint Document/ExOleObjStg"
			mi.Modules = append(mi.Modules, child.Features.Macros.Modules...)
			mi.AutoRun = dedupe(append(mi.AutoRun, child.Features.Macros.AutoRun...))
			f.addFinding(reason.MacroDocument, "VBA project stored in the PowerPoint Document stream")
		}
		i += 6 + length - 1
	}
	return nil
}

// oleObjects extracts embedded objects: OLE1 packages (\x01Ole10Native),
// "Package" streams (embedded OOXML) and "CONTENTS" streams (embedded PDF
// and others).
func (w *walker) oleObjects(f *File, d *oleDoc) error {
	n := 0
	for _, e := range d.entries {
		if isStorage(e) || n >= 64 {
			continue
		}
		var name string
		var data []byte
		switch {
		case e.Name == "Ole10Native":
			label, _, payload, ok := parseOLE1Package(readStream(e, maxStream))
			if !ok {
				continue
			}
			name, data = label, payload
		case strings.EqualFold(e.Name, "Package"), strings.EqualFold(e.Name, "CONTENTS"):
			data = readStream(e, maxStream)
		default:
			continue
		}
		if len(data) == 0 {
			continue
		}
		n++
		if f.Depth+1 > w.lim.MaxDepth {
			w.tooDeep(f, "embedded object")
			return nil
		}
		display := ""
		if name == "" {
			display = sanitizePath(entryPath(e))
		} else {
			display = sanitizePath(path.Join(strings.Join(e.Path, "/"), sanitizeComponent(name)))
		}
		child, err := w.addBytes(fileSpec{parent: f, name: name, display: display}, data)
		if err != nil || child == nil {
			return err
		}
		if err := w.inspect(child); err != nil {
			return err
		}
	}
	return nil
}

// parseOLE1Package parses an OLE1 Package native stream (Ole10Native, and
// RTF \objdata of class "Package"): size, type, label, original path,
// temp path, payload.
func parseOLE1Package(b []byte) (label, orig string, payload []byte, ok bool) {
	if len(b) < 6 {
		return "", "", nil, false
	}
	p := 4 // total size
	p += 2 // type
	cstr := func() (string, bool) {
		i := bytes.IndexByte(b[p:], 0)
		if i < 0 || i > 4096 {
			return "", false
		}
		s := string(b[p : p+i])
		p += i + 1
		return s, true
	}
	var ok1, ok2 bool
	if label, ok1 = cstr(); !ok1 {
		return "", "", nil, false
	}
	if orig, ok2 = cstr(); !ok2 {
		return "", "", nil, false
	}
	if p+8 > len(b) {
		return "", "", nil, false
	}
	p += 4 // unknown (0x00030000)
	tl := int(binary.LittleEndian.Uint32(b[p:]))
	p += 4
	if tl < 0 || p+tl+4 > len(b) {
		return "", "", nil, false
	}
	p += tl
	n := int(binary.LittleEndian.Uint32(b[p:]))
	p += 4
	if n < 0 || p+n > len(b) {
		n = len(b) - p
	}
	return decodeRaw(label), decodeRaw(orig), b[p : p+n], true
}
