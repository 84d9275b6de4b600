package attach

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/mailguard/mailguard/reason"
)

// FileDataStoreObject header and footer GUIDs (MS-ONESTORE §2.6.13), in
// their on-disk byte order.
var (
	oneFileDataHeader = []byte{0xe7, 0x16, 0xe3, 0xbd, 0x65, 0x26, 0x11, 0x45, 0xa4, 0xc4, 0x8d, 0x4d, 0x0b, 0x7a, 0x9e, 0xac}
	oneFileDataFooter = []byte{0x22, 0xa7, 0xfb, 0x71, 0x79, 0x0f, 0x0b, 0x4a, 0xbb, 0x13, 0x89, 0x92, 0x56, 0x42, 0x6b, 0x24}
)

// OneNoteFiles returns the embedded file data of a OneNote section: every
// FileDataStoreObject (GUID {BDE316E7-2665-4511-A4C4-8D4D0B7A9EAC},
// cbLength, unused, reserved, data). At most max objects are returned.
func OneNoteFiles(b []byte, max int) [][]byte {
	var out [][]byte
	off := 0
	for len(out) < max {
		i := bytes.Index(b[off:], oneFileDataHeader)
		if i < 0 {
			break
		}
		p := off + i + 16
		off = p
		if p+20 > len(b) {
			break
		}
		n := binary.LittleEndian.Uint64(b[p:])
		p += 8 + 4 + 8
		if n > uint64(len(b)-p) {
			continue
		}
		data := b[p : p+int(n)]
		// The footer follows after 8-byte alignment; tolerate its absence.
		end := p + int(n)
		if pad := (8 - int(n)%8) % 8; end+pad+16 <= len(b) && !bytes.Equal(b[end+pad:end+pad+16], oneFileDataFooter) {
			// Not a real object (the GUID appeared inside other data).
			if !bytes.Contains(b[end:min(len(b), end+64)], oneFileDataFooter) {
				continue
			}
		}
		out = append(out, data)
		off = end
	}
	return out
}

// onenote extracts the files embedded in a OneNote section and walks them;
// files other than pictures make onenote_embedded_file.
func (w *walker) onenote(f *File) error {
	b, ok := f.bytesUpTo(w.lim.MaxFileBytes)
	if !ok {
		f.addFinding(reason.UnsupportedContainer, "onenote: too large to parse")
		return nil
	}
	objs := OneNoteFiles(b, 256)
	f.Features.OneNote = len(objs)
	f.Features.Container = "onenote"
	var kinds []string
	for i, data := range objs {
		if w.stopped() {
			return nil
		}
		child, err := w.addBytes(fileSpec{parent: f, display: fmt.Sprintf("embedded-%d", i+1)}, data)
		if err != nil || child == nil {
			return err
		}
		if err := w.inspect(child); err != nil {
			return err
		}
		if !strings.HasPrefix(child.Type, "image/") {
			kinds = append(kinds, child.Type)
		}
	}
	if len(kinds) > 0 {
		f.addFinding(reason.OneNoteEmbeddedFile, fmt.Sprintf("%d embedded file(s) besides pictures: %s", len(kinds), strings.Join(dedupe(kinds), ", ")))
	}
	return nil
}
