package archive

import (
	"archive/zip"
	"bytes"
	"compress/bzip2"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/flate"
	"github.com/ulikunitz/xz/lzma"
)

// Zip compression methods (APPNOTE 4.4.5) that matter here.
const (
	zipStore     = 0
	zipImplode   = 6
	zipDeflate   = 8
	zipDeflate64 = 9
	zipBzip2     = 12
	zipLZMA      = 14
	zipAES       = 99 // WinZip AES: the real method is in extra field 0x9901
)

// zipMember is one zip entry, from the central directory or, when the
// standard library refuses the archive, from a local header.
type zipMember struct {
	name     string
	method   uint16
	flags    uint16
	crc      uint32
	csize    int64
	usize    int64     // -1 when unknown
	dosTime  uint16    // MS-DOS time (the ZipCrypto check byte with flag bit 3)
	modified time.Time // zero when unknown
	extra    []byte
	mode     fs.FileMode
	dataOff  int64 // offset of the compressed data, -1 when unknown
	overlap  bool  // shares compressed bytes with an earlier member
}

func (m *zipMember) encrypted() bool { return m.flags&0x1 != 0 }

func (m *zipMember) entry() Entry {
	return Entry{
		Name:           m.name,
		Size:           m.usize,
		CompressedSize: m.csize,
		Modified:       m.modified,
		Dir:            strings.HasSuffix(m.name, "/") || m.mode.IsDir(),
		Encrypted:      m.encrypted(),
		Method:         zipMethodName(m.method),
	}
}

// section returns the member's raw (compressed, maybe encrypted) bytes,
// clipped to the archive so that a forged size reads only what exists.
func (m *zipMember) section(w *walker) *io.SectionReader {
	return io.NewSectionReader(w.ra, m.dataOff, min(m.csize, w.size-m.dataOff))
}

// zipWalk walks the members of one zip archive.
type zipWalk struct {
	w *walker
}

func walkZip(w *walker) error {
	zr, err := zip.NewReader(w.ra, w.size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		w.problem(ProblemCorrupt, "", fmt.Sprintf("central directory: %v; listing local headers instead", err))
		return walkZipLocal(w)
	}
	members := make([]*zipMember, 0, min(len(zr.File), 1024))
	for _, f := range zr.File {
		if w.lim.MaxEntries >= 0 && len(members) > w.lim.MaxEntries {
			break // one more than allowed, so that emit reports the excess
		}
		members = append(members, w.zipMemberOf(f))
	}
	w.zipSpans(members)
	z := &zipWalk{w: w}
	for _, m := range members {
		if err := z.visit(m); err != nil {
			return err
		}
	}
	return nil
}

// zipMemberOf converts a central directory entry.
func (w *walker) zipMemberOf(f *zip.File) *zipMember {
	m := &zipMember{
		name: f.Name, method: f.Method, flags: f.Flags, crc: f.CRC32,
		csize: clampSize(f.CompressedSize64), usize: clampSize(f.UncompressedSize64),
		dosTime: f.ModifiedTime, modified: f.Modified, extra: f.Extra, mode: f.Mode(),
		dataOff: -1,
	}
	off, err := f.DataOffset()
	switch {
	case err != nil:
		w.problem(ProblemCorrupt, f.Name, fmt.Sprintf("local header: %v", err))
	case m.csize < 0:
		w.problem(ProblemCorrupt, f.Name, "compressed size out of range")
	default:
		m.dataOff = off
	}
	return m
}

func clampSize(v uint64) int64 {
	if v > math.MaxInt64 {
		return -1
	}
	return int64(v)
}

