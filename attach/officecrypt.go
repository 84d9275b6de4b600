package attach

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"io"
	"unicode/utf16"
)

// Password-protected Office documents (a .docx/.xlsx/.pptx saved with
// "Encrypt with Password") are an OLE compound file holding the OOXML
// package encrypted (MS-OFFCRYPTO §2.3.4): the EncryptionInfo stream
// says how the key is made from the password, EncryptedPackage holds the
// zip. Both schemes Office and LibreOffice write are read here: Agile
// (Office 2010 and later, LibreOffice: AES with SHA-512 and 100,000
// hash rounds) and Standard (Office 2007: AES-128, SHA-1, 50,000).
// RC4 CryptoAPI (.doc/.xls of Office 97–2003) is not: those stay
// encrypted_unscannable. No Go library reads either scheme; this is
// written from the specification and tested on LibreOffice's files.

// officePassword is tried on every encrypted Office document: Excel
// opens a workbook encrypted with it without asking (its "read-only
// recommended" protection), which malware uses to hide macros from
// scanners that do not know it.
const officePassword = "VelvetSweatshop"

// maxSpinCount bounds the hash rounds a document may ask for per
// password (Office writes 100,000), and spinBudget the rounds spent on
// one document over all its candidate passwords (about 1.5 s of SHA-512
// here): with Office's count, 40 candidates.
const (
	maxSpinCount = 1_000_000
	spinBudget   = 4_000_000
)

// Attempts is how many passwords the budget allows on this document.
func (c *officeCrypt) Attempts() int {
	spin := 50000
	if c.agile {
		spin = c.spin
	}
	return max(1, spinBudget/max(spin, 1))
}

var errOfficeCrypt = errors.New("unsupported or damaged encryption header")

// officeCrypt is a parsed EncryptionInfo.
type officeCrypt struct {
	agile bool
	// Agile: the password key encryptor, and the package key's data.
	spin                                   int
	pwHash, dataHash                       func() hash.Hash
	pwSalt, dataSalt                       []byte
	pwKeyBits, dataKeyBits, dataBlock      int
	verifierInput, verifierValue, keyValue []byte
	// Standard.
	keyBits                      int
	salt, verifier, verifierHash []byte
}

// Scheme names the encryption for findings.
func (c *officeCrypt) Scheme() string {
	if c.agile {
		return "agile"
	}
	return "standard"
}

type agileXML struct {
	KeyData struct {
		SaltValue       string `xml:"saltValue,attr"`
		BlockSize       int    `xml:"blockSize,attr"`
		KeyBits         int    `xml:"keyBits,attr"`
		CipherAlgorithm string `xml:"cipherAlgorithm,attr"`
		CipherChaining  string `xml:"cipherChaining,attr"`
		HashAlgorithm   string `xml:"hashAlgorithm,attr"`
	} `xml:"keyData"`
	Encryptors []struct {
		URI string `xml:"uri,attr"`
		Key *struct {
			SpinCount                  int    `xml:"spinCount,attr"`
			SaltValue                  string `xml:"saltValue,attr"`
			KeyBits                    int    `xml:"keyBits,attr"`
			BlockSize                  int    `xml:"blockSize,attr"`
			CipherAlgorithm            string `xml:"cipherAlgorithm,attr"`
			CipherChaining             string `xml:"cipherChaining,attr"`
			HashAlgorithm              string `xml:"hashAlgorithm,attr"`
			EncryptedVerifierHashInput string `xml:"encryptedVerifierHashInput,attr"`
			EncryptedVerifierHashValue string `xml:"encryptedVerifierHashValue,attr"`
			EncryptedKeyValue          string `xml:"encryptedKeyValue,attr"`
		} `xml:"encryptedKey"`
	} `xml:"keyEncryptors>keyEncryptor"`
}

func hashByName(n string) func() hash.Hash {
	switch n {
	case "SHA1", "SHA-1":
		return sha1.New
	case "SHA256", "SHA-256":
		return sha256.New
	case "SHA384", "SHA-384":
		return sha512.New384
	case "SHA512", "SHA-512":
		return sha512.New
	}
	return nil
}

