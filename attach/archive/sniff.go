package archive

import (
	"bytes"
	"encoding/binary"
	"io"
)

// Sniff returns the container format of the content from its magic bytes
// (the ISO and UDF volume descriptors at 32 KiB, the tar checksum, a zip
// end record for self-extracting or prepended zips), or "" when it is none
// of the formats Walk reads. It never returns MSI: an MSI is an OLE2 file
// like a .doc, and the caller decides.
func Sniff(ra io.ReaderAt, size int64) Format {
	head := readHead(ra, size, 0, 1024)
	if f := sniffMagic(head); f != "" {
		return f
	}
	if f := sniffVolume(ra, size); f != "" {
		return f
	}
	if isTarHeader(head) {
		return Tar
	}
	if _, ok := fatVolumeOffset(ra, size); ok {
		return FAT
	}
	if hasVHDFooter(ra, size) {
		return VHD
	}
	if findEOCD(ra, size) >= 0 {
		return Zip
	}
	return ""
}

// readHead reads up to n bytes at off; short reads return what was read.
func readHead(ra io.ReaderAt, size, off int64, n int) []byte {
	if off >= size {
		return nil
	}
	n = int(min(int64(n), size-off))
	b := make([]byte, n)
	k, _ := ra.ReadAt(b, off)
	return b[:k]
}

// sniffMagic recognises formats by their leading bytes.
func sniffMagic(h []byte) Format {
	switch {
	case bytes.HasPrefix(h, []byte("PK\x03\x04")), bytes.HasPrefix(h, []byte("PK\x05\x06")),
		bytes.HasPrefix(h, []byte("PK\x07\x08PK\x03\x04")), bytes.HasPrefix(h, []byte("PK00PK\x03\x04")):
		return Zip
	case bytes.HasPrefix(h, []byte("7z\xbc\xaf\x27\x1c")):
		return SevenZip
	case bytes.HasPrefix(h, []byte("Rar!\x1a\x07\x00")), bytes.HasPrefix(h, []byte("Rar!\x1a\x07\x01\x00")):
		return RAR
	case bytes.HasPrefix(h, []byte{0x1f, 0x8b, 8}):
		return Gzip
	case len(h) >= 10 && bytes.HasPrefix(h, []byte("BZh")) && h[3] >= '1' && h[3] <= '9' &&
		(bytes.Equal(h[4:10], []byte{0x31, 0x41, 0x59, 0x26, 0x53, 0x59}) || bytes.Equal(h[4:10], []byte{0x17, 0x72, 0x45, 0x38, 0x50, 0x90})):
		return Bzip2
	case bytes.HasPrefix(h, []byte("\xfd7zXZ\x00")):
		return XZ
	case bytes.HasPrefix(h, []byte("MSCF\x00\x00\x00\x00")):
		return CAB
	case bytes.HasPrefix(h, []byte("ITSF\x03\x00\x00\x00")):
		return CHM
	case len(h) >= 11 && h[0] == 0x60 && h[1] == 0xea && h[10] == 2: // ARJ main header, file type 2
		return ARJ
	case len(h) >= 7 && h[2] == '-' && h[3] == 'l' && (h[4] == 'h' || h[4] == 'z') && h[6] == '-':
		return LZH
	case bytes.HasPrefix(h, []byte("070701")), bytes.HasPrefix(h, []byte("070702")),
		bytes.HasPrefix(h, []byte("070707")), bytes.HasPrefix(h, []byte{0xc7, 0x71}), bytes.HasPrefix(h, []byte{0x71, 0xc7}):
		return CPIO
	case bytes.HasPrefix(h, []byte("MSWIM\x00\x00\x00")):
		return WIM
	case bytes.HasPrefix(h, []byte("vhdxfile")):
		return VHDX
	case bytes.HasPrefix(h, []byte("conectix")):
		return VHD
	case bytes.HasPrefix(h, []byte("SZDD\x88\xf0\x27\x33")):
		return MSLZ
	case len(h) >= 14 && bytes.Equal(h[7:14], []byte("**ACE**")):
		return ACE
	case bytes.HasPrefix(h, []byte("ALZ\x01")):
		return ALZ
	case bytes.HasPrefix(h, []byte("EGGA")):
		return EGG
	case len(h) >= 24 && bytes.HasPrefix(h, []byte("ZOO ")) && binary.LittleEndian.Uint32(h[20:24]) == 0xfdc4a7dc:
		return ZOO
	case bytes.HasPrefix(h, []byte("SIT!")), bytes.HasPrefix(h, []byte("StuffIt (c)")),
		len(h) >= 84 && bytes.Equal(h[80:84], []byte("SIT!")):
		return StuffIt
	}
	return ""
}