// zipSpans checks where the members' compressed data lie: past the end of
// the archive (a forged size) or overlapping another member's (the
// Fifield overlapping-file bomb, where one local file is referenced by
// many central entries or quoted inside another's data). Members that
// overlap an earlier one are marked and not decompressed.
func (w *walker) zipSpans(ms []*zipMember) {
	type span struct {
		start, end int64
		m          *zipMember
	}
	spans := make([]span, 0, len(ms))
	for _, m := range ms {
		if m.dataOff < 0 {
			continue
		}
		if m.dataOff > w.size || m.csize > w.size-m.dataOff {
			w.problem(ProblemTruncated, m.name, fmt.Sprintf("declares %d compressed bytes at offset %d of a %d-byte archive",
				m.csize, m.dataOff, w.size))
		}
		if m.csize > 0 {
			spans = append(spans, span{m.dataOff, m.dataOff + min(m.csize, max(w.size-m.dataOff, 0)), m})
		}
	}
	sort.SliceStable(spans, func(i, j int) bool {
		if spans[i].start != spans[j].start {
			return spans[i].start < spans[j].start
		}
		return spans[i].end > spans[j].end
	})
	var (
		end      int64 = -1
		holder   *zipMember
		overlaps int
		example  string
	)
	for _, s := range spans {
		if s.start < end {
			s.m.overlap = true
			if overlaps == 0 {
				example = fmt.Sprintf("%q lies inside %q", clip(s.m.name, 64), clip(holder.name, 64))
			}
			overlaps++
			continue
		}
		end, holder = s.end, s.m
	}
	if overlaps > 0 {
		w.problem(ProblemOverlap, "", fmt.Sprintf("%d entries share compressed data with another (%s); not decompressed",
			overlaps, example))
	}
}

// visit emits one member with its decrypted, decompressed and checked
// content.
func (z *zipWalk) visit(m *zipMember) error {
	w := z.w
	e := m.entry()
	if e.Dir || m.overlap || m.dataOff < 0 {
		return w.emit(e, nil)
	}
	method, aes := m.method, (*aesParams)(nil)
	if m.encrypted() {
		var err error
		if aes, method, err = m.encryption(); err != nil {
			w.problem(ProblemUnsupportedMethod, m.name, err.Error())
			e.Locked = true
			return w.emit(e, nil)
		}
		e.Method = zipMethodName(method) + "+" + aes.name()
	}
	if !zipMethodSupported(method) {
		if w.cliAvailable() {
			return w.cliVisit(cliEntry{Entry: e})
		}
		w.problem(ProblemUnsupportedMethod, m.name, "zip method "+zipMethodName(method))
		w.unsupported("zip: method " + zipMethodName(method))
		return w.emit(e, nil)
	}
	var key zipKey
	if m.encrypted() {
		var i int
		var err error
		if key, i, err = z.unlock(m, aes, method); err != nil {
			return err
		}
		if key == nil {
			e.Locked = true
			return w.emit(e, nil)
		}
		e.Decrypted, e.PasswordSource = true, w.source(i)
	}
	r, err := z.content(m, method, aes, key)
	if err != nil {
		w.problem(classify(err), m.name, err.Error())
		return w.emit(e, nil)
	}
	if m.mode&fs.ModeSymlink != 0 {
		link, err := io.ReadAll(io.LimitReader(r, 4096))
		if err != nil {
			w.problem(classify(err), m.name, "symlink target: "+err.Error())
		}
		e.Link = string(link)
		return w.emit(e, nil)
	}
	return w.emit(e, r)
}

// content builds the member's reader: raw bytes, decryption, decompression,
// then the CRC and size check (WinZip AE-2 has no CRC; its MAC is checked
// by the decryptor).
func (z *zipWalk) content(m *zipMember, method uint16, aes *aesParams, key zipKey) (io.Reader, error) {
	var r io.Reader = m.section(z.w)
	if key != nil {
		var err error
		if r, err = key.decrypt(m.section(z.w)); err != nil {
			return nil, err
		}
	}
	r, err := z.decompressor(method, r, m)
	if err != nil {
		return nil, err
	}
	checkCRC := aes == nil || aes.version == 1
	if m.flags&0x8 != 0 && m.crc == 0 && m.usize <= 0 {
		checkCRC = false // a salvaged streaming member: no CRC known
	}
	return &crcReader{r: r, h: crc32.NewIEEE(), want: m.crc, check: checkCRC, size: m.usize}, nil
}

