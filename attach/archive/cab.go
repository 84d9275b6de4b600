package archive

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/klauspost/compress/flate"
)

// CAB support is written here ([MS-CAB] 2.1–2.6): no Go library is
// obtainable. Stored and MSZIP folders are decoded; LZX and Quantum
// folders go to the 7z subprocess when it is available.

const (
	cabNone    = 0
	cabMSZIP   = 1
	cabQuantum = 2
	cabLZX     = 3

	cabMaxBlock = 32768 // uncompressed bytes in one CFDATA block
)

type cabFolder struct {
	dataOff int64 // first CFDATA
	nData   int
	method  uint16
}

type cabFile struct {
	name      string
	size, off int64 // uncompressed size and offset in the folder
	folder    int   // index, or -1 for a file continued from/to another cabinet
	modified  uint32
	overlap   bool
}

// cabinet is a parsed CFHEADER with its folders and files.
type cabinet struct {
	folders     []cabFolder
	files       []cabFile
	dataReserve int // bytes of per-CFDATA reserve
}

func cabMethodName(m uint16) string {
	switch m & 0xf {
	case cabNone:
		return "store"
	case cabMSZIP:
		return "mszip"
	case cabQuantum:
		return "quantum"
	case cabLZX:
		return "lzx"
	}
	return fmt.Sprintf("method-%d", m&0xf)
}

// readCabinet parses the header, the folder list and the file list.
func readCabinet(ra io.ReaderAt, size int64) (*cabinet, error) {
	le := binary.LittleEndian
	h := readHead(ra, size, 0, 40)
	if len(h) < 36 || string(h[:4]) != "MSCF" {
		return nil, &kindError{ProblemCorrupt, errors.New("no cab header")}
	}
	filesOff := int64(le.Uint32(h[16:]))
	nFolders, nFiles, flags := int(le.Uint16(h[26:])), int(le.Uint16(h[28:])), le.Uint16(h[30:])
	pos := int64(36)
	c := &cabinet{}
	folderReserve := 0
	if flags&0x4 != 0 {
		if len(h) < 40 {
			return nil, &kindError{ProblemTruncated, errors.New("cab header cut short")}
		}
		pos += 4 + int64(le.Uint16(h[36:]))
		folderReserve, c.dataReserve = int(h[38]), int(h[39])
	}
	for _, bit := range []uint16{0x1, 0x2} { // previous and next cabinet names
		if flags&bit != 0 {
			for range 2 {
				s := readHead(ra, size, pos, 256)
				i := bytes.IndexByte(s, 0)
				if i < 0 {
					return nil, &kindError{ProblemCorrupt, errors.New("cab: unterminated cabinet name")}
				}
				pos += int64(i) + 1
			}
		}
	}
	for range nFolders {
		b := readHead(ra, size, pos, 8)
		if len(b) < 8 {
			return nil, &kindError{ProblemTruncated, errors.New("cab folder list cut short")}
		}
		c.folders = append(c.folders, cabFolder{dataOff: int64(le.Uint32(b)), nData: int(le.Uint16(b[4:])), method: le.Uint16(b[6:])})
		pos += 8 + int64(folderReserve)
	}
	pos = filesOff
	for range nFiles {
		b := readHead(ra, size, pos, 16+256)
		end := bytes.IndexByte(b[min(16, len(b)):], 0)
		if len(b) < 16 || end < 0 {
			return nil, &kindError{ProblemTruncated, errors.New("cab file list cut short")}
		}
		f := cabFile{name: string(b[16 : 16+end]), size: int64(le.Uint32(b)), off: int64(le.Uint32(b[4:])),
			folder: int(le.Uint16(b[8:])), modified: le.Uint32(b[10:])}
		if f.folder >= 0xfffd || f.folder >= len(c.folders) {
			f.folder = -1 // continued in another cabinet (0xFFFD-0xFFFF) or broken
		}
		c.files = append(c.files, f)
		pos += 16 + int64(end) + 1
	}
	return c, nil
}

// markOverlaps flags files whose ranges in a folder overlap an earlier
// file's: many names for the same bytes, the CAB form of an overlap bomb.
func (c *cabinet) markOverlaps() int {
	idx := make([]int, 0, len(c.files))
	for i, f := range c.files {
		if f.folder >= 0 && f.size > 0 {
			idx = append(idx, i)
		}
	}
	sort.SliceStable(idx, func(a, b int) bool {
		fa, fb := c.files[idx[a]], c.files[idx[b]]
		if fa.folder != fb.folder {
			return fa.folder < fb.folder
		}
		return fa.off < fb.off
	})
	n, folder, end := 0, -1, int64(0)
	for _, i := range idx {
		f := &c.files[i]
		if f.folder != folder {
			folder, end = f.folder, 0
		}
		if f.off < end {
			f.overlap = true
			n++
			continue
		}
		end = f.off + f.size
	}
	return n
}

