package attach

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/mailguard/mailguard/reason"
)

const (
	typeBinHex = "application/mac-binhex40"
	typeSIS    = "application/vnd.symbian.install"
)

var binhexMarker = []byte("(This file must be converted with BinHex")

// binhexAlphabet is the BinHex 4.0 six-bit alphabet.
const binhexAlphabet = "!\"#$%&'()*+,-012345689@ABCDEFGHIJKLMNPQRSTUVXYZ[`abcdefhijklmpqr"

// DecodeBinHex decodes a BinHex 4.0 text (RFC 1741) and returns the file
// name and data fork; output is capped at max bytes.
func DecodeBinHex(text []byte, max int) (string, []byte, error) {
	i := bytes.Index(text, binhexMarker)
	if i < 0 {
		return "", nil, errors.New("attach: binhex: no marker")
	}
	start := bytes.IndexByte(text[i+len(binhexMarker):], ':')
	if start < 0 {
		return "", nil, errors.New("attach: binhex: no data")
	}
	var six []byte
	var lut [256]int8
	for k := range lut {
		lut[k] = -1
	}
	for k := 0; k < len(binhexAlphabet); k++ {
		lut[binhexAlphabet[k]] = int8(k)
	}
	// Six-bit decoding up to the closing colon.
	var acc uint32
	bits := 0
	for _, c := range text[i+len(binhexMarker)+start+1:] {
		if c == ':' {
			break
		}
		v := lut[c]
		if v < 0 {
			continue
		}
		acc = acc<<6 | uint32(v)
		bits += 6
		if bits >= 8 {
			bits -= 8
			six = append(six, byte(acc>>bits))
		}
		if len(six) > 2*max+1024 {
			break
		}
	}
	// Run-length decoding: 0x90 n repeats the previous byte n-1 more times;
	// 0x90 0 is a literal 0x90.
	out := make([]byte, 0, len(six))
	for k := 0; k < len(six) && len(out) <= max+1024; k++ {
		c := six[k]
		if c != 0x90 || k+1 >= len(six) {
			out = append(out, c)
			continue
		}
		k++
		n := int(six[k])
		if n == 0 {
			out = append(out, 0x90)
			continue
		}
		if len(out) == 0 {
			return "", nil, errors.New("attach: binhex: run without a byte")
		}
		prev := out[len(out)-1]
		for r := 1; r < n; r++ {
			out = append(out, prev)
		}
	}
	if len(out) < 1 {
		return "", nil, errors.New("attach: binhex: empty")
	}
	nl := int(out[0])
	h := 1 + nl + 1 + 4 + 4 + 2
	if len(out) < h+8+2 {
		return "", nil, errors.New("attach: binhex: truncated header")
	}
	name := decodeRaw(string(out[1 : 1+nl]))
	dlen := int(binary.BigEndian.Uint32(out[h:]))
	p := h + 8 + 2
	if dlen < 0 || dlen > len(out)-p {
		return name, out[p:min(len(out), p+max)], fmt.Errorf("attach: binhex: data fork of %d bytes truncated", dlen)
	}
	return name, out[p : p+min(dlen, max)], nil
}

// binhex extracts the data fork of a BinHex file as a child.
func (w *walker) binhex(f *File) error {
	b, ok := f.bytesUpTo(4 * w.lim.MaxFileBytes / 3)
	if !ok {
		f.addFinding(reason.UnsupportedContainer, "binhex: too large")
		return nil
	}
	name, data, err := DecodeBinHex(b, int(w.lim.MaxFileBytes))
	if err != nil {
		f.addFinding(reason.MalformedMIME, err.Error())
	}
	if len(data) == 0 {
		return nil
	}
	display := ""
	if strings.TrimSpace(name) == "" {
		display = "data-fork"
	}
	child, err := w.addBytes(fileSpec{parent: f, name: name, display: display}, data)
	if err != nil || child == nil {
		return err
	}
	return w.inspect(child)
}

// isSIS recognises a Symbian installation package by its UIDs.
func isSIS(head []byte) bool {
	return len(head) >= 12 && bytes.Equal(head[4:12], []byte{0x12, 0x3a, 0x00, 0x10, 0x19, 0x04, 0x00, 0x10})
}
