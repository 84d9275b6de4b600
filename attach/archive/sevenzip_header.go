package archive

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
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
	start           int64 // offset of the signature header
	headerEncrypted bool
	headerPassword  int // candidate that decrypted the header, -1
	main            *szStreams
	files           uint64
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