// decompressor returns a reader of the member's uncompressed bytes.
func (z *zipWalk) decompressor(method uint16, r io.Reader, m *zipMember) (io.Reader, error) {
	switch method {
	case zipStore:
		return r, nil
	case zipDeflate:
		return newInflater(r), nil
	case zipBzip2:
		return bzip2.NewReader(r), nil
	case zipLZMA:
		return newZipLZMA(r, m.flags, m.usize, z.w.lim.MaxDictionary)
	}
	return nil, &kindError{ProblemUnsupportedMethod, fmt.Errorf("zip method %s", zipMethodName(method))}
}

func zipMethodSupported(method uint16) bool {
	switch method {
	case zipStore, zipDeflate, zipBzip2, zipLZMA:
		return true
	}
	return false
}

func zipMethodName(method uint16) string {
	switch method {
	case zipStore:
		return "store"
	case 1:
		return "shrink"
	case 2, 3, 4, 5:
		return "reduce"
	case zipImplode:
		return "implode"
	case zipDeflate:
		return "deflate"
	case zipDeflate64:
		return "deflate64"
	case zipBzip2:
		return "bzip2"
	case zipLZMA:
		return "lzma"
	case 93:
		return "zstd"
	case 95:
		return "xz"
	case 96:
		return "jpeg"
	case 97:
		return "wavpack"
	case 98:
		return "ppmd"
	case zipAES:
		return "aes"
	}
	return fmt.Sprintf("method-%d", method)
}

// newZipLZMA reads a zip LZMA member (APPNOTE 5.8.8): a 4-byte header
// (LZMA SDK version, properties size), 5 bytes of properties, then the raw
// LZMA stream, ended by an end marker when flag bit 1 is set.
func newZipLZMA(r io.Reader, flags uint16, usize, maxDict int64) (io.Reader, error) {
	var h [9]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, fmt.Errorf("lzma header: %w", noEOF(err))
	}
	if binary.LittleEndian.Uint16(h[2:]) != 5 {
		return nil, fmt.Errorf("lzma properties size %d", binary.LittleEndian.Uint16(h[2:]))
	}
	dict := binary.LittleEndian.Uint32(h[5:])
	if int64(dict) > maxDict {
		return nil, &kindError{ProblemBomb, fmt.Errorf("lzma dictionary of %d bytes exceeds %d", dict, maxDict)}
	}
	// Rebuild the classic .lzma header: properties, dictionary, size.
	var classic [13]byte
	copy(classic[:5], h[4:9])
	size := uint64(math.MaxUint64)
	if flags&0x2 == 0 && usize >= 0 {
		size = uint64(usize)
	}
	binary.LittleEndian.PutUint64(classic[5:], size)
	lr, err := lzma.ReaderConfig{DictCap: int(max(maxDict, lzma.MinDictCap))}.NewReader(
		io.MultiReader(bytes.NewReader(classic[:]), r))
	if err != nil {
		return nil, err
	}
	return lr, nil
}

// crcReader checks the CRC-32 and the declared size at the end of the
// content, and refuses content longer than declared.
type crcReader struct {
	r     io.Reader
	h     hash.Hash32
	want  uint32
	check bool
	size  int64 // declared, -1 when unknown
	n     int64
}

