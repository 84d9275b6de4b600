package archive

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
)

// aesParams is the WinZip AES extra field 0x9901 (AE-1/AE-2).
type aesParams struct {
	version  int    // 1: CRC checked; 2: CRC not stored, the MAC is the check
	strength byte   // 1, 2, 3: AES-128, -192, -256
	method   uint16 // the real compression method
}

func (a *aesParams) name() string {
	if a == nil {
		return "zipcrypto"
	}
	return fmt.Sprintf("aes%d", 64+64*int(a.strength))
}

func (a *aesParams) keyLen() int  { return 8 + 8*int(a.strength) }
func (a *aesParams) saltLen() int { return 4 + 4*int(a.strength) }

// aesOverhead is the salt, the 2-byte password verifier and the 10-byte
// MAC around WinZip AES data.
func (a *aesParams) overhead() int64 { return int64(a.saltLen()) + 2 + 10 }

// encryption returns the member's encryption: nil params for traditional
// PKWARE encryption (ZipCrypto), or the WinZip AES parameters, and the
// real compression method.
func (m *zipMember) encryption() (*aesParams, uint16, error) {
	if m.flags&0x40 != 0 {
		return nil, 0, errors.New("PKWARE strong encryption")
	}
	if m.method != zipAES {
		return nil, m.method, nil
	}
	x := findExtra(m.extra, 0x9901)
	if len(x) < 7 || x[2] != 'A' || x[3] != 'E' {
		return nil, 0, errors.New("WinZip AES without its 0x9901 extra field")
	}
	a := &aesParams{version: int(binary.LittleEndian.Uint16(x)), strength: x[4], method: binary.LittleEndian.Uint16(x[5:])}
	if a.strength < 1 || a.strength > 3 || (a.version != 1 && a.version != 2) {
		return nil, 0, fmt.Errorf("WinZip AES version %d strength %d", a.version, a.strength)
	}
	return a, a.method, nil
}

// zipKey is a candidate password's key material for one member, after it
// passed the member's quick verifier.
type zipKey interface {
	// decrypt returns the plaintext (still compressed) of the member's raw
	// bytes.
	decrypt(raw *io.SectionReader) (io.Reader, error)
}

// unlock finds the candidate that opens member m: the cheap verifier first
// (ZipCrypto check byte, AES password verifier), then, for a candidate not
// yet proven on this archive, a bounded trial decode so that the 1-in-256
// (ZipCrypto) or 1-in-65536 (AES) false accepts do not deliver garbage.
func (z *zipWalk) unlock(m *zipMember, aes *aesParams, method uint16) (zipKey, int, error) {
	w := z.w
	minLen := int64(12)
	if aes != nil {
		minLen = aes.overhead()
	}
	if m.csize < minLen || m.csize > w.size-m.dataOff {
		w.problem(ProblemTruncated, m.name, fmt.Sprintf("encrypted data of %d bytes is too short or past the end", m.csize))
		return nil, -1, nil
	}
	head := readHead(w.ra, w.size, m.dataOff, int(minLen))
	var key zipKey
	nearMiss := false
	test := func(pw string, remembered bool) (bool, error) {
		var k zipKey
		if aes != nil {
			k = aesKeyFor(aes, head, pw, m.csize)
		} else {
			k = zipCryptoKeyFor(m, head, pw)
		}
		if k == nil {
			return false, nil
		}
		if !remembered && !z.confirm(m, method, aes, k) {
			nearMiss = true
			return false, nil
		}
		key = k
		return true, nil
	}
	i, err := w.unlock(test)
	if key == nil && nearMiss && err == nil {
		w.problem(ProblemChecksum, m.name, "a candidate passed the password check but the content did not verify")
	}
	return key, i, err
}

// confirmBytes is how much output a trial decode produces before a
// candidate is accepted.
const confirmBytes = 1 << 20

