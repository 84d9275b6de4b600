package attach

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"unicode/utf16"
)

// ErrVBACompressed is returned for input that is not an MS-OVBA
// CompressedContainer.
var ErrVBACompressed = errors.New("attach: not an MS-OVBA compressed container")

// DecompressVBA decompresses an MS-OVBA §2.4.1 CompressedContainer (the
// format of VBA module source and the dir stream). Output is capped at max
// bytes; a corrupt chunk ends decompression and returns what was decoded
// with an error.
func DecompressVBA(in []byte, max int) ([]byte, error) {
	if len(in) == 0 || in[0] != 0x01 {
		return nil, ErrVBACompressed
	}
	out := make([]byte, 0, min(max, 4*len(in)))
	pos := 1
	for pos < len(in) {
		if len(in)-pos < 2 {
			return out, errors.New("attach: vba: truncated chunk header")
		}
		hdr := binary.LittleEndian.Uint16(in[pos:])
		size := int(hdr&0x0fff) + 3
		if hdr>>12&0x7 != 0x3 {
			return out, errors.New("attach: vba: bad chunk signature")
		}
		compressed := hdr&0x8000 != 0
		end := min(pos+size, len(in))
		data := in[pos+2 : end]
		pos = end
		chunkStart := len(out)
		if !compressed {
			// MS-OVBA §2.4.1.3.3: an uncompressed chunk holds 4096 bytes.
			if len(out)+len(data) > max {
				return out[:max], errTooBig
			}
			out = append(out, data...)
			continue
		}
		i := 0
		for i < len(data) {
			flags := data[i]
			i++
			for bit := 0; bit < 8 && i < len(data); bit++ {
				if flags&(1<<bit) == 0 {
					if len(out) >= max {
						return out, errTooBig
					}
					out = append(out, data[i])
					i++
					continue
				}
				if i+1 >= len(data) {
					return out, errors.New("attach: vba: truncated copy token")
				}
				tok := binary.LittleEndian.Uint16(data[i:])
				i += 2
				diff := len(out) - chunkStart
				bits := 4
				for (1 << bits) < diff {
					bits++
				}
				if bits > 12 {
					bits = 12
				}
				lengthMask := uint16(0xffff) >> bits
				length := int(tok&lengthMask) + 3
				offset := int(tok>>(16-bits)) + 1
				if offset > diff {
					return out, errors.New("attach: vba: copy token before chunk start")
				}
				if len(out)+length > max {
					return out, errTooBig
				}
				src := len(out) - offset
				for k := 0; k < length; k++ {
					out = append(out, out[src+k])
				}
			}
		}
	}
	return out, nil
}

var errTooBig = errors.New("attach: vba: output limit reached")

// vbaModule is one module of a VBA project.
type vbaModule struct {
	name   string // MODULENAME
	stream string // MODULESTREAMNAME (unicode form preferred)
	offset uint32 // MODULEOFFSET: where the compressed source starts
}

// parseVBADir reads the decompressed dir stream (MS-OVBA §2.3.4.2) and
// returns the modules with their source offsets.
func parseVBADir(d []byte) ([]vbaModule, error) {
	var mods []vbaModule
	var cur *vbaModule
	pos := 0
	for pos+6 <= len(d) {
		id := binary.LittleEndian.Uint16(d[pos:])
		size := int(binary.LittleEndian.Uint32(d[pos+2:]))
		pos += 6
		if id == 0x0009 {
			// PROJECTVERSION: Reserved (4) is the size field; the record
			// carries 6 bytes of version.
			size = 6
		}
		if size < 0 || pos+size > len(d) {
			return mods, errors.New("attach: vba dir: record past end")
		}
		data := d[pos : pos+size]
		pos += size
		switch id {
		case 0x0019: // MODULENAME
			mods = append(mods, vbaModule{name: string(data), stream: string(data)})
			cur = &mods[len(mods)-1]
		case 0x001A: // MODULESTREAMNAME (MBCS), followed by 0x0032 unicode
			if cur != nil {
				cur.stream = string(data)
			}
		case 0x0032:
			if cur != nil && len(data) >= 2 {
				cur.stream = decodeUTF16LE(data)
			}
		case 0x0031: // MODULEOFFSET
			if cur != nil && len(data) >= 4 {
				cur.offset = binary.LittleEndian.Uint32(data)
			}
		case 0x002B: // MODULE terminator
			cur = nil
		}
	}
	if len(mods) == 0 {
		return nil, errors.New("attach: vba dir: no modules")
	}
	return mods, nil
}

// moduleSource decompresses the source of one module stream, from the
// dir offset when it is valid, else from the first compressed container
// that starts with "Attribute" (the oletools fallback).
func moduleSource(stream []byte, offset uint32, max int) ([]byte, error) {
	if int(offset) < len(stream) {
		if src, err := DecompressVBA(stream[offset:], max); len(src) > 0 && bytes.Contains(src[:min(len(src), 64)], []byte("Attribut")) {
			return src, err
		}
	}
	i := bytes.Index(stream, []byte("\x00Attribut"))
	if i >= 3 {
		return DecompressVBA(stream[i-3:], max)
	}
	return nil, ErrVBACompressed
}

func decodeUTF16LE(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return strings.TrimRight(string(utf16.Decode(u)), "\x00")
}

// autoRunNames are VBA procedures that run without the user calling them.
var autoRunNames = []string{
	"AutoOpen", "Auto_Open", "AutoExec", "AutoClose", "Auto_Close", "AutoNew", "AutoExit",
	"Document_Open", "Document_Close", "Document_New", "Document_BeforeClose", "DocumentOpen",
	"Document_ContentControlOnEnter", "Workbook_Open", "Workbook_Activate", "Workbook_BeforeClose",
	"Workbook_Deactivate", "Auto_Activate", "Presentation_Open", "OnSlideShowPageChange",
	"InkPicture1_Painted", "Frame1_Layout", "MultiPage1_Layout", "TextBox1_Change",
}

func autoRuns(src []byte) []string {
	l := bytes.ToLower(src)
	var out []string
	for _, n := range autoRunNames {
		if bytes.Contains(l, []byte(strings.ToLower(n))) {
			out = append(out, n)
		}
	}
	return out
}
