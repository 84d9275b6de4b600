package archive

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"unicode/utf16"

	"github.com/ulikunitz/xz/lzma"
)

// This file reads the 7z header structure (7-Zip's DOC/7zFormat.txt)
// before bodgit/sevenzip sees it. That library sizes slices straight from
// header counts (a 50-byte archive declaring 2^32 files makes it allocate
// 500 GB and the runtime abort, which recover cannot catch) and its LZMA
// decoders allocate whatever dictionary a coder declares. So every count
// and every dictionary is checked here first, the encoded (compressed,
// maybe encrypted) header is decoded here to check it too, and the library
// only opens archives that passed. The parse also yields what the library
// does not expose: which folders are encrypted, their methods and sizes.

// 7z property IDs.
const (
	szEnd                   = 0x00
	szHeader                = 0x01
	szArchiveProperties     = 0x02
	szAdditionalStreamsInfo = 0x03
	szMainStreamsInfo       = 0x04
	szFilesInfo             = 0x05
	szPackInfo              = 0x06
	szUnpackInfo            = 0x07
	szSubStreamsInfo        = 0x08
	szSize                  = 0x09
	szCRC                   = 0x0a
	szFolderID              = 0x0b
	szCodersUnpackSize      = 0x0c
	szNumUnpackStream       = 0x0d
	szEncodedHeader         = 0x17
)

// 7z coder IDs that matter here.
const (
	szCopy  = 0x00
	szLZMA2 = 0x21
	szLZMA  = 0x030101
	szPPMD  = 0x030401
	szAES   = 0x06f10701
)

const (
	szSigLen       = 32       // signature header
	szMaxHeader    = 16 << 20 // largest (decoded) header read
	szMaxStreams   = 64       // coder streams per folder, as 7-Zip allows
	szMaxCycles    = 24       // AES key-derivation exponent, as bodgit/sevenzip allows
	szMaxCodersLen = 1 << 10  // coder properties
)

// szInfo is what the header check learnt.
type szInfo struct {
	start            int64 // offset of the signature header
	headerEncrypted  bool
	headerPassword   int // candidate that decrypted the header, -1
	main             *szStreams
	files            uint64
	headerCandidates bool // the header is encrypted and candidates were tried
}

type szStreams struct {
	packPos   uint64
	packSizes []uint64
	folders   []*szFolder
	subCounts []uint64 // unpack streams (files) per folder
}

type szFolder struct {
	coders    []szCoder
	bindIn    []uint64 // bind pair i: in-stream bindIn[i] is fed by out-stream bindOut[i]
	bindOut   []uint64
	packedIn  []uint64 // in-streams fed by packed streams
	unpack    []uint64 // size of each out-stream
	crc       uint32
	hasCRC    bool
	firstPack int // index of the folder's first packed stream
}

type szCoder struct {
	id      uint64
	in, out uint64
	props   []byte
}

// encrypted reports whether the folder has an AES coder.
func (f *szFolder) encrypted() bool {
	for _, c := range f.coders {
		if c.id == szAES {
			return true
		}
	}
	return false
}

// method names the folder's coders, e.g. "lzma2+aes256".
func (f *szFolder) method() string {
	var b bytes.Buffer
	for i, c := range f.coders {
		if i > 0 {
			b.WriteByte('+')
		}
		b.WriteString(szCoderName(c.id))
	}
	return b.String()
}

// unpackSize is the size of the folder's final (unbound) out-stream.
func (f *szFolder) unpackSize() uint64 {
	for i, sz := range f.unpack {
		bound := false
		for _, o := range f.bindOut {
			if o == uint64(i) {
				bound = true
			}
		}
		if !bound {
			return sz
		}
	}
	return 0
}

func szCoderName(id uint64) string {
	switch id {
	case szCopy:
		return "copy"
	case szLZMA2:
		return "lzma2"
	case szLZMA:
		return "lzma"
	case szPPMD:
		return "ppmd"
	case szAES:
		return "aes256"
	case 0x040108:
		return "deflate"
	case 0x040109:
		return "deflate64"
	case 0x040202:
		return "bzip2"
	case 0x03:
		return "delta"
	case 0x03030103:
		return "bcj"
	case 0x0303011b:
		return "bcj2"
	case 0x04f71101:
		return "zstd"
	case 0x04f71102:
		return "brotli"
	case 0x04f71104:
		return "lz4"
	}
	return fmt.Sprintf("coder-%x", id)
}

// szParser reads 7z header bytes.
type szParser struct {
	b        []byte
	pos      int
	maxCount uint64 // largest count of files or streams accepted
	maxDict  int64
}

var errSZShort = &kindError{ProblemTruncated, errors.New("7z header ends early")}

