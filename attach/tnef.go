package attach

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/mailguard/mailguard/reason"
)

// TNEF (winmail.dat, MS-OXTNEF). github.com/teamwork/tnef is on the proxy
// only as an unmaintained 2020 pseudo-version that slices without bounds
// checks (it panics on truncated input), so this is a small bounded reader
// of the attachment records instead.

const tnefSignature = 0x223E9F78

// TNEF attribute ids (low 16 bits).
const (
	attAttachData     = 0x800F
	attAttachTitle    = 0x8010
	attAttachRendData = 0x9002
	attAttachment     = 0x9005
	attBody           = 0x800C
)

// TNEFAttachment is one file carried in a TNEF stream.
type TNEFAttachment struct {
	Name string
	Data []byte
}

// ParseTNEF returns the attachments of a TNEF stream. Malformed input
// yields the attachments read so far and an error.
func ParseTNEF(b []byte) ([]TNEFAttachment, string, error) {
	if len(b) < 6 || binary.LittleEndian.Uint32(b) != tnefSignature {
		return nil, "", errors.New("attach: tnef: bad signature")
	}
	var atts []TNEFAttachment
	var cur *TNEFAttachment
	var body string
	p := 6
	for p < len(b) {
		if p+9 > len(b) {
			return atts, body, errors.New("attach: tnef: truncated attribute header")
		}
		level := b[p]
		id := binary.LittleEndian.Uint32(b[p+1:]) & 0xffff
		n := int(binary.LittleEndian.Uint32(b[p+5:]))
		p += 9
		if n < 0 || n > len(b)-p {
			return atts, body, errors.New("attach: tnef: attribute past end")
		}
		data := b[p : p+n]
		p += n + 2 // checksum
		switch {
		case level == 2 && id == attAttachRendData:
			if len(atts) >= 1000 {
				return atts, body, errors.New("attach: tnef: too many attachments")
			}
			atts = append(atts, TNEFAttachment{})
			cur = &atts[len(atts)-1]
		case level == 2 && id == attAttachTitle && cur != nil:
			if cur.Name == "" {
				cur.Name = decodeRaw(cString(data))
			}
		case level == 2 && id == attAttachData && cur != nil:
			cur.Data = data
		case level == 2 && id == attAttachment && cur != nil:
			if long := mapiLongFilename(data); long != "" {
				cur.Name = long
			}
		case level == 1 && id == attBody:
			body = decodeRaw(cString(data))
		}
	}
	return atts, body, nil
}

// mapiLongFilename finds PR_ATTACH_LONG_FILENAME (0x3707) in an
// attAttachment MAPI property list (MS-OXTNEF §2.1.3.4).
func mapiLongFilename(b []byte) string {
	if len(b) < 4 {
		return ""
	}
	count := int(binary.LittleEndian.Uint32(b))
	p := 4
	u32 := func() (int, bool) {
		if p+4 > len(b) {
			return 0, false
		}
		v := int(binary.LittleEndian.Uint32(b[p:]))
		p += 4
		return v, true
	}
	for i := 0; i < count && i < 4096; i++ {
		if p+4 > len(b) {
			return ""
		}
		typ := binary.LittleEndian.Uint16(b[p:])
		id := binary.LittleEndian.Uint16(b[p+2:])
		p += 4
		if id >= 0x8000 { // named property: GUID, kind, id or name
			p += 16
			kind, ok := u32()
			if !ok {
				return ""
			}
			if kind == 0 {
				p += 4
			} else {
				l, ok := u32()
				if !ok || l < 0 || l > len(b) {
					return ""
				}
				p += (l + 3) &^ 3
			}
		}
		multi := typ&0x1000 != 0
		base := typ &^ 0x1000
		vals := 1
		switch base {
		case 0x001E, 0x001F, 0x0102, 0x000D:
			v, ok := u32()
			if !ok {
				return ""
			}
			vals = v
		default:
			if multi {
				v, ok := u32()
				if !ok {
					return ""
				}
				vals = v
			}
		}
		if vals < 0 || vals > 65536 {
			return ""
		}
		for j := 0; j < vals; j++ {
			switch base {
			case 0x001E, 0x001F, 0x0102, 0x000D:
				l, ok := u32()
				if !ok || l < 0 || l > len(b)-p {
					return ""
				}
				v := b[p : p+l]
				p += (l + 3) &^ 3
				if id == 0x3707 {
					if base == 0x001F {
						return decodeUTF16LE(v)
					}
					return decodeRaw(cString(v))
				}
			case 0x0002, 0x0003, 0x0004, 0x000A, 0x000B:
				p += 4
			case 0x0005, 0x0006, 0x0007, 0x0014, 0x0040:
				p += 8
			case 0x0048:
				p += 16
			default:
				return ""
			}
		}
		if p > len(b) {
			return ""
		}
	}
	return ""
}

// tnef extracts the attachments of a winmail.dat as children.
func (w *walker) tnef(f *File) error {
	b, ok := f.bytesUpTo(w.lim.MaxFileBytes)
	if !ok {
		f.addFinding(reason.UnsupportedContainer, "tnef: too large to parse")
		return nil
	}
	atts, body, err := ParseTNEF(b)
	if err != nil {
		f.addFinding(reason.MalformedMIME, "tnef: "+err.Error())
	}
	if body != "" {
		w.addBody(f, "text/plain", body)
		w.addText(body)
		w.scanText(body)
	}
	f.Features.Container = "tnef"
	for i, a := range atts {
		if w.stopped() {
			return nil
		}
		display := ""
		if strings.TrimSpace(a.Name) == "" {
			display = fmt.Sprintf("attachment-%d", i+1)
		}
		child, err := w.addBytes(fileSpec{parent: f, name: a.Name, display: display}, a.Data)
		if err != nil || child == nil {
			return err
		}
		if err := w.inspect(child); err != nil {
			return err
		}
	}
	return nil
}