// confirm decodes up to confirmBytes of the member with key k and reports
// whether that went without error. Stored members have no structure for
// a wrong key to break: a stored AES member's whole MAC is checked first
// (up to 64 MiB; the MAC is checked again at the end of every read), and
// stored ZipCrypto members are read to their CRC, up to MaxEntryBytes. A
// compressed member's trial decode fails on a wrong key's garbage.
func (z *zipWalk) confirm(m *zipMember, method uint16, aes *aesParams, k zipKey) bool {
	if ak, ok := k.(*aesKey); ok && method == zipStore && m.csize <= 64<<20 {
		if !ak.macOK(m.section(z.w)) {
			return false
		}
	}
	r, err := z.content(m, method, aes, k)
	if err != nil {
		return false
	}
	n := int64(confirmBytes)
	if _, zc := k.(*zcKey); zc && method == zipStore {
		// Stored ZipCrypto data has no structure to break: only the CRC
		// at the end tells a wrong key (1 in 256 pass the check byte).
		n = max(n, z.w.entryCap(m.usize)+1)
	}
	_, err = io.CopyN(io.Discard, r, n)
	return err == nil || errors.Is(err, io.EOF)
}

// zipCrypto is the traditional PKWARE stream cipher (APPNOTE 6.1).
type zipCrypto struct{ k0, k1, k2 uint32 }

func newZipCrypto(pw string) zipCrypto {
	c := zipCrypto{0x12345678, 0x23456789, 0x34567890}
	for i := 0; i < len(pw); i++ {
		c.update(pw[i])
	}
	return c
}

func (c *zipCrypto) update(b byte) {
	c.k0 = crc32.IEEETable[byte(c.k0)^b] ^ (c.k0 >> 8)
	c.k1 = (c.k1+(c.k0&0xff))*134775813 + 1
	c.k2 = crc32.IEEETable[byte(c.k2)^byte(c.k1>>24)] ^ (c.k2 >> 8)
}

func (c *zipCrypto) decrypt(p []byte) {
	for i, b := range p {
		t := c.k2 | 2
		b ^= byte((t * (t ^ 1)) >> 8)
		c.update(b)
		p[i] = b
	}
}

// zcKey is the cipher state after the 12-byte encryption header.
type zcKey struct{ c zipCrypto }

// zipCryptoKeyFor decrypts the 12-byte header with pw and checks its last
// byte: the CRC's high byte, or with flag bit 3 the DOS time's high byte
// (APPNOTE 6.1.6). Either is accepted with bit 3, since writers differ.
func zipCryptoKeyFor(m *zipMember, head []byte, pw string) zipKey {
	c := newZipCrypto(pw)
	var h [12]byte
	copy(h[:], head)
	c.decrypt(h[:])
	check := h[11]
	if check == byte(m.crc>>24) || (m.flags&0x8 != 0 && check == byte(m.dosTime>>8)) {
		return &zcKey{c}
	}
	return nil
}

func (k *zcKey) decrypt(raw *io.SectionReader) (io.Reader, error) {
	return &zipCryptoReader{r: io.NewSectionReader(raw, 12, raw.Size()-12), c: k.c}, nil
}

type zipCryptoReader struct {
	r io.Reader
	c zipCrypto
}

func (z *zipCryptoReader) Read(p []byte) (int, error) {
	n, err := z.r.Read(p)
	z.c.decrypt(p[:n])
	return n, err
}

// aesKey is the WinZip AES key material (AE-1/AE-2 spec): PBKDF2-HMAC-SHA1
// with 1000 iterations gives the AES key, the HMAC-SHA1 key and a 2-byte
// password verifier.
type aesKey struct {
	p      *aesParams
	block  cipher.Block
	macKey []byte
	csize  int64
}

// aesIterations is WinZip AES's PBKDF2 iteration count.
const aesIterations = 1000

// pbkdf2SHA1Block is block i (from 1) of PBKDF2-HMAC-SHA1 (RFC 8018
// section 5.2); crypto/pbkdf2 derives only whole prefixes of the key.
func pbkdf2SHA1Block(pw, salt []byte, iter int, i uint32) [sha1.Size]byte {
	prf := hmac.New(sha1.New, pw)
	prf.Write(salt)
	prf.Write(binary.BigEndian.AppendUint32(nil, i))
	u := prf.Sum(make([]byte, 0, sha1.Size))
	var t [sha1.Size]byte
	copy(t[:], u)
	for range iter - 1 {
		prf.Reset()
		prf.Write(u)
		u = prf.Sum(u[:0])
		subtle.XORBytes(t[:], t[:], u)
	}
	return t
}

