package archive

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"unicode/utf16"

	"github.com/ulikunitz/xz/lzma"
)

// Reading and decoding the 7z header: the signature header, the plain or
// encoded (LZMA-compressed, maybe AES-encrypted) next header, with the
// candidate passwords for encrypted names.

// szReadHeader finds the signature header (within the first MiB, as the
// library does, for self-extracting archives), reads the next header and
// checks it, decoding an encoded header with the candidates if needed.
func (w *walker) szReadHeader() (*szInfo, error) {
	start, sh, err := szFindStart(w.ra, w.size)
	if err != nil {
		return nil, err
	}
	off := binary.LittleEndian.Uint64(sh[12:])
	n := binary.LittleEndian.Uint64(sh[20:])
	base := start + szSigLen
	if off > uint64(w.size-base) || n > uint64(w.size-base)-off {
		return nil, &kindError{ProblemTruncated, fmt.Errorf("7z header at %d+%d past the end", off, n)}
	}
	if n > szMaxHeader {
		return nil, &kindError{ProblemTooManyEntries, fmt.Errorf("7z header of %d bytes", n)}
	}
	hdr := make([]byte, n)
	if _, err := w.ra.ReadAt(hdr, base+int64(off)); err != nil {
		return nil, &kindError{ProblemTruncated, err}
	}
	if crc32.ChecksumIEEE(hdr) != binary.LittleEndian.Uint32(sh[28:]) {
		return nil, &kindError{ProblemChecksum, errors.New("7z header crc mismatch")}
	}
	info := &szInfo{start: start, headerPassword: -1}
	if n == 0 {
		return info, nil // an empty archive
	}
	p := w.szParser(hdr)
	id, _ := p.byte()
	switch id {
	case szHeader:
	case szEncodedHeader:
		if hdr, err = w.szDecodeHeader(p, base, info); err != nil || hdr == nil {
			return info, err
		}
		p = w.szParser(hdr)
		if id, _ := p.byte(); id != szHeader {
			return nil, szBad("encoded header is not a header")
		}
	default:
		return nil, szBad("unknown header type 0x%x", id)
	}
	if info.main, info.files, err = p.header(); err != nil {
		return nil, err
	}
	if info.main == nil {
		info.main = &szStreams{}
	}
	return info, nil
}

func (w *walker) szParser(b []byte) *szParser {
	maxCount := uint64(1 << 22)
	if w.lim.MaxEntries >= 0 {
		maxCount = uint64(max(4*w.lim.MaxEntries, 1024))
	}
	return &szParser{b: b, maxCount: maxCount, maxDict: w.lim.MaxDictionary}
}

// szFindStart finds the first signature whose start header CRC matches.
func szFindStart(ra io.ReaderAt, size int64) (int64, []byte, error) {
	sig := []byte("7z\xbc\xaf\x27\x1c")
	for off := int64(0); off < min(size, 1<<20); {
		at := findSignature(ra, min(size, 1<<20+int64(len(sig))), off, sig)
		if at < 0 {
			break
		}
		sh := readHead(ra, size, at, szSigLen)
		if len(sh) == szSigLen && crc32.ChecksumIEEE(sh[12:32]) == binary.LittleEndian.Uint32(sh[8:]) {
			return at, sh, nil
		}
		off = at + 1
	}
	return 0, nil, szBad("no valid signature header")
}

// szDecodeHeader decodes an encoded header, trying the candidates when it
// is encrypted. It returns nil bytes (and no error) when no candidate
// opened it.
func (w *walker) szDecodeHeader(p *szParser, base int64, info *szInfo) ([]byte, error) {
	s, err := p.streams()
	if err != nil {
		return nil, err
	}
	if len(s.folders) != 1 || len(s.folders[0].packedIn) != 1 {
		return nil, szBad("encoded header with %d folders", len(s.folders))
	}
	f := s.folders[0]
	packed, err := szPacked(w.ra, w.size, base, s, f)
	if err != nil {
		return nil, err
	}
	if !f.encrypted() {
		return szDecodeFolder(f, packed, "", p.maxDict)
	}
	info.headerEncrypted = true
	var hdr []byte
	var hardErr error
	i, err := w.unlock(func(pw string, _ bool) (bool, error) {
		b, err := szDecodeFolder(f, packed, pw, p.maxDict)
		var ke *kindError
		if errors.As(err, &ke) && (ke.kind == ProblemUnsupportedMethod || ke.kind == ProblemBomb) {
			hardErr = err
			return false, err
		}
		if err != nil {
			return false, nil
		}
		hdr = b
		return true, nil
	})
	if hardErr != nil {
		return nil, hardErr
	}
	if err != nil {
		return nil, err
	}
	info.headerPassword = i
	return hdr, nil
}

// szPacked reads a folder's single packed stream (headers only: bounded).
func szPacked(ra io.ReaderAt, size, base int64, s *szStreams, f *szFolder) ([]byte, error) {
	off := s.packPos
	for _, n := range s.packSizes[:f.firstPack] {
		off += n
	}
	n := s.packSizes[f.firstPack]
	if off > uint64(size-base) || n > uint64(size-base)-off {
		return nil, &kindError{ProblemTruncated, errors.New("7z encoded header past the end")}
	}
	if n > szMaxHeader || slices.Max(f.unpack) > szMaxHeader {
		return nil, &kindError{ProblemTooManyEntries, fmt.Errorf("7z encoded header of %d bytes", slices.Max(f.unpack))}
	}
	b := make([]byte, n)
	if _, err := ra.ReadAt(b, base+int64(off)); err != nil {
		return nil, &kindError{ProblemTruncated, err}
	}
	return b, nil
}