func szBad(format string, a ...any) error {
	return &kindError{ProblemCorrupt, fmt.Errorf("7z header: "+format, a...)}
}

func (p *szParser) byte() (byte, error) {
	if p.pos >= len(p.b) {
		return 0, errSZShort
	}
	p.pos++
	return p.b[p.pos-1], nil
}

func (p *szParser) bytes(n uint64) ([]byte, error) {
	if n > uint64(len(p.b)-p.pos) {
		return nil, errSZShort
	}
	p.pos += int(n)
	return p.b[p.pos-int(n) : p.pos], nil
}

// number reads a 7z NUMBER: the leading one bits of the first byte say
// how many more little-endian bytes follow.
func (p *szParser) number() (uint64, error) {
	first, err := p.byte()
	if err != nil {
		return 0, err
	}
	var v uint64
	mask := byte(0x80)
	for i := 0; i < 8; i++ {
		if first&mask == 0 {
			high := uint64(first & (mask - 1))
			return v | high<<(8*i), nil
		}
		b, err := p.byte()
		if err != nil {
			return 0, err
		}
		v |= uint64(b) << (8 * i)
		mask >>= 1
	}
	return v, nil
}

// count reads a number that sizes a list, refusing one beyond maxCount.
func (p *szParser) count(what string) (uint64, error) {
	n, err := p.number()
	if err != nil {
		return 0, err
	}
	if n > p.maxCount {
		return 0, &kindError{ProblemTooManyEntries, fmt.Errorf("7z header declares %d %s (limit %d)", n, what, p.maxCount)}
	}
	return n, nil
}

// small reads a number that must not exceed lim.
func (p *szParser) small(lim uint64, what string) (uint64, error) {
	n, err := p.number()
	if err != nil {
		return 0, err
	}
	if n > lim {
		return 0, szBad("%d %s", n, what)
	}
	return n, nil
}

// digests reads a CRC list of n items and returns which are defined.
func (p *szParser) digests(n uint64) ([]bool, []uint32, error) {
	defined, err := p.bits(n)
	if err != nil {
		return nil, nil, err
	}
	crcs := make([]uint32, n)
	for i := range defined {
		if defined[i] {
			b, err := p.bytes(4)
			if err != nil {
				return nil, nil, err
			}
			crcs[i] = binary.LittleEndian.Uint32(b)
		}
	}
	return defined, crcs, nil
}

// bits reads an "all defined" byte and, if zero, a bit vector of n bits.
func (p *szParser) bits(n uint64) ([]bool, error) {
	all, err := p.byte()
	if err != nil {
		return nil, err
	}
	v := make([]bool, n)
	if all != 0 {
		for i := range v {
			v[i] = true
		}
		return v, nil
	}
	raw, err := p.bytes((n + 7) / 8)
	if err != nil {
		return nil, err
	}
	for i := range v {
		v[i] = raw[i/8]&(0x80>>(i%8)) != 0
	}
	return v, nil
}

// header parses a plain header (after its szHeader byte).
func (p *szParser) header() (*szStreams, uint64, error) {
	var main *szStreams
	var files uint64
	for {
		id, err := p.byte()
		if err != nil {
			return nil, 0, err
		}
		switch id {
		case szEnd:
			return main, files, nil
		case szArchiveProperties:
			if err := p.properties(); err != nil {
				return nil, 0, err
			}
		case szAdditionalStreamsInfo:
			if _, err := p.streams(); err != nil {
				return nil, 0, err
			}
		case szMainStreamsInfo:
			if main, err = p.streams(); err != nil {
				return nil, 0, err
			}
		case szFilesInfo:
			if files, err = p.filesInfo(); err != nil {
				return nil, 0, err
			}
		default:
			return nil, 0, szBad("unexpected property 0x%x", id)
		}
	}
}

// properties skips archive properties.
func (p *szParser) properties() error {
	for {
		t, err := p.byte()
		if err != nil || t == szEnd {
			return err
		}
		n, err := p.number()
		if err != nil {
			return err
		}
		if _, err := p.bytes(n); err != nil {
			return err
		}
	}
}

// filesInfo checks the file count; bodgit/sevenzip sizes every per-file
// slice from it. The properties themselves are skipped by their sizes.
func (p *szParser) filesInfo() (uint64, error) {
	n, err := p.count("files")
	if err != nil {
		return 0, err
	}
	for {
		t, err := p.byte()
		if err != nil {
			return 0, err
		}
		if t == szEnd {
			return n, nil
		}
		size, err := p.number()
		if err != nil {
			return 0, err
		}
		if _, err := p.bytes(size); err != nil {
			return 0, err
		}
	}
}