// aesKeyFor derives the keys for pw and checks the password verifier.
func aesKeyFor(p *aesParams, head []byte, pw string, csize int64) zipKey {
	kl, sl := p.keyLen(), p.saltLen()
	salt := head[:sl]
	// The verifier is two bytes of one PBKDF2 block (the 4th of 4 for
	// AES-256): derive that block alone first, so that a wrong password
	// costs a quarter of the full derivation.
	blk := 2*kl/sha1.Size + 1
	off := 2*kl - (blk-1)*sha1.Size
	if t := pbkdf2SHA1Block([]byte(pw), salt, aesIterations, uint32(blk)); subtle.ConstantTimeCompare(t[off:off+2], head[sl:sl+2]) != 1 {
		return nil
	}
	dk, err := pbkdf2.Key(sha1.New, pw, salt, aesIterations, 2*kl+2)
	if err != nil || subtle.ConstantTimeCompare(dk[2*kl:], head[sl:sl+2]) != 1 {
		return nil
	}
	block, err := aes.NewCipher(dk[:kl])
	if err != nil {
		return nil
	}
	return &aesKey{p: p, block: block, macKey: dk[kl : 2*kl], csize: csize}
}

// payload returns the ciphertext between the verifier and the MAC.
func (k *aesKey) payload(raw *io.SectionReader) (*io.SectionReader, []byte, error) {
	start := int64(k.p.saltLen()) + 2
	n := raw.Size() - k.p.overhead()
	if n < 0 || raw.Size() < k.csize {
		return nil, nil, &kindError{ProblemTruncated, errors.New("aes data shorter than declared")}
	}
	mac := make([]byte, 10)
	if _, err := raw.ReadAt(mac, start+n); err != nil {
		return nil, nil, &kindError{ProblemTruncated, fmt.Errorf("aes mac: %w", err)}
	}
	return io.NewSectionReader(raw, start, n), mac, nil
}

// macOK checks the MAC over the whole ciphertext without decrypting it.
func (k *aesKey) macOK(raw *io.SectionReader) bool {
	ct, mac, err := k.payload(raw)
	if err != nil {
		return false
	}
	h := hmac.New(sha1.New, k.macKey)
	if _, err := io.Copy(h, ct); err != nil {
		return false
	}
	return hmac.Equal(h.Sum(nil)[:10], mac)
}

func (k *aesKey) decrypt(raw *io.SectionReader) (io.Reader, error) {
	ct, mac, err := k.payload(raw)
	if err != nil {
		return nil, err
	}
	return &aesCTRReader{r: ct, block: k.block, mac: hmac.New(sha1.New, k.macKey), want: mac, ctr: 1}, nil
}

// aesCTRReader decrypts WinZip AES: AES in CTR mode with a little-endian
// block counter starting at 1 (crypto/cipher's CTR is big-endian), with
// the HMAC-SHA1 of the ciphertext checked at the end. The keystream is
// made ksBlocks blocks at a time.
type aesCTRReader struct {
	r     io.Reader
	block cipher.Block
	mac   hash.Hash
	want  []byte
	ctr   uint64
	ks    []byte // keystream; ks[pos:] is unused
	pos   int
}

const ksBlocks = 256

func (a *aesCTRReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	a.mac.Write(p[:n])
	for done := 0; done < n; {
		if a.pos == len(a.ks) {
			a.refill()
		}
		k := subtle.XORBytes(p[done:n], p[done:n], a.ks[a.pos:])
		a.pos += k
		done += k
	}
	if errors.Is(err, io.EOF) && !hmac.Equal(a.mac.Sum(nil)[:10], a.want) {
		return n, &kindError{ProblemChecksum, errors.New("aes authentication code mismatch")}
	}
	return n, err
}

// refill encrypts the next ksBlocks counter blocks.
func (a *aesCTRReader) refill() {
	if a.ks == nil {
		a.ks = make([]byte, ksBlocks*aes.BlockSize)
	}
	for i := 0; i < ksBlocks; i++ {
		b := a.ks[i*aes.BlockSize : (i+1)*aes.BlockSize]
		clear(b)
		binary.LittleEndian.PutUint64(b, a.ctr)
		a.block.Encrypt(b, b)
		a.ctr++
	}
	a.pos = 0
}
