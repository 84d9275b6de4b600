package attach

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"

	"github.com/pdfcpu/pdfcpu/pkg/api"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"

	"github.com/mailguard/mailguard/reason"
)

// maxPDFParse is the largest PDF handed to pdfcpu; larger ones get the raw
// keyword scan only.
const maxPDFParse = 64 << 20

// pdfActive are the PDF names that make a document act on its own.
var pdfActive = map[string]bool{
	"JavaScript": true, "JS": true, "OpenAction": true, "AA": true, "Launch": true,
	"EmbeddedFile": true, "EmbeddedFiles": true, "RichMedia": true, "XFA": true,
	"SubmitForm": true, "ImportData": true, "GoToE": true, "GoToR": true, "URI": false,
}

// pdfConfig is pdfcpu's default configuration without its config
// directory (NewDefaultConfiguration writes one under the user's home),
// with resource limits sized for mail.
func pdfConfig() *model.Configuration {
	lim := model.DefaultResourceLimits()
	lim.MaxStreamBytes = 64 << 20
	lim.MaxDecodeBytes = 128 << 20
	lim.MaxObjectCount = 1_000_000
	lim.MaxObjectStreamCount = 100_000
	lim.MaxXRefEntries = 1_000_000
	lim.MaxRecursionDepth = 64
	return &model.Configuration{
		Reader15:                  true,
		ValidationMode:            model.ValidationRelaxed,
		UnsupportedResourcePolicy: model.UnsupportedResourceSkip,
		Eol:                       types.EolLF,
		Offline:                   true,
		Timeout:                   5,
		Limits:                    lim,
	}
}

// pdfScan is what the PDF inspection found.
type pdfScan struct {
	keywords  map[string]bool
	openAct   bool // /OpenAction is an action, not just a destination
	encrypted bool
	embedded  []pdfEmbedded
}

type pdfEmbedded struct {
	name string
	data []byte
}

// pdf reports active content (pdfcpu walks every object, object streams
// included; on failure a raw keyword scan with #xx decoding stands in) and
// extracts embedded files as children.
func (w *walker) pdf(f *File) error {
	var sc *pdfScan
	var perr error
	var pw *Password // the candidate that opened it
	userLocked := false
	if b, ok := f.bytesUpTo(maxPDFParse); ok {
		maxEmb := min(w.lim.MaxFileBytes, 64<<20)
		sc, perr = scanPDF(b, maxEmb, "")
		if errors.Is(perr, pdfcpu.ErrWrongPassword) {
			// A document open password: try the candidates (pdfcpu
			// checks one before reading the objects).
			userLocked = true
			for _, p := range w.passwords() {
				if w.stopped() {
					break
				}
				s2, err2 := scanPDF(b, maxEmb, p.Value)
				if err2 == nil {
					sc, perr, pw, userLocked = s2, nil, &p, false
					break
				}
				if !errors.Is(err2, pdfcpu.ErrWrongPassword) {
					break
				}
			}
		}
	} else {
		perr = fmt.Errorf("larger than %d bytes", maxPDFParse)
	}
	info := &PDFInfo{Method: "pdfcpu"}
	if perr != nil {
		info.Method = "raw-scan"
		info.Error = clip(perr.Error(), 200)
		sc = rawPDFScan(f)
	}
	for k := range sc.keywords {
		info.Keywords = append(info.Keywords, k)
	}
	sort.Strings(info.Keywords)
	info.Encrypted = sc.encrypted
	f.Features.PDF = info
	var active []string
	for _, k := range info.Keywords {
		if pdfActive[k] && (k != "OpenAction" || sc.openAct || info.Method == "raw-scan") {
			active = append(active, "/"+k)
		}
	}
	if len(active) > 0 {
		d := "PDF active content " + strings.Join(active, " ")
		if info.Method == "raw-scan" {
			d += " (raw keyword scan: pdfcpu failed: " + info.Error + ")"
		}
		f.addFinding(reason.PDFActiveContent, d)
	}
	if sc.encrypted || userLocked {
		f.Encrypted = true
		f.Features.EncryptedDoc = "pdf"
		switch {
		case userLocked:
			f.Features.EncryptedDoc = pdfUserPassword
			f.addFinding(reason.EncryptedUnscannable, "PDF with a document open password that no candidate password opened")
		case info.Method == "raw-scan":
			f.addFinding(reason.EncryptedUnscannable, "encrypted PDF that could not be opened")
		case pw != nil:
			f.openedWith(pw.Source, "PDF")
		default:
			f.Decrypted = true // empty user password: pdfcpu read the objects
		}
	}
	for i, e := range sc.embedded {
		if w.stopped() {
			return nil
		}
		display := ""
		if strings.TrimSpace(e.name) == "" {
			display = fmt.Sprintf("embedded-%d", i+1)
		}
		child, err := w.addBytes(fileSpec{parent: f, name: e.name, display: display}, e.data)
		if err != nil || child == nil {
			return err
		}
		if err := w.inspect(child); err != nil {
			return err
		}
	}
	return nil
}

// pdfUserPassword is Features.EncryptedDoc of a PDF that needs a
// document open password none of the candidates was.
const pdfUserPassword = "pdf-user-password"