// streams parses a StreamsInfo.
func (p *szParser) streams() (*szStreams, error) {
	s := &szStreams{}
	for {
		id, err := p.byte()
		if err != nil {
			return nil, err
		}
		switch id {
		case szEnd:
			return s, s.link()
		case szPackInfo:
			err = p.packInfo(s)
		case szUnpackInfo:
			err = p.unpackInfo(s)
		case szSubStreamsInfo:
			err = p.subStreams(s)
		default:
			err = szBad("unexpected streams property 0x%x", id)
		}
		if err != nil {
			return nil, err
		}
	}
}

// link assigns packed streams to folders and checks there are enough.
func (s *szStreams) link() error {
	next := 0
	for _, f := range s.folders {
		f.firstPack = next
		next += len(f.packedIn)
	}
	if next > len(s.packSizes) {
		return szBad("folders use %d packed streams, %d declared", next, len(s.packSizes))
	}
	if s.subCounts == nil {
		s.subCounts = make([]uint64, len(s.folders))
		for i := range s.subCounts {
			s.subCounts[i] = 1
		}
	}
	return nil
}

func (p *szParser) packInfo(s *szStreams) error {
	var err error
	if s.packPos, err = p.number(); err != nil {
		return err
	}
	n, err := p.count("packed streams")
	if err != nil {
		return err
	}
	s.packSizes = make([]uint64, n)
	for {
		id, err := p.byte()
		if err != nil {
			return err
		}
		switch id {
		case szEnd:
			return nil
		case szSize:
			for i := range s.packSizes {
				if s.packSizes[i], err = p.number(); err != nil {
					return err
				}
			}
		case szCRC:
			if _, _, err := p.digests(n); err != nil {
				return err
			}
		default:
			return szBad("unexpected pack property 0x%x", id)
		}
	}
}

func (p *szParser) unpackInfo(s *szStreams) error {
	if id, err := p.byte(); err != nil || id != szFolderID {
		return szBad("no folder list")
	}
	n, err := p.count("folders")
	if err != nil {
		return err
	}
	if ext, err := p.byte(); err != nil || ext != 0 {
		return szBad("external folder list")
	}
	s.folders = make([]*szFolder, n)
	for i := range s.folders {
		if s.folders[i], err = p.folder(); err != nil {
			return err
		}
	}
	if id, err := p.byte(); err != nil || id != szCodersUnpackSize {
		return szBad("no coder unpack sizes")
	}
	for _, f := range s.folders {
		for i := range f.unpack {
			if f.unpack[i], err = p.number(); err != nil {
				return err
			}
		}
	}
	for {
		id, err := p.byte()
		if err != nil {
			return err
		}
		switch id {
		case szEnd:
			return nil
		case szCRC:
			defined, crcs, err := p.digests(n)
			if err != nil {
				return err
			}
			for i, f := range s.folders {
				f.hasCRC, f.crc = defined[i], crcs[i]
			}
		default:
			return szBad("unexpected unpack property 0x%x", id)
		}
	}
}

// folder parses one folder: its coders, bind pairs and packed streams.
func (p *szParser) folder() (*szFolder, error) {
	nc, err := p.small(szMaxStreams, "coders")
	if err != nil {
		return nil, err
	}
	if nc == 0 {
		return nil, szBad("folder without coders")
	}
	f := &szFolder{}
	var totalIn, totalOut uint64
	for range nc {
		c, err := p.coder()
		if err != nil {
			return nil, err
		}
		if err := p.checkCoder(c); err != nil {
			return nil, err
		}
		f.coders = append(f.coders, c)
		totalIn += c.in
		totalOut += c.out
	}
	if totalIn > szMaxStreams || totalOut > szMaxStreams || totalOut == 0 || totalIn < totalOut-1 {
		return nil, szBad("%d in and %d out streams", totalIn, totalOut)
	}
	f.unpack = make([]uint64, totalOut)
	for range totalOut - 1 {
		in, err := p.small(totalIn-1, "bind in-stream")
		if err != nil {
			return nil, err
		}
		out, err := p.small(totalOut-1, "bind out-stream")
		if err != nil {
			return nil, err
		}
		f.bindIn, f.bindOut = append(f.bindIn, in), append(f.bindOut, out)
	}
	packed := totalIn - (totalOut - 1)
	if packed == 1 {
		for i := range totalIn {
			if !containsU64(f.bindIn, i) {
				f.packedIn = append(f.packedIn, i)
				break
			}
		}
		if len(f.packedIn) != 1 {
			return nil, szBad("no packed stream")
		}
		return f, nil
	}
	for range packed {
		in, err := p.small(totalIn-1, "packed in-stream")
		if err != nil {
			return nil, err
		}
		f.packedIn = append(f.packedIn, in)
	}
	return f, nil
}

