package archive

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"hash/crc32"
	"testing"
	"unicode/utf16"
)

// No RAR creator exists in Debian main, so the tests build RAR archives
// here, from the RAR 5.0 technote and the RAR 2.9-4.x technote. Content is
// stored (method 0): there is no RAR compressor to make anything else.

// rarFile is one member of a built archive.
type rarFile struct {
	name string
	data []byte
	dir  bool
}

// rar5Opts chooses what the RAR 5 builder encrypts.
type rar5Opts struct {
	password       string // "" for none
	encryptHeaders bool   // -hp: block headers encrypted too
	solid          bool
	kdfLog         byte // log2 of the PBKDF2 iterations; 0 is 15 (WinRAR's default)
}

// rar5Keys derives the RAR 5 keys: PBKDF2-HMAC-SHA256 with 2^kdfLog, +16
// and +32 iterations give the data key, the hash key and the check value.
func rar5Keys(pw string, salt []byte, kdfLog byte) (key []byte, check []byte) {
	n := 1 << kdfLog
	key, _ = pbkdf2.Key(sha256.New, pw, salt, n, 32)
	v, _ := pbkdf2.Key(sha256.New, pw, salt, n+32, 32)
	pc := make([]byte, 8)
	for i, b := range v {
		pc[i%8] ^= b
	}
	sum := sha256.Sum256(pc)
	return key, append(pc, sum[:4]...)
}

func vint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

// rar5Block frames one block: CRC32, header size, header, then data.
func rar5Block(typ, flags uint64, fields, extra, data []byte, headerKey []byte, iv []byte) []byte {
	var h []byte
	h = vint(h, typ)
	if len(extra) > 0 {
		flags |= 0x1
	}
	if data != nil {
		flags |= 0x2
	}
	h = vint(h, flags)
	if len(extra) > 0 {
		h = vint(h, uint64(len(extra)))
	}
	if data != nil {
		h = vint(h, uint64(len(data)))
	}
	h = append(h, fields...)
	h = append(h, extra...)
	sized := vint(nil, uint64(len(h)))
	sized = append(sized, h...)
	var out []byte
	out = binary.LittleEndian.AppendUint32(out, crc32.ChecksumIEEE(sized))
	out = append(out, sized...)
	if headerKey != nil {
		out = append(out, make([]byte, (16-len(out)%16)%16)...)
		block, _ := aes.NewCipher(headerKey)
		enc := make([]byte, len(out))
		cipher.NewCBCEncrypter(block, iv).CryptBlocks(enc, out)
		out = append(append([]byte{}, iv...), enc...)
	}
	return append(out, data...)
}

// buildRAR5 writes a RAR 5 archive of stored files.
func buildRAR5(t testing.TB, files []rarFile, o rar5Opts) []byte {
	t.Helper()
	if o.kdfLog == 0 {
		o.kdfLog = 15
	}
	salt := bytes.Repeat([]byte{0x5a}, 16)
	iv := bytes.Repeat([]byte{0x17}, 16)
	var key, check, hkey []byte
	if o.password != "" {
		key, check = rar5Keys(o.password, salt, o.kdfLog)
	}
	out := []byte("Rar!\x1a\x07\x01\x00")
	if o.encryptHeaders {
		var f []byte
		f = vint(f, 0) // version
		f = vint(f, 1) // check present
		f = append(f, o.kdfLog)
		f = append(f, salt...)
		f = append(f, check...)
		out = append(out, rar5Block(4, 0, f, nil, nil, nil, nil)...)
		hkey = key
	}
	var arcFlags uint64
	if o.solid {
		arcFlags |= 0x4
	}
	out = append(out, rar5Block(1, 0, vint(nil, arcFlags), nil, nil, hkey, iv)...)
	for _, f := range files {
		var fields []byte
		fflags := uint64(0x4) // CRC32 present
		if f.dir {
			fflags = 0x1
		}
		fields = vint(fields, fflags)
		fields = vint(fields, uint64(len(f.data)))
		fields = vint(fields, 0x20) // attributes
		if !f.dir {
			fields = binary.LittleEndian.AppendUint32(fields, crc32.ChecksumIEEE(f.data))
		}
		fields = vint(fields, 0) // compression: store
		fields = vint(fields, 1) // host OS: Unix
		fields = vint(fields, uint64(len(f.name)))
		fields = append(fields, f.name...)
		data := f.data
		var extra []byte
		if o.password != "" && !f.dir {
			var rec []byte
			rec = vint(rec, 1) // type: encryption
			rec = vint(rec, 0) // version
			rec = vint(rec, 1) // check present
			rec = append(rec, o.kdfLog)
			rec = append(rec, salt...)
			rec = append(rec, iv...)
			rec = append(rec, check...)
			extra = append(vint(nil, uint64(len(rec))), rec...)
			padded := append(append([]byte{}, f.data...), make([]byte, (16-len(f.data)%16)%16)...)
			block, _ := aes.NewCipher(key)
			data = make([]byte, len(padded))
			cipher.NewCBCEncrypter(block, iv).CryptBlocks(data, padded)
		}
		if f.dir {
			data = nil
		} else if data == nil {
			data = []byte{}
		}
		out = append(out, rar5Block(2, 0, fields, extra, data, hkey, iv)...)
	}
	return append(out, rar5Block(5, 0, vint(nil, 0), nil, nil, hkey, iv)...)
}

