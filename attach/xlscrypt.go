package attach

import (
	"crypto/md5"
	"crypto/rc4"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
)

// Excel 97–2003 workbooks saved with a password to open have a FILEPASS
// record and the rest of their Workbook stream encrypted with RC4
// (MS-XLS §2.2.10, MS-OFFCRYPTO §2.3.6 "RC4" and §2.3.5 "RC4 CryptoAPI").
// The stream is encrypted in 1024-byte blocks, each with its own key,
// as if every byte were: record headers, and the few records that stay
// in clear text, are then put back. No Go library reads this; it is
// written from the specifications and tested on LibreOffice's files.

// xlsCrypt is a parsed FILEPASS record.
type xlsCrypt struct {
	cryptoAPI bool
	keyBytes  int // CryptoAPI: key length in bytes (5 for 40-bit)
	salt      []byte
	verifier  []byte // encrypted verifier
	vhash     []byte // encrypted verifier hash
}

var errXLSCrypt = errors.New("unsupported or damaged FILEPASS record")

// parseFilePass reads the data of a FILEPASS record. XOR obfuscation
// (wEncryptionType 0) is not handled.
func parseFilePass(b []byte) (*xlsCrypt, error) {
	if len(b) < 6 || binary.LittleEndian.Uint16(b) != 1 {
		return nil, errors.New("XOR-obfuscated workbook")
	}
	major, minor := binary.LittleEndian.Uint16(b[2:]), binary.LittleEndian.Uint16(b[4:])
	b = b[6:]
	switch {
	case major == 1 && minor == 1:
		if len(b) < 48 {
			return nil, errXLSCrypt
		}
		return &xlsCrypt{salt: b[:16], verifier: b[16:32], vhash: b[32:48]}, nil
	case (major == 2 || major == 3 || major == 4) && minor == 2:
		if len(b) < 8 {
			return nil, errXLSCrypt
		}
		hsize := int(binary.LittleEndian.Uint32(b[4:]))
		if hsize < 32 || 8+hsize > len(b) {
			return nil, errXLSCrypt
		}
		h := b[8 : 8+hsize]
		if alg := binary.LittleEndian.Uint32(h[8:]); alg != 0x6801 && alg != 0 {
			return nil, fmt.Errorf("CryptoAPI algorithm %#x not supported", alg)
		}
		bits := int(binary.LittleEndian.Uint32(h[16:]))
		if bits == 0 {
			bits = 40
		}
		if bits < 40 || bits > 128 || bits%8 != 0 {
			return nil, errXLSCrypt
		}
		v := b[8+hsize:]
		if len(v) < 4+16+16+4+20 || binary.LittleEndian.Uint32(v) != 16 {
			return nil, errXLSCrypt
		}
		return &xlsCrypt{cryptoAPI: true, keyBytes: bits / 8, salt: v[4:20], verifier: v[20:36], vhash: v[40:60]}, nil
	}
	return nil, fmt.Errorf("RC4 encryption version %d.%d not supported", major, minor)
}

// blockKey returns the RC4 key of one 1024-byte block, given the
// password's base hash.
func (c *xlsCrypt) blockKey(base []byte, block uint32) []byte {
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], block)
	if c.cryptoAPI {
		h := sha1.Sum(append(append([]byte(nil), base...), n[:]...))
		key := h[:c.keyBytes]
		if c.keyBytes == 5 {
			// A 40-bit key is used as 128 bits with zeros after it.
			key = append(append([]byte(nil), key...), make([]byte, 11)...)
		}
		return key
	}
	h := md5.Sum(append(append([]byte(nil), base[:5]...), n[:]...))
	return h[:]
}

// base is the per-password hash every block key starts from.
func (c *xlsCrypt) base(password string) []byte {
	pw := passwordUTF16(password)
	if c.cryptoAPI {
		h := sha1.Sum(append(append([]byte(nil), c.salt...), pw...))
		return h[:]
	}
	h0 := md5.Sum(pw)
	buf := make([]byte, 0, 16*21)
	for i := 0; i < 16; i++ {
		buf = append(append(buf, h0[:5]...), c.salt...)
	}
	h1 := md5.Sum(buf)
	return h1[:]
}

// Key reports whether password opens the workbook, and the base hash.
func (c *xlsCrypt) Key(password string) ([]byte, bool) {
	if len([]rune(password)) > 255 {
		return nil, false
	}
	base := c.base(password)
	r, err := rc4.NewCipher(c.blockKey(base, 0))
	if err != nil {
		return nil, false
	}
	v := make([]byte, 16)
	r.XORKeyStream(v, c.verifier)
	vh := make([]byte, len(c.vhash))
	r.XORKeyStream(vh, c.vhash)
	var want []byte
	if c.cryptoAPI {
		s := sha1.Sum(v)
		want = s[:]
	} else {
		s := md5.Sum(v)
		want = s[:]
	}
	return base, subtle.ConstantTimeCompare(vh[:len(want)], want) == 1
}

// xlsClearRecords stay in clear text in an encrypted Workbook stream.
var xlsClearRecords = map[uint16]bool{
	0x0809: true, // BOF
	0x002F: true, // FILEPASS
	0x0194: true, // UsrExcl
	0x0195: true, // FileLock
	0x00E1: true, // InterfaceHdr
	0x0196: true, // RRDInfo
	0x0138: true, // RRDHead
}

// Decrypt returns the Workbook stream in clear text.
func (c *xlsCrypt) Decrypt(base, stream []byte) []byte {
	out := make([]byte, len(stream))
	for off := 0; off < len(stream); off += 1024 {
		end := min(off+1024, len(stream))
		r, err := rc4.NewCipher(c.blockKey(base, uint32(off/1024)))
		if err != nil {
			return nil
		}
		r.XORKeyStream(out[off:end], stream[off:end])
	}
	// Put back what was never encrypted: every record header, the
	// clear-text records, and BoundSheet8's stream position.
	for pos := 0; pos+4 <= len(stream); {
		typ := binary.LittleEndian.Uint16(stream[pos:])
		n := int(binary.LittleEndian.Uint16(stream[pos+2:]))
		copy(out[pos:pos+4], stream[pos:pos+4])
		body := pos + 4
		end := min(body+n, len(stream))
		switch {
		case xlsClearRecords[typ]:
			copy(out[body:end], stream[body:end])
		case typ == 0x0085:
			copy(out[body:min(body+4, end)], stream[body:min(body+4, end)])
		}
		pos = body + n
	}
	return out
}