// szDecodeFolder decodes a chain of single-stream coders (what 7-Zip uses
// for headers: LZMA, optionally behind AES) and checks the folder CRC.
func szDecodeFolder(f *szFolder, packed []byte, pw string, maxDict int64) ([]byte, error) {
	data := packed
	in := f.packedIn[0]
	for range f.coders {
		ci := int(in) // single-stream coders: stream index == coder index
		if ci >= len(f.coders) || f.coders[ci].in != 1 || f.coders[ci].out != 1 {
			return nil, &kindError{ProblemUnsupportedMethod, errors.New("7z header folder with multi-stream coders")}
		}
		out, err := szDecodeCoder(f.coders[ci], data, f.unpack[ci], pw, maxDict)
		if err != nil {
			return nil, err
		}
		data = out
		next := -1
		for j, o := range f.bindOut {
			if o == uint64(ci) {
				next = int(f.bindIn[j])
			}
		}
		if next < 0 {
			if f.hasCRC && crc32.ChecksumIEEE(data) != f.crc {
				return nil, &kindError{ProblemChecksum, errors.New("7z encoded header crc mismatch")}
			}
			return data, nil
		}
		in = uint64(next)
	}
	return nil, szBad("coder chain loops")
}

func szDecodeCoder(c szCoder, in []byte, size uint64, pw string, maxDict int64) ([]byte, error) {
	var r io.Reader
	switch c.id {
	case szCopy:
		r = bytes.NewReader(in)
	case szAES:
		out, err := szDecryptAES(c.props, in, pw)
		if err != nil {
			return nil, err
		}
		r = bytes.NewReader(out)
	case szLZMA:
		var h [13]byte
		copy(h[:5], c.props)
		binary.LittleEndian.PutUint64(h[5:], size)
		lr, err := lzma.ReaderConfig{DictCap: int(max(maxDict, lzma.MinDictCap))}.NewReader(
			io.MultiReader(bytes.NewReader(h[:]), bytes.NewReader(in)))
		if err != nil {
			return nil, err
		}
		r = lr
	case szLZMA2:
		lr, err := lzma.Reader2Config{DictCap: int(max(xzDict(c.props[0]), lzma.MinDictCap))}.NewReader2(bytes.NewReader(in))
		if err != nil {
			return nil, err
		}
		r = lr
	default:
		return nil, &kindError{ProblemUnsupportedMethod, fmt.Errorf("7z header coder %s", szCoderName(c.id))}
	}
	out := make([]byte, size)
	if _, err := io.ReadFull(r, out); err != nil {
		return nil, fmt.Errorf("decode %s: %w", szCoderName(c.id), noEOF(err))
	}
	return out, nil
}

// szDecryptAES decrypts 7-Zip's AES-256-CBC: the key is SHA-256 over
// 2^cycles rounds of salt, UTF-16LE password and a 64-bit counter.
func szDecryptAES(props, in []byte, pw string) ([]byte, error) {
	block, iv, err := szAESCipher(props, pw)
	if err != nil {
		return nil, err
	}
	out := make([]byte, len(in)&^(aes.BlockSize-1))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(out, in[:len(out)])
	return out, nil
}

// szAESCipher reads 7-Zip AES properties (cycles, salt, IV) and derives
// the cipher for pw.
func szAESCipher(props []byte, pw string) (cipher.Block, []byte, error) {
	cycles := int(props[0] & 0x3f)
	var salt []byte
	iv := make([]byte, aes.BlockSize)
	if props[0]&0xc0 != 0 {
		if len(props) < 2 {
			return nil, nil, szBad("aes properties")
		}
		saltLen := int(props[0]>>7&1) + int(props[1]>>4)
		ivLen := int(props[0]>>6&1) + int(props[1]&0x0f)
		if len(props) < 2+saltLen+ivLen {
			return nil, nil, szBad("aes properties")
		}
		salt = props[2 : 2+saltLen]
		copy(iv, props[2+saltLen:2+saltLen+ivLen])
	}
	block, err := aes.NewCipher(szKey(pw, cycles, salt))
	return block, iv, err
}

// szDecryptBlock decrypts the last ciphertext block of a 7-Zip AES stream
// (tail holds the two last blocks; with first, the only block, whose
// chaining value is the IV).
func szDecryptBlock(props, tail []byte, pw string, first bool) ([]byte, error) {
	block, iv, err := szAESCipher(props, pw)
	if err != nil {
		return nil, err
	}
	chain := tail[:aes.BlockSize]
	if first {
		chain = iv
	}
	out := make([]byte, aes.BlockSize)
	block.Decrypt(out, tail[aes.BlockSize:])
	subtle.XORBytes(out, out, chain)
	return out, nil
}

// szKey derives a 7-Zip AES key (cycles 0x3f means no hashing).
func szKey(pw string, cycles int, salt []byte) []byte {
	u := utf16.Encode([]rune(pw))
	buf := make([]byte, 0, len(salt)+2*len(u)+8)
	buf = append(buf, salt...)
	for _, c := range u {
		buf = binary.LittleEndian.AppendUint16(buf, c)
	}
	key := make([]byte, 32)
	if cycles == 0x3f {
		copy(key, buf)
		return key
	}
	ctr := len(buf)
	buf = buf[:ctr+8]
	h := sha256.New()
	for i := uint64(0); i < 1<<cycles; i++ {
		binary.LittleEndian.PutUint64(buf[ctr:], i)
		h.Write(buf)
	}
	return h.Sum(key[:0])
}
