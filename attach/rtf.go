package attach

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/mailguard/mailguard/reason"
)

// RTFObjects returns the OLE1 objects of an RTF document (\objdata hex
// blobs): the class name and the native data, or for the "Package" class
// the packaged file's label and content.
func RTFObjects(doc []byte, max int) []RTFObject {
	var out []RTFObject
	off := 0
	for len(out) < max {
		i := bytes.Index(doc[off:], []byte(`\objdata`))
		if i < 0 {
			break
		}
		p := off + i + len(`\objdata`)
		off = p
		raw := rtfHex(doc[p:])
		if len(raw) < 16 {
			continue
		}
		o, ok := parseOLE1Object(raw)
		if ok {
			out = append(out, o)
		}
	}
	return out
}

// RTFObject is one embedded OLE1 object.
type RTFObject struct {
	Class string
	Name  string // packaged file label, for the Package class
	Data  []byte
}

// rtfHex collects the hex digits of an \objdata group, skipping white
// space and nested control words, until the group closes.
func rtfHex(b []byte) []byte {
	var out []byte
	depth := 0
	var hi byte
	half := false
	for i := 0; i < len(b) && len(out) < 64<<20; i++ {
		c := b[i]
		switch {
		case c == '{':
			depth++
		case c == '}':
			if depth == 0 {
				return out
			}
			depth--
		case c == '\\':
			// Skip a control word and its numeric parameter.
			j := i + 1
			for j < len(b) && (b[j] >= 'a' && b[j] <= 'z' || b[j] >= 'A' && b[j] <= 'Z') {
				j++
			}
			for j < len(b) && (b[j] == '-' || b[j] >= '0' && b[j] <= '9') {
				j++
			}
			i = j - 1
		default:
			v, ok := unhex(c)
			if !ok {
				continue
			}
			if half {
				out = append(out, hi<<4|v)
			} else {
				hi = v
			}
			half = !half
		}
	}
	return out
}

// parseOLE1Object parses an OLE1 ObjectHeader (MS-OLEDS §2.2.4):
// version, format id, class name, topic, item, then native data.
func parseOLE1Object(b []byte) (RTFObject, bool) {
	p := 8
	lstr := func() (string, bool) {
		if p+4 > len(b) {
			return "", false
		}
		n := int(binary.LittleEndian.Uint32(b[p:]))
		p += 4
		if n < 0 || n > 4096 || p+n > len(b) {
			return "", false
		}
		s := cString(b[p : p+n])
		p += n
		return s, true
	}
	class, ok := lstr()
	if !ok {
		return RTFObject{}, false
	}
	if _, ok := lstr(); !ok {
		return RTFObject{}, false
	}
	if _, ok := lstr(); !ok {
		return RTFObject{}, false
	}
	if p+4 > len(b) {
		return RTFObject{}, false
	}
	native := b[p:]
	n := int(binary.LittleEndian.Uint32(native))
	if n >= 0 && n+4 <= len(native) {
		native = native[:n+4]
	}
	if class == "Package" {
		if label, _, data, ok := parseOLE1Package(native); ok {
			return RTFObject{Class: class, Name: label, Data: data}, true
		}
	}
	return RTFObject{Class: class, Data: native[4:]}, true
}

// rtf extracts the embedded objects of an RTF document as children.
func (w *walker) rtf(f *File) error {
	doc, ok := f.bytesUpTo(min(w.lim.MaxFileBytes, 128<<20))
	if !ok {
		return nil
	}
	if d := rtfEquation(doc); d != "" {
		f.addFinding(reason.ExploitObject, d)
	}
	objs := RTFObjects(doc, 32)
	for i, o := range objs {
		if w.stopped() {
			return nil
		}
		display := ""
		if o.Name == "" {
			display = fmt.Sprintf("object-%d-%s", i+1, sanitizeComponent(o.Class))
		}
		child, err := w.addBytes(fileSpec{parent: f, name: o.Name, display: display}, o.Data)
		if err != nil || child == nil {
			return err
		}
		if err := w.inspect(child); err != nil {
			return err
		}
	}
	return nil
}

// equationCLSID is Equation Editor 3.0's class id as stored (little-endian
// fields): {0002CE02-0000-0000-C000-000000000046}.
var equationCLSID = []byte{0x02, 0xce, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x46}

// rtfEquation reports an Equation Editor object in an RTF document: an
// \objclass naming it, or an \objdata blob whose bytes carry its class
// name or class id. Exploit documents break the OLE1 header so that
// parsers give up; the bytes are searched, not parsed.
func rtfEquation(doc []byte) string {
	if i := indexFold(doc, []byte(`\objclass`)); i >= 0 {
		if hasEquation(doc[i:min(len(doc), i+64)]) {
			return "RTF object of class Equation (Equation Editor 3.0, an exploit carrier)"
		}
	}
	off := 0
	for n := 0; n < 64; n++ {
		i := bytes.Index(doc[off:], []byte(`\objdata`))
		if i < 0 {
			break
		}
		off += i + len(`\objdata`)
		raw := rtfHex(doc[off:])
		if hasEquation(raw) || bytes.Contains(raw, equationCLSID) {
			return "RTF object data of Equation Editor 3.0 (an exploit carrier)"
		}
	}
	return ""
}

func hasEquation(b []byte) bool {
	return indexFold(b, []byte("equation.3")) >= 0 || indexFold(b, []byte("equation.dsmt")) >= 0 ||
		indexFold(b, []byte("equation native")) >= 0
}

// indexFold is bytes.Index ignoring ASCII letter case.
func indexFold(b, sub []byte) int {
	if len(sub) == 0 {
		return 0
	}
	first := sub[0] | 0x20
	for i := 0; i+len(sub) <= len(b); i++ {
		if b[i]|0x20 == first && bytes.EqualFold(b[i:i+len(sub)], sub) {
			return i
		}
	}
	return -1
}