// buildRAR4 writes a RAR 2.9-4.x archive of stored, unencrypted files.
func buildRAR4(t testing.TB, files []rarFile, solid bool) []byte {
	t.Helper()
	return buildRAR4Enc(t, files, solid, "", false)
}

// rar3Keys derives the RAR 3.x AES-128 key and IV: SHA-1 over 2^18 rounds
// of the UTF-16LE password, the salt and a 3-byte counter; every 2^14th
// round gives an IV byte; the key's 32-bit words are byte-swapped.
func rar3Keys(pw string, salt []byte) (key, iv []byte) {
	var p []byte
	for _, u := range utf16.Encode([]rune(pw)) {
		p = append(p, byte(u), byte(u>>8))
	}
	p = append(p, salt...)
	h := sha1.New()
	iv = make([]byte, 16)
	const rounds = 0x40000
	for i := 0; i < rounds; i++ {
		h.Write(p)
		h.Write([]byte{byte(i), byte(i >> 8), byte(i >> 16)})
		if i%(rounds/16) == 0 {
			iv[i/(rounds/16)] = h.Sum(nil)[19]
		}
	}
	key = h.Sum(nil)[:16]
	for k := key; len(k) >= 4; k = k[4:] {
		k[0], k[1], k[2], k[3] = k[3], k[2], k[1], k[0]
	}
	return key, iv
}

// buildRAR4Enc writes a RAR 2.9-4.x archive of stored files, with the
// content AES-128 encrypted when pw is set, and the headers too with
// encryptHeaders (rar -hp).
func buildRAR4Enc(t testing.TB, files []rarFile, solid bool, pw string, encryptHeaders bool) []byte {
	t.Helper()
	le := binary.LittleEndian
	salt := []byte("saltsalt")
	var key, iv []byte
	if pw != "" {
		key, iv = rar3Keys(pw, salt)
	}
	block := func(typ byte, flags uint16, body, data []byte) []byte {
		h := []byte{typ}
		h = le.AppendUint16(h, flags)
		h = le.AppendUint16(h, uint16(7+len(body)))
		h = append(h, body...)
		out := le.AppendUint16(nil, uint16(crc32.ChecksumIEEE(h)))
		out = append(out, h...)
		if encryptHeaders && typ != 0x73 {
			out = append(out, make([]byte, (16-len(out)%16)%16)...)
			c, _ := aes.NewCipher(key)
			enc := make([]byte, len(out))
			cipher.NewCBCEncrypter(c, iv).CryptBlocks(enc, out)
			out = append(append([]byte{}, salt...), enc...)
		}
		return append(out, data...)
	}
	out := []byte("Rar!\x1a\x07\x00")
	var mflags uint16
	if solid {
		mflags |= 0x8
	}
	if encryptHeaders {
		mflags |= 0x80
	}
	out = append(out, block(0x73, mflags, make([]byte, 6), nil)...)
	for _, f := range files {
		data := f.data
		flags := uint16(0x8000)
		if pw != "" && !f.dir {
			flags |= 0x04 | 0x400
			padded := append(append([]byte{}, f.data...), make([]byte, (16-len(f.data)%16)%16)...)
			c, _ := aes.NewCipher(key)
			data = make([]byte, len(padded))
			cipher.NewCBCEncrypter(c, iv).CryptBlocks(data, padded)
		}
		var b []byte
		b = le.AppendUint32(b, uint32(len(data)))   // packed
		b = le.AppendUint32(b, uint32(len(f.data))) // unpacked
		b = append(b, 3)                            // host OS: Unix
		b = le.AppendUint32(b, crc32.ChecksumIEEE(f.data))
		b = le.AppendUint32(b, 0x5a8e6000) // DOS time 2025-04-14
		b = append(b, 29, 0x30)            // version 2.9, method store
		b = le.AppendUint16(b, uint16(len(f.name)))
		attr := uint32(0o100644)
		if f.dir {
			attr, flags = 0o40755, flags|0xe0
		}
		b = le.AppendUint32(b, attr)
		b = append(b, f.name...)
		if flags&0x400 != 0 {
			b = append(b, salt...)
		}
		out = append(out, block(0x74, flags, b, data)...)
	}
	return append(out, block(0x7b, 0x4000, nil, nil)...)
}