// scanPDF reads the PDF with pdfcpu (with password as the user and owner
// password; "" for none) and visits every object.
func scanPDF(b []byte, maxEmbedded int64, password string) (sc *pdfScan, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("pdfcpu panic: %v", v)
		}
	}()
	conf := pdfConfig()
	conf.UserPW, conf.OwnerPW = password, password
	ctx, err := api.ReadContext(bytes.NewReader(b), conf)
	if err != nil {
		return nil, err
	}
	sc = &pdfScan{keywords: map[string]bool{}, encrypted: ctx.XRefTable.Encrypt != nil}
	xt := ctx.XRefTable
	nums := make([]int, 0, len(xt.Table))
	for n := range xt.Table {
		nums = append(nums, n)
	}
	sort.Ints(nums)
	var total int64
	for _, n := range nums {
		e := xt.Table[n]
		if e == nil || e.Free {
			continue
		}
		o, derr := xt.Dereference(types.IndirectRef{ObjectNumber: types.Integer(n)})
		if derr != nil || o == nil {
			continue
		}
		var d types.Dict
		switch v := o.(type) {
		case types.Dict:
			d = v
		case types.StreamDict:
			d = v.Dict
			if t, ok := v.Dict["Type"].(types.Name); ok && t == "EmbeddedFile" && len(sc.embedded) < 32 && total < maxEmbedded {
				sd := v
				if err := sd.DecodeWithLimit(maxEmbedded - total); err == nil {
					total += int64(len(sd.Content))
					sc.embedded = append(sc.embedded, pdfEmbedded{data: sd.Content})
				}
			}
		default:
			continue
		}
		sc.visitDict(d, 0)
	}
	sc.nameEmbedded(xt, nums)
	return sc, nil
}

// visitDict records active keys and action types of one dictionary.
func (sc *pdfScan) visitDict(d types.Dict, depth int) {
	if depth > 16 {
		return
	}
	for k, v := range d {
		if pdfActive[k] || k == "URI" {
			sc.keywords[k] = true
		}
		if k == "OpenAction" {
			switch v.(type) {
			case types.Dict, types.IndirectRef:
				sc.openAct = true
			}
		}
		if n, ok := v.(types.Name); ok && pdfActive[string(n)] {
			// Action types (/S /JavaScript), /Type /EmbeddedFile.
			sc.keywords[string(n)] = true
		}
		if n, ok := v.(types.Name); ok && k == "Subtype" && n == "FileAttachment" {
			sc.keywords["EmbeddedFile"] = true
		}
		if sub, ok := v.(types.Dict); ok {
			sc.visitDict(sub, depth+1)
		}
	}
}

// nameEmbedded names embedded files from their file specifications in
// order of appearance (best effort; unnamed ones keep a placeholder).
func (sc *pdfScan) nameEmbedded(xt *model.XRefTable, nums []int) {
	if len(sc.embedded) == 0 {
		return
	}
	var names []string
	for _, n := range nums {
		if len(names) >= len(sc.embedded) {
			break
		}
		e := xt.Table[n]
		if e == nil || e.Free {
			continue
		}
		o, err := xt.Dereference(types.IndirectRef{ObjectNumber: types.Integer(n)})
		if err != nil {
			continue
		}
		d, ok := o.(types.Dict)
		if !ok || d["EF"] == nil {
			continue
		}
		for _, k := range []string{"UF", "F"} {
			if s, ok := d[k].(types.StringLiteral); ok {
				if u, err := types.StringLiteralToString(s); err == nil {
					names = append(names, u)
					break
				}
			}
			if s, ok := d[k].(types.HexLiteral); ok {
				if u, err := types.HexLiteralToString(s); err == nil {
					names = append(names, u)
					break
				}
			}
		}
	}
	for i := range sc.embedded {
		if i < len(names) {
			sc.embedded[i].name = names[i]
		}
	}
}

var rePDFName = regexp.MustCompile(`/[A-Za-z0-9#]{1,40}`)

// rawPDFScan looks for active-content names in the raw bytes, decoding
// #xx escapes in names (/J#61vaScript); it cannot see into compressed
// object streams, which is why it is only the fallback.
func rawPDFScan(f *File) *pdfScan {
	sc := &pdfScan{keywords: map[string]bool{}}
	rc, err := f.Open()
	if err != nil {
		return sc
	}
	defer rc.Close()
	buf := make([]byte, 1<<20)
	var carry []byte
	for {
		n, rerr := io.ReadFull(rc, buf)
		chunk := append(carry, buf[:n]...)
		for _, m := range rePDFName.FindAll(chunk, -1) {
			name := pdfUnescapeName(string(m[1:]))
			if pdfActive[name] {
				sc.keywords[name] = true
			}
			if name == "Encrypt" {
				sc.encrypted = true
			}
		}
		if len(chunk) > 64 {
			carry = append([]byte(nil), chunk[len(chunk)-64:]...)
		}
		if rerr != nil {
			break
		}
	}
	return sc
}

func pdfUnescapeName(s string) string {
	if !strings.Contains(s, "#") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '#' && i+2 < len(s) {
			if h, ok := unhex(s[i+1]); ok {
				if l, ok := unhex(s[i+2]); ok {
					b.WriteByte(h<<4 | l)
					i += 2
					continue
				}
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