func walkCAB(w *walker) error {
	c, err := readCabinet(w.ra, w.size)
	if err != nil {
		w.problem(classify(err), "", "cab: "+err.Error())
		return nil
	}
	for _, fo := range c.folders {
		if m := fo.method & 0xf; m != cabNone && m != cabMSZIP {
			if w.cliAvailable() {
				return walkCLI(w)
			}
			w.unsupported("cab: " + cabMethodName(fo.method))
		}
	}
	if n := c.markOverlaps(); n > 0 {
		w.problem(ProblemOverlap, "", fmt.Sprintf("%d cab files share folder bytes with another; not delivered", n))
	}
	var s *cabStream
	for _, f := range c.files {
		e := Entry{Name: f.name, Size: f.size, CompressedSize: -1, Modified: dosTime(uint16(f.modified>>16), uint16(f.modified)),
			Method: "cab"}
		if f.folder < 0 || f.overlap {
			if f.folder < 0 {
				w.problem(ProblemTruncated, f.name, "continued in another cabinet")
			}
			if err := w.emit(e, nil); err != nil {
				return err
			}
			continue
		}
		fo := c.folders[f.folder]
		e.Method = cabMethodName(fo.method)
		if m := fo.method & 0xf; m != cabNone && m != cabMSZIP {
			w.problem(ProblemUnsupportedMethod, f.name, "cab "+e.Method)
			if err := w.emit(e, nil); err != nil {
				return err
			}
			continue
		}
		if s == nil || s.folder != f.folder || s.pos > f.off {
			s = &cabStream{w: w, c: c, folder: f.folder, next: fo.dataOff, left: fo.nData}
		}
		if err := w.skip(f.name, io.LimitReader(s, f.off-s.pos), f.off-s.pos); err != nil {
			return err
		}
		if err := w.emit(e, &exactReader{r: io.LimitReader(s, f.size), want: f.size}); err != nil {
			return err
		}
	}
	return nil
}

// cabStream is the uncompressed data of one folder, block by block.
type cabStream struct {
	w      *walker
	c      *cabinet
	folder int
	next   int64 // offset of the next CFDATA
	left   int   // CFDATA blocks left
	pos    int64 // uncompressed bytes produced so far
	block  []byte
	dict   []byte // the last 32 KiB of output: MSZIP's history
	err    error
}

func (s *cabStream) Read(p []byte) (int, error) {
	for len(s.block) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		if s.left == 0 {
			s.err = io.EOF
			return 0, io.EOF
		}
		if s.err = s.nextBlock(); s.err != nil {
			return 0, s.err
		}
	}
	n := copy(p, s.block)
	s.block = s.block[n:]
	s.pos += int64(n)
	return n, nil
}

// nextBlock reads one CFDATA block ([MS-CAB] 2.4) and decodes it.
func (s *cabStream) nextBlock() error {
	w := s.w
	h := readHead(w.ra, w.size, s.next, 8)
	if len(h) < 8 {
		return io.ErrUnexpectedEOF
	}
	sum, nData, nOut := binary.LittleEndian.Uint32(h), int(binary.LittleEndian.Uint16(h[4:])), int(binary.LittleEndian.Uint16(h[6:]))
	if nOut > cabMaxBlock {
		return &kindError{ProblemCorrupt, fmt.Errorf("cab block of %d bytes", nOut)}
	}
	start := s.next + 8 + int64(s.c.dataReserve)
	data := readHead(w.ra, w.size, start, nData)
	if len(data) < nData {
		return io.ErrUnexpectedEOF
	}
	if sum != 0 {
		hdr := readHead(w.ra, w.size, s.next+4, 4+s.c.dataReserve)
		if cabChecksum(hdr, cabChecksum(data, 0)) != sum {
			w.problem(ProblemChecksum, "", fmt.Sprintf("cab data block at %d: checksum mismatch", s.next))
		}
	}
	s.next, s.left = start+int64(nData), s.left-1
	out := make([]byte, nOut)
	switch s.c.folders[s.folder].method & 0xf {
	case cabNone:
		if nData != nOut {
			return &kindError{ProblemCorrupt, errors.New("stored cab block with differing sizes")}
		}
		copy(out, data)
	case cabMSZIP:
		if len(data) < 2 || data[0] != 'C' || data[1] != 'K' {
			return &kindError{ProblemCorrupt, errors.New("mszip block without CK")}
		}
		// Each block is a deflate stream whose history is the previous
		// blocks' output; some writers omit the final-block bit.
		n, err := io.ReadFull(flate.NewReaderDict(bytes.NewReader(data[2:]), s.dict), out)
		if err != nil && !(n == nOut && errors.Is(err, io.ErrUnexpectedEOF)) {
			return fmt.Errorf("mszip: %w", noEOF(err))
		}
	}
	s.dict = append(s.dict, out...)
	if len(s.dict) > cabMaxBlock {
		s.dict = append(s.dict[:0], s.dict[len(s.dict)-cabMaxBlock:]...)
	}
	s.block = out
	return nil
}

// cabChecksum is the CFDATA checksum ([MS-CAB] 2.4): little-endian
// 32-bit words XORed, the tail bytes in reverse significance.
func cabChecksum(b []byte, seed uint32) uint32 {
	csum := seed
	for len(b) >= 4 {
		csum ^= binary.LittleEndian.Uint32(b)
		b = b[4:]
	}
	var ul uint32
	switch len(b) {
	case 3:
		ul = uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2])
	case 2:
		ul = uint32(b[0])<<8 | uint32(b[1])
	case 1:
		ul = uint32(b[0])
	}
	return csum ^ ul
}