func (p *szParser) coder() (szCoder, error) {
	flag, err := p.byte()
	if err != nil {
		return szCoder{}, err
	}
	if flag&0xc0 != 0 || flag&0x0f > 8 {
		return szCoder{}, szBad("coder flags 0x%x", flag)
	}
	idb, err := p.bytes(uint64(flag & 0x0f))
	if err != nil {
		return szCoder{}, err
	}
	c := szCoder{in: 1, out: 1}
	for _, b := range idb {
		c.id = c.id<<8 | uint64(b)
	}
	if flag&0x10 != 0 {
		if c.in, err = p.small(szMaxStreams, "coder in-streams"); err != nil {
			return c, err
		}
		if c.out, err = p.small(szMaxStreams, "coder out-streams"); err != nil {
			return c, err
		}
	}
	if flag&0x20 != 0 {
		n, err := p.small(szMaxCodersLen, "bytes of coder properties")
		if err != nil {
			return c, err
		}
		if c.props, err = p.bytes(n); err != nil {
			return c, err
		}
	}
	return c, nil
}

// checkCoder refuses a coder whose decoder would allocate more than the
// dictionary limit, or whose key derivation the library refuses.
func (p *szParser) checkCoder(c szCoder) error {
	var dict int64
	switch c.id {
	case szLZMA:
		if len(c.props) < 5 {
			return szBad("lzma properties")
		}
		dict = int64(binary.LittleEndian.Uint32(c.props[1:]))
	case szLZMA2:
		if len(c.props) < 1 || c.props[0] > 40 {
			return szBad("lzma2 properties")
		}
		dict = xzDict(c.props[0])
	case szPPMD:
		if len(c.props) < 5 {
			return szBad("ppmd properties")
		}
		dict = int64(binary.LittleEndian.Uint32(c.props[1:]))
	case szAES:
		if len(c.props) < 1 {
			return szBad("aes properties")
		}
		if cy := c.props[0] & 0x3f; cy > szMaxCycles && cy != 0x3f {
			return &kindError{ProblemUnsupportedMethod, fmt.Errorf("7z aes key derivation 2^%d", cy)}
		}
	}
	if dict > p.maxDict {
		return &kindError{ProblemBomb, fmt.Errorf("7z %s dictionary of %d bytes exceeds %d", szCoderName(c.id), dict, p.maxDict)}
	}
	return nil
}

func (p *szParser) subStreams(s *szStreams) error {
	s.subCounts = make([]uint64, len(s.folders))
	for i := range s.subCounts {
		s.subCounts[i] = 1
	}
	for {
		id, err := p.byte()
		if err != nil {
			return err
		}
		switch id {
		case szEnd:
			return nil
		case szNumUnpackStream:
			var total uint64
			for i := range s.subCounts {
				if s.subCounts[i], err = p.count("files in a folder"); err != nil {
					return err
				}
				if total += s.subCounts[i]; total > p.maxCount {
					return &kindError{ProblemTooManyEntries, fmt.Errorf("7z header declares more than %d streams", p.maxCount)}
				}
			}
		case szSize:
			for _, n := range s.subCounts {
				for j := uint64(1); j < n; j++ {
					if _, err := p.number(); err != nil {
						return err
					}
				}
			}
		case szCRC:
			var n uint64
			for i, c := range s.subCounts {
				if !(c == 1 && i < len(s.folders) && s.folders[i].hasCRC) {
					n += c
				}
			}
			if _, _, err := p.digests(n); err != nil {
				return err
			}
		default:
			return szBad("unexpected substreams property 0x%x", id)
		}
	}
}

func containsU64(s []uint64, v uint64) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

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
	cycles := int(props[0] & 0x3f)
	var salt, iv []byte
	if props[0]&0xc0 != 0 {
		if len(props) < 2 {
			return nil, szBad("aes properties")
		}
		saltLen := int(props[0]>>7&1) + int(props[1]>>4)
		ivLen := int(props[0]>>6&1) + int(props[1]&0x0f)
		if len(props) < 2+saltLen+ivLen {
			return nil, szBad("aes properties")
		}
		salt, iv = props[2:2+saltLen], props[2+saltLen:2+saltLen+ivLen]
	}
	block, err := aes.NewCipher(szKey(pw, cycles, salt))
	if err != nil {
		return nil, err
	}
	var ivb [aes.BlockSize]byte
	copy(ivb[:], iv)
	out := make([]byte, len(in)&^(aes.BlockSize-1))
	cipher.NewCBCDecrypter(block, ivb[:]).CryptBlocks(out, in[:len(out)])
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