// parseOfficeCrypt reads an EncryptionInfo stream.
func parseOfficeCrypt(info []byte) (*officeCrypt, error) {
	if len(info) < 8 {
		return nil, errOfficeCrypt
	}
	major, minor := binary.LittleEndian.Uint16(info), binary.LittleEndian.Uint16(info[2:])
	switch {
	case major == 4 && minor == 4:
		return parseAgile(info[8:])
	case (major == 2 || major == 3 || major == 4) && minor == 2:
		return parseStandard(info[8:])
	}
	return nil, fmt.Errorf("encryption version %d.%d not supported", major, minor)
}

func parseAgile(b []byte) (*officeCrypt, error) {
	var x agileXML
	if err := xml.Unmarshal(b, &x); err != nil {
		return nil, errOfficeCrypt
	}
	kd := x.KeyData
	c := &officeCrypt{agile: true, dataHash: hashByName(kd.HashAlgorithm), dataKeyBits: kd.KeyBits, dataBlock: kd.BlockSize}
	c.dataSalt, _ = base64.StdEncoding.DecodeString(kd.SaltValue)
	if kd.CipherAlgorithm != "AES" || kd.CipherChaining != "ChainingModeCBC" || c.dataHash == nil ||
		!validAESBits(kd.KeyBits) || kd.BlockSize != aes.BlockSize || len(c.dataSalt) == 0 {
		return nil, fmt.Errorf("package cipher %s/%s/%s/%d not supported", kd.CipherAlgorithm, kd.CipherChaining, kd.HashAlgorithm, kd.KeyBits)
	}
	for _, e := range x.Encryptors {
		k := e.Key
		if k == nil || e.URI != "http://schemas.microsoft.com/office/2006/keyEncryptor/password" {
			continue // a certificate encryptor: no password opens it
		}
		c.pwHash = hashByName(k.HashAlgorithm)
		if k.CipherAlgorithm != "AES" || k.CipherChaining != "ChainingModeCBC" || c.pwHash == nil ||
			!validAESBits(k.KeyBits) || k.BlockSize != aes.BlockSize || k.SpinCount < 0 || k.SpinCount > maxSpinCount {
			return nil, fmt.Errorf("password key %s/%s/%d, %d rounds not supported", k.CipherAlgorithm, k.HashAlgorithm, k.KeyBits, k.SpinCount)
		}
		c.spin, c.pwKeyBits = k.SpinCount, k.KeyBits
		var err1, err2, err3, err4 error
		c.pwSalt, err1 = base64.StdEncoding.DecodeString(k.SaltValue)
		c.verifierInput, err2 = base64.StdEncoding.DecodeString(k.EncryptedVerifierHashInput)
		c.verifierValue, err3 = base64.StdEncoding.DecodeString(k.EncryptedVerifierHashValue)
		c.keyValue, err4 = base64.StdEncoding.DecodeString(k.EncryptedKeyValue)
		if err := errors.Join(err1, err2, err3, err4); err != nil || len(c.pwSalt) == 0 ||
			len(c.verifierInput)%aes.BlockSize != 0 || len(c.verifierValue)%aes.BlockSize != 0 ||
			len(c.keyValue)%aes.BlockSize != 0 || len(c.keyValue)*8 < c.dataKeyBits {
			return nil, errOfficeCrypt
		}
		return c, nil
	}
	return nil, errors.New("no password key encryptor")
}

func validAESBits(n int) bool { return n == 128 || n == 192 || n == 256 }