// sniffVolume looks for ISO 9660 and UDF volume structure descriptors in
// the volume recognition sequence at 32 KiB (ECMA-119 §6.2, ECMA-167 2/8.3).
func sniffVolume(ra io.ReaderAt, size int64) Format {
	iso, udf := false, false
	for i := int64(0); i < 16; i++ {
		d := readHead(ra, size, 0x8000+i*2048, 6)
		if len(d) < 6 {
			break
		}
		switch string(d[1:6]) {
		case "CD001":
			iso = true
		case "NSR02", "NSR03":
			udf = true
		}
		// Other identifiers (BEA01, TEA01, BOOT2, an unknown one) are
		// passed over, as 7z does and as attach's type sniffing does:
		// the two must agree, or a typed image goes unopened.
	}
	switch {
	case iso:
		return ISO
	case udf:
		return UDF
	}
	return ""
}

// isTarHeader checks a tar header block by its checksum (POSIX.1-1988
// §10.1.1.1; also V7 archives without the "ustar" magic).
func isTarHeader(h []byte) bool {
	if len(h) < 512 {
		return false
	}
	if string(h[257:262]) == "ustar" {
		return true
	}
	want, ok := parseOctal(h[148:156])
	if !ok {
		return false
	}
	var sum int64
	for i, c := range h[:512] {
		if i >= 148 && i < 156 {
			c = ' '
		}
		sum += int64(c)
	}
	return sum == want && h[0] != 0
}

// isFATBoot recognises a FAT boot sector (a jump, a sane BIOS parameter
// block and the 0x55AA signature).
func isFATBoot(h []byte) bool {
	if len(h) < 512 || h[510] != 0x55 || h[511] != 0xaa || (h[0] != 0xeb && h[0] != 0xe9) {
		return false
	}
	bps := binary.LittleEndian.Uint16(h[11:])
	spc := h[13]
	if bps < 512 || bps > 4096 || bps&(bps-1) != 0 || spc == 0 || spc&(spc-1) != 0 || h[16] == 0 {
		return false
	}
	return bytes.HasPrefix(h[0x36:], []byte("FAT")) || bytes.HasPrefix(h[0x52:], []byte("FAT32"))
}

// hasVHDFooter finds the "conectix" cookie of a fixed VHD at the end.
func hasVHDFooter(ra io.ReaderAt, size int64) bool {
	if size < 512 {
		return false
	}
	return bytes.Equal(readHead(ra, size, size-512, 8), []byte("conectix"))
}

// findEOCD returns the offset of the zip end-of-central-directory record
// within the last 64 KiB + 22 bytes, or -1 (APPNOTE 4.3.16).
func findEOCD(ra io.ReaderAt, size int64) int64 {
	const eocdLen = 22
	n := min(size, 65535+eocdLen)
	if n < eocdLen {
		return -1
	}
	tail := readHead(ra, size, size-n, int(n))
	for i := len(tail) - eocdLen; i >= 0; i-- {
		if tail[i] == 'P' && tail[i+1] == 'K' && tail[i+2] == 5 && tail[i+3] == 6 {
			commentLen := int(binary.LittleEndian.Uint16(tail[i+20:]))
			if i+eocdLen+commentLen <= len(tail) {
				return size - n + int64(i)
			}
		}
	}
	return -1
}

// parseOctal parses a tar numeric field: optional leading spaces, octal
// digits, then a space or NUL terminator.
func parseOctal(b []byte) (int64, bool) {
	b = bytes.TrimLeft(b, " ")
	var v int64
	n := 0
	for _, c := range b {
		if c < '0' || c > '7' {
			if c != ' ' && c != 0 {
				return 0, false
			}
			break
		}
		v = v*8 + int64(c-'0')
		n++
	}
	return v, n > 0
}