func (c *crcReader) Read(p []byte) (int, error) {
	if c.size >= 0 && int64(len(p)) > c.size-c.n+1 {
		p = p[:c.size-c.n+1]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.h.Write(p[:n])
	if c.size >= 0 && c.n > c.size {
		return n - int(c.n-c.size), &kindError{ProblemCorrupt, fmt.Errorf("content longer than the declared %d bytes", c.size)}
	}
	if errors.Is(err, io.EOF) {
		if c.size >= 0 && c.n < c.size {
			return n, &kindError{ProblemTruncated, fmt.Errorf("content of %d bytes, declared %d", c.n, c.size)}
		}
		if c.check && c.h.Sum32() != c.want {
			return n, &kindError{ProblemChecksum, fmt.Errorf("crc32 %08x, want %08x", c.h.Sum32(), c.want)}
		}
	}
	return n, err
}

// walkZipLocal lists a zip that the standard library refuses (a broken or
// missing central directory) by scanning for local file headers.
func walkZipLocal(w *walker) error {
	z := &zipWalk{w: w}
	off := int64(0)
	for {
		off = findSignature(w.ra, w.size, off, []byte("PK\x03\x04"))
		if off < 0 {
			return nil
		}
		budget := int64(1 << 62)
		if w.lim.MaxTotalBytes >= 0 {
			budget = max(w.lim.MaxTotalBytes-w.res.Bytes-w.skipped, 0)
		}
		before := budget
		m, next, err := readLocalHeader(w.ctx, w.ra, w.size, off, &budget)
		w.skipped += before - budget // decoded to find where streamed data ends
		if err != nil {
			w.problem(ProblemCorrupt, "", fmt.Sprintf("local header at %d: %v", off, err))
			off += 4
			continue
		}
		if m.dataOff >= 0 && m.csize > w.size-m.dataOff {
			w.problem(ProblemTruncated, m.name, fmt.Sprintf("declares %d compressed bytes at offset %d of a %d-byte archive",
				m.csize, m.dataOff, w.size))
		}
		if err := z.visit(m); err != nil {
			return err
		}
		off = next
	}
}

// readLocalHeader parses a local file header (APPNOTE 4.3.7) at off and
// returns the member and where to look for the next one.
//
// budget bounds the bytes decoded to find where streamed deflate data ends;
// what is used is subtracted from it.
func readLocalHeader(ctx context.Context, ra io.ReaderAt, size, off int64, budget *int64) (*zipMember, int64, error) {
	h := readHead(ra, size, off, 30)
	if len(h) < 30 {
		return nil, 0, io.ErrUnexpectedEOF
	}
	le := binary.LittleEndian
	nameLen, extraLen := int64(le.Uint16(h[26:])), int64(le.Uint16(h[28:]))
	ne := readHead(ra, size, off+30, int(nameLen+extraLen))
	if int64(len(ne)) < nameLen+extraLen {
		return nil, 0, io.ErrUnexpectedEOF
	}
	m := &zipMember{
		name: string(ne[:nameLen]), flags: le.Uint16(h[6:]), method: le.Uint16(h[8:]),
		dosTime: le.Uint16(h[10:]), modified: dosTime(le.Uint16(h[12:]), le.Uint16(h[10:])),
		crc: le.Uint32(h[14:]), csize: int64(le.Uint32(h[18:])), usize: int64(le.Uint32(h[22:])),
		extra: ne[nameLen:], dataOff: off + 30 + nameLen + extraLen,
	}
	if m.csize == math.MaxUint32 || m.usize == math.MaxUint32 {
		if z64 := findExtra(m.extra, 0x0001); len(z64) >= 16 {
			m.usize, m.csize = clampSize(le.Uint64(z64)), clampSize(le.Uint64(z64[8:]))
		}
	}
	if m.flags&0x8 != 0 && m.csize == 0 {
		// Streamed: the sizes follow the data in a descriptor.
		m.csize, m.usize = streamedSize(ctx, ra, size, m, budget), -1
		if m.csize < 0 {
			return m, m.dataOff, nil // listed without content
		}
	}
	if m.flags&0x8 != 0 && m.usize == 0 {
		m.usize = -1
	}
	return m, m.dataOff + m.csize, nil
}

// streamedSize finds the compressed size of a member written without
// sizes (flag bit 3): stored data ends at a data descriptor whose size
// field matches; deflate data ends where the deflate stream does. It
// returns -1 (and marks the member unreadable) when neither works.
func streamedSize(ctx context.Context, ra io.ReaderAt, size int64, m *zipMember, budget *int64) int64 {
	switch m.method {
	case zipStore:
		for off, tries := m.dataOff, 0; tries < 64; tries++ {
			at := findSignature(ra, size, off, []byte("PK\x07\x08"))
			if at < 0 {
				break
			}
			if d := readHead(ra, size, at+8, 4); len(d) == 4 && int64(binary.LittleEndian.Uint32(d)) == at-m.dataOff {
				return at - m.dataOff
			}
			off = at + 1
		}
	case zipDeflate:
		br := &offsetReader{ra: ra, off: m.dataOff, end: size}
		n, err := io.CopyN(io.Discard, &ctxReader{ctx: ctx, r: flate.NewReader(br)}, max(*budget, 0))
		*budget -= n
		if errors.Is(err, io.EOF) {
			return br.off - m.dataOff
		}
	}
	m.dataOff = -1
	return -1
}

// offsetReader reads a ReaderAt byte by byte (as an io.ByteReader, so that
// a flate reader consumes exactly its stream) and tells where it is.
type offsetReader struct {
	ra       io.ReaderAt
	off, end int64
	buf      []byte
	bufOff   int64
}

func (o *offsetReader) ReadByte() (byte, error) {
	if o.off >= o.end {
		return 0, io.EOF
	}
	if o.off < o.bufOff || o.off >= o.bufOff+int64(len(o.buf)) {
		o.buf, o.bufOff = make([]byte, min(32<<10, o.end-o.off)), o.off
		n, _ := o.ra.ReadAt(o.buf, o.off)
		o.buf = o.buf[:n]
		if n == 0 {
			return 0, io.ErrUnexpectedEOF
		}
	}
	b := o.buf[o.off-o.bufOff]
	o.off++
	return b, nil
}

func (o *offsetReader) Read(p []byte) (int, error) {
	for i := range p {
		b, err := o.ReadByte()
		if err != nil {
			return i, err
		}
		p[i] = b
	}
	return len(p), nil
}

// findExtra returns the data of extra field id (APPNOTE 4.5), or nil.
func findExtra(extra []byte, id uint16) []byte {
	for len(extra) >= 4 {
		tag, n := binary.LittleEndian.Uint16(extra), int(binary.LittleEndian.Uint16(extra[2:]))
		extra = extra[4:]
		if n > len(extra) {
			return nil
		}
		if tag == id {
			return extra[:n]
		}
		extra = extra[n:]
	}
	return nil
}

// findSignature returns the offset of the first sig at or after off, or -1.
func findSignature(ra io.ReaderAt, size, off int64, sig []byte) int64 {
	const chunk = 64 << 10
	buf := make([]byte, chunk+len(sig))
	for off < size {
		n, _ := ra.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		if n < len(sig) {
			return -1
		}
		if i := bytes.Index(buf[:n], sig); i >= 0 {
			return off + int64(i)
		}
		off += int64(n - len(sig) + 1)
	}
	return -1
}

// inflaters are deflate decoders for reuse: each holds a 32 KiB window and
// its tables, about 80 KB with its buffers, and an archive of thousands of
// small members would otherwise allocate one per member.
var inflaters sync.Pool

// pooledInflater returns its decoder to inflaters at the end of the
// stream; a reader abandoned before that leaves it to the collector.
type pooledInflater struct{ fr io.ReadCloser }

func newInflater(r io.Reader) io.Reader {
	if v, ok := inflaters.Get().(io.ReadCloser); ok {
		if err := v.(flate.Resetter).Reset(r, nil); err == nil {
			return &pooledInflater{v}
		}
	}
	return &pooledInflater{flate.NewReader(r)}
}

func (p *pooledInflater) Read(b []byte) (int, error) {
	if p.fr == nil {
		return 0, io.EOF
	}
	n, err := p.fr.Read(b)
	if err == io.EOF {
		inflaters.Put(p.fr)
		p.fr = nil
	}
	return n, err
}
