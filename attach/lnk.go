package attach

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/mailguard/mailguard/reason"
)

var lnkCLSID = []byte{0x01, 0x14, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x46}

// MS-SHLLINK §2.1.1 LinkFlags.
const (
	lnkHasIDList     = 1 << 0
	lnkHasLinkInfo   = 1 << 1
	lnkHasName       = 1 << 2
	lnkHasRelPath    = 1 << 3
	lnkHasWorkingDir = 1 << 4
	lnkHasArguments  = 1 << 5
	lnkHasIcon       = 1 << 6
	lnkIsUnicode     = 1 << 7
)

// maxLNKString bounds one StringData field (the format allows 65535
// characters; command lines of LNK malware run to a few thousand).
const maxLNKString = 32768

// ParseLNK parses a Windows shell link (MS-SHLLINK): the target from the
// LinkInfo local or network path, the ID list or the environment-variable
// block, and the string data (name, relative path, working directory,
// arguments, icon location). It never panics; on malformed input it
// returns what it read and an error.
func ParseLNK(b []byte) (LNKInfo, error) {
	var li LNKInfo
	if len(b) < 0x4C || binary.LittleEndian.Uint32(b) != 0x4C || !bytes.Equal(b[4:20], lnkCLSID) {
		return li, errors.New("attach: lnk: bad header")
	}
	flags := binary.LittleEndian.Uint32(b[0x14:])
	p := 0x4C
	if flags&lnkHasIDList != 0 {
		if p+2 > len(b) {
			return li, errors.New("attach: lnk: truncated id list")
		}
		n := int(binary.LittleEndian.Uint16(b[p:]))
		if p+2+n > len(b) {
			return li, errors.New("attach: lnk: id list past end")
		}
		li.Target = idListPath(b[p+2 : p+2+n])
		p += 2 + n
	}
	if flags&lnkHasLinkInfo != 0 {
		if p+4 > len(b) {
			return li, errors.New("attach: lnk: truncated link info")
		}
		n := int(binary.LittleEndian.Uint32(b[p:]))
		if n < 4 || p+n > len(b) {
			return li, errors.New("attach: lnk: link info past end")
		}
		if t := linkInfoPath(b[p : p+n]); t != "" {
			li.Target = t
		}
		p += n
	}
	unicode := flags&lnkIsUnicode != 0
	for _, fl := range []struct {
		bit uint32
		dst *string
	}{
		{lnkHasName, &li.Name}, {lnkHasRelPath, &li.RelativePath}, {lnkHasWorkingDir, &li.WorkingDir},
		{lnkHasArguments, &li.Arguments}, {lnkHasIcon, &li.IconLocation},
	} {
		if flags&fl.bit == 0 {
			continue
		}
		s, np, err := lnkString(b, p, unicode)
		if err != nil {
			return li, err
		}
		*fl.dst, p = s, np
	}
	// ExtraData: EnvironmentVariableDataBlock (0xA0000001) carries the
	// target when it is built from variables (%COMSPEC%, %windir%…).
	for i := 0; i < 64 && p+8 <= len(b); i++ {
		size := int(binary.LittleEndian.Uint32(b[p:]))
		if size < 8 || p+size > len(b) {
			break
		}
		sig := binary.LittleEndian.Uint32(b[p+4:])
		if sig == 0xA0000001 && size >= 8+260+520 {
			env := decodeUTF16LE(b[p+8+260 : p+8+260+520])
			if env == "" {
				env = cString(b[p+8 : p+8+260])
			}
			if env != "" && (li.Target == "" || !strings.Contains(li.Target, "\\")) {
				li.Target = env
			}
		}
		p += size
	}
	return li, nil
}

func lnkString(b []byte, p int, unicode bool) (string, int, error) {
	if p+2 > len(b) {
		return "", p, errors.New("attach: lnk: truncated string data")
	}
	n := int(binary.LittleEndian.Uint16(b[p:]))
	p += 2
	size := n
	if unicode {
		size = 2 * n
	}
	if p+size > len(b) {
		return "", p, errors.New("attach: lnk: string data past end")
	}
	raw := b[p : p+size]
	p += size
	if n > maxLNKString {
		raw = raw[:maxLNKString]
	}
	if unicode {
		return decodeUTF16LE(raw), p, nil
	}
	return decodeRaw(string(raw)), p, nil
}