func parseStandard(b []byte) (*officeCrypt, error) {
	if len(b) < 4 {
		return nil, errOfficeCrypt
	}
	hsize := int(binary.LittleEndian.Uint32(b))
	if hsize < 32 || 4+hsize > len(b) {
		return nil, errOfficeCrypt
	}
	h := b[4 : 4+hsize]
	alg, keyBits := binary.LittleEndian.Uint32(h[8:]), int(binary.LittleEndian.Uint32(h[16:]))
	const algAES128, algAES192, algAES256 = 0x660E, 0x660F, 0x6610
	if alg != algAES128 && alg != algAES192 && alg != algAES256 || !validAESBits(keyBits) {
		return nil, fmt.Errorf("standard encryption algorithm %#x (%d bits) not supported", alg, keyBits)
	}
	v := b[4+hsize:]
	if len(v) < 4+16+16+4+32 || binary.LittleEndian.Uint32(v) != 16 {
		return nil, errOfficeCrypt
	}
	return &officeCrypt{keyBits: keyBits, salt: v[4:20], verifier: v[20:36], verifierHash: v[40:72]}, nil
}

func passwordUTF16(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return b
}

// iterate is MS-OFFCRYPTO's password hash: H(salt‖password), then spin
// rounds of H(i‖previous).
func iterate(newHash func() hash.Hash, salt []byte, password string, spin int) []byte {
	h := newHash()
	h.Write(salt)
	h.Write(passwordUTF16(password))
	sum := h.Sum(nil)
	var i4 [4]byte
	buf := make([]byte, 0, 4+len(sum))
	for i := 0; i < spin; i++ {
		binary.LittleEndian.PutUint32(i4[:], uint32(i))
		h.Reset()
		buf = append(append(buf[:0], i4[:]...), sum...)
		h.Write(buf)
		sum = h.Sum(sum[:0])
	}
	return sum
}

// Key reports whether password opens the document, and the package key.
func (c *officeCrypt) Key(password string) ([]byte, bool) {
	if len([]rune(password)) > 255 {
		return nil, false
	}
	if c.agile {
		return c.agileKey(password)
	}
	return c.standardKey(password)
}

var (
	blockVerifierInput = []byte{0xfe, 0xa7, 0xd2, 0x76, 0x3b, 0x4b, 0x9e, 0x79}
	blockVerifierValue = []byte{0xd7, 0xaa, 0x0f, 0x6d, 0x30, 0x61, 0x34, 0x4e}
	blockKeyValue      = []byte{0x14, 0x6e, 0x0b, 0xe7, 0xab, 0xac, 0xd0, 0xd6}
)

func (c *officeCrypt) agileKey(password string) ([]byte, bool) {
	base := iterate(c.pwHash, c.pwSalt, password, c.spin)
	derive := func(block []byte) []byte {
		h := c.pwHash()
		h.Write(base)
		h.Write(block)
		return fitKey(h.Sum(nil), c.pwKeyBits/8)
	}
	iv := fitKey(c.pwSalt, aes.BlockSize)
	input, err1 := cbcDecrypt(derive(blockVerifierInput), iv, c.verifierInput)
	value, err2 := cbcDecrypt(derive(blockVerifierValue), iv, c.verifierValue)
	if err1 != nil || err2 != nil {
		return nil, false
	}
	h := c.pwHash()
	h.Write(input[:min(len(input), len(c.pwSalt))])
	want := h.Sum(nil)
	if len(value) < len(want) || subtle.ConstantTimeCompare(value[:len(want)], want) != 1 {
		return nil, false
	}
	key, err := cbcDecrypt(derive(blockKeyValue), iv, c.keyValue)
	if err != nil {
		return nil, false
	}
	return key[:c.dataKeyBits/8], true
}

// fitKey truncates b to n bytes or pads it with 0x36 (MS-OFFCRYPTO
// §2.3.4.11).
func fitKey(b []byte, n int) []byte {
	if len(b) >= n {
		return b[:n]
	}
	return append(append([]byte(nil), b...), bytes.Repeat([]byte{0x36}, n-len(b))...)
}

func cbcDecrypt(key, iv, data []byte) ([]byte, error) {
	blk, err := aes.NewCipher(key)
	if err != nil || len(data)%aes.BlockSize != 0 || len(iv) != aes.BlockSize {
		return nil, errOfficeCrypt
	}
	out := make([]byte, len(data))
	cipher.NewCBCDecrypter(blk, iv).CryptBlocks(out, data)
	return out, nil
}

