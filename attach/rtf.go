package attach

import (
	"bytes"
	"encoding/binary"
	"fmt"
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