// linkInfoPath returns LocalBasePath + CommonPathSuffix, or the network
// share name + suffix (MS-SHLLINK §2.3).
func linkInfoPath(li []byte) string {
	if len(li) < 0x1C {
		return ""
	}
	hdr := int(binary.LittleEndian.Uint32(li[4:]))
	flags := binary.LittleEndian.Uint32(li[8:])
	local := int(binary.LittleEndian.Uint32(li[0x10:]))
	network := int(binary.LittleEndian.Uint32(li[0x14:]))
	suffix := int(binary.LittleEndian.Uint32(li[0x18:]))
	at := func(off int) string {
		if off <= 0 || off >= len(li) {
			return ""
		}
		return decodeRaw(cString(li[off:]))
	}
	atU := func(off int) string {
		if off <= 0 || off >= len(li) {
			return ""
		}
		end := off
		for end+1 < len(li) && (li[end] != 0 || li[end+1] != 0) {
			end += 2
		}
		return decodeUTF16LE(li[off:end])
	}
	base, suf := "", at(suffix)
	if hdr >= 0x24 && len(li) >= 0x24 {
		if u := atU(int(binary.LittleEndian.Uint32(li[0x1C:]))); u != "" {
			base = u
		}
		if u := atU(int(binary.LittleEndian.Uint32(li[0x20:]))); u != "" {
			suf = u
		}
	}
	if flags&1 != 0 && base == "" {
		base = at(local)
	}
	if base == "" && flags&2 != 0 && network > 0 && network+12 <= len(li) {
		nameOff := int(binary.LittleEndian.Uint32(li[network+8:]))
		base = at(network + nameOff)
		if base != "" && suf != "" && !strings.HasSuffix(base, "\\") {
			base += "\\"
		}
	}
	return base + suf
}

// idListPath rebuilds a path from shell items: drive (0x2F) and file
// entries (0x30–0x3F, short name at offset 14).
func idListPath(b []byte) string {
	var parts []string
	for p := 0; p+2 <= len(b) && len(parts) < 64; {
		n := int(binary.LittleEndian.Uint16(b[p:]))
		if n == 0 || p+n > len(b) {
			break
		}
		item := b[p : p+n]
		p += n
		if len(item) < 3 {
			continue
		}
		switch t := item[2]; {
		case t == 0x2F && len(item) >= 6:
			parts = append(parts, strings.TrimRight(cString(item[3:]), "\\"))
		case t&0x70 == 0x30 && len(item) > 14:
			if s := cString(item[14:]); s != "" {
				parts = append(parts, decodeRaw(s))
			}
		}
	}
	return strings.Join(parts, "\\")
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return string(b[:i])
	}
	return string(b)
}

// lnk parses a shell link and keeps its target in the features; a link
// is an executable launcher, and inside an archive or disk image it is
// the classic ISO/LNK delivery.
func (w *walker) lnk(f *File) {
	b, ok := f.bytesUpTo(4 << 20)
	if !ok {
		b = f.head(4 << 20)
	}
	li, err := ParseLNK(b)
	if err != nil {
		li.Error = err.Error()
	}
	f.Features.LNK = &li
	detail := "shell link"
	if li.Target != "" {
		detail += " to " + sanitizeText(clip(li.Target, 200))
	}
	if li.Arguments != "" {
		detail += " with arguments " + sanitizeText(clip(li.Arguments, 200))
	}
	if f.Features.Executable == "" {
		f.Features.Executable = "lnk"
	}
	f.addFinding(reason.ExecAttachment, detail)
	if f.inArchive {
		f.addFinding(reason.LNKInContainer, fmt.Sprintf("%s inside %s", detail, f.parent.Path))
	}
}