func ecbDecrypt(blk cipher.Block, dst, src []byte) {
	for i := 0; i+aes.BlockSize <= len(src); i += aes.BlockSize {
		blk.Decrypt(dst[i:], src[i:i+aes.BlockSize])
	}
}

func (c *officeCrypt) standardKey(password string) ([]byte, bool) {
	h := iterate(sha1.New, c.salt, password, 50000)
	s := sha1.New()
	s.Write(h)
	s.Write([]byte{0, 0, 0, 0}) // block 0
	final := s.Sum(nil)
	// CryptDeriveKey: SHA-1 of the hash XORed into 64 bytes of 0x36 and
	// of 0x5c, concatenated.
	x := func(pad byte) []byte {
		buf := bytes.Repeat([]byte{pad}, 64)
		for i, b := range final {
			buf[i] ^= b
		}
		sum := sha1.Sum(buf)
		return sum[:]
	}
	key := append(x(0x36), x(0x5c)...)[:c.keyBits/8]
	blk, err := aes.NewCipher(key)
	if err != nil {
		return nil, false
	}
	verifier := make([]byte, 16)
	ecbDecrypt(blk, verifier, c.verifier)
	vh := make([]byte, len(c.verifierHash))
	ecbDecrypt(blk, vh, c.verifierHash)
	want := sha1.Sum(verifier)
	if subtle.ConstantTimeCompare(vh[:sha1.Size], want[:]) != 1 {
		return nil, false
	}
	return key, true
}

// Decrypt returns a reader of the decrypted package (a zip) from the
// EncryptedPackage stream, read in 4096-byte segments.
func (c *officeCrypt) Decrypt(key []byte, pkg io.ReaderAt, pkgSize int64) (io.Reader, int64, error) {
	var sz [8]byte
	if _, err := pkg.ReadAt(sz[:], 0); err != nil {
		return nil, 0, errOfficeCrypt
	}
	size := int64(binary.LittleEndian.Uint64(sz[:]))
	if size < 0 || size > pkgSize-8 {
		return nil, 0, fmt.Errorf("package size %d beyond its stream (%d bytes)", size, pkgSize-8)
	}
	blk, err := aes.NewCipher(key)
	if err != nil {
		return nil, 0, errOfficeCrypt
	}
	return &packageReader{c: c, blk: blk, src: io.NewSectionReader(pkg, 8, pkgSize-8), left: size}, size, nil
}

type packageReader struct {
	c    *officeCrypt
	blk  cipher.Block
	src  *io.SectionReader
	seg  uint32
	buf  []byte
	out  []byte
	left int64
}

const segmentSize = 4096

func (p *packageReader) Read(b []byte) (int, error) {
	for len(p.out) == 0 {
		if p.left <= 0 {
			return 0, io.EOF
		}
		if p.buf == nil {
			p.buf = make([]byte, segmentSize)
		}
		n, err := io.ReadFull(p.src, p.buf)
		if n == 0 {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		n -= n % aes.BlockSize
		if n == 0 {
			return 0, io.ErrUnexpectedEOF
		}
		seg := p.buf[:n]
		if p.c.agile {
			h := p.c.dataHash()
			h.Write(p.c.dataSalt)
			var i4 [4]byte
			binary.LittleEndian.PutUint32(i4[:], p.seg)
			h.Write(i4[:])
			iv := fitKey(h.Sum(nil), p.c.dataBlock)
			cipher.NewCBCDecrypter(p.blk, iv).CryptBlocks(seg, seg)
		} else {
			ecbDecrypt(p.blk, seg, seg)
		}
		p.seg++
		p.out = seg[:min(int64(len(seg)), p.left)]
		p.left -= int64(len(p.out))
	}
	n := copy(b, p.out)
	p.out = p.out[n:]
	return n, nil
}
