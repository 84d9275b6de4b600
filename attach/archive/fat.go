package archive

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf16"
)

// The FAT12/16/32 reader is written here (Microsoft FAT specification
// 1.03) rather than taken from go-diskfs: go-diskfs follows cluster chains
// without cycle detection (a two-cluster loop grows a slice until the
// process dies) and allocates the FAT from the boot sector's numbers. Here
// chains are bounded by the cluster count, directories by the FAT limit of
// 65536 entries, and clusters claimed twice (cross-linked files) are
// reported instead of read again.

type fatFS struct {
	w           *walker
	base        int64 // offset of the volume in the image (MBR partition)
	bps         int64 // bytes per sector
	cluster     int64 // bytes per cluster
	fatOff      int64
	rootOff     int64 // FAT12/16 fixed root directory
	rootEntries int64
	dataOff     int64
	clusters    uint32 // data clusters, numbered 2..clusters+1
	bits        int    // 12, 16 or 32
	rootCluster uint32 // FAT32
	claimed     []byte // bitmap of clusters already read as a file or directory
}

const fatMaxDirEntries = 65536

// fatVolumeOffset returns where the FAT volume starts: 0 for a bare boot
// sector, or the first FAT partition of an MBR.
func fatVolumeOffset(ra io.ReaderAt, size int64) (int64, bool) {
	head := readHead(ra, size, 0, 512)
	if isFATBoot(head) {
		return 0, true
	}
	if len(head) < 512 || head[510] != 0x55 || head[511] != 0xaa {
		return 0, false
	}
	for i := 0; i < 4; i++ {
		p := head[446+16*i:]
		switch p[4] {
		case 0x01, 0x04, 0x06, 0x0b, 0x0c, 0x0e:
			off := int64(binary.LittleEndian.Uint32(p[8:])) * 512
			if isFATBoot(readHead(ra, size, off, 512)) {
				return off, true
			}
		}
	}
	return 0, false
}

// openFAT reads the BIOS parameter block and derives the layout.
func openFAT(w *walker) (*fatFS, error) {
	base, ok := fatVolumeOffset(w.ra, w.size)
	if !ok {
		return nil, errors.New("no FAT boot sector")
	}
	b := readHead(w.ra, w.size, base, 512)
	le := binary.LittleEndian
	f := &fatFS{w: w, base: base, bps: int64(le.Uint16(b[11:]))}
	spc, reserved, nFATs := int64(b[13]), int64(le.Uint16(b[14:])), int64(b[16])
	f.rootEntries = int64(le.Uint16(b[17:]))
	total := int64(le.Uint16(b[19:]))
	if total == 0 {
		total = int64(le.Uint32(b[32:]))
	}
	fatSectors := int64(le.Uint16(b[22:]))
	if fatSectors == 0 {
		fatSectors = int64(le.Uint32(b[36:]))
		f.rootCluster = le.Uint32(b[44:])
	}
	f.cluster = spc * f.bps
	f.fatOff = base + reserved*f.bps
	f.rootOff = f.fatOff + nFATs*fatSectors*f.bps
	rootSectors := (f.rootEntries*32 + f.bps - 1) / f.bps
	f.dataOff = f.rootOff + rootSectors*f.bps
	dataSectors := total - (f.dataOff-base)/f.bps
	if f.cluster == 0 || nFATs == 0 || fatSectors == 0 || dataSectors <= 0 || f.dataOff > w.size {
		return nil, errors.New("inconsistent boot sector")
	}
	f.clusters = uint32(min(dataSectors/spc, 0x0ffffff0))
	switch {
	case f.clusters < 4085:
		f.bits = 12
	case f.clusters < 65525:
		f.bits = 16
	default:
		f.bits = 32
	}
	if int64(f.clusters+2)*int64(f.bits)/8 > fatSectors*f.bps {
		return nil, errors.New("FAT smaller than the cluster count")
	}
	f.claimed = make([]byte, (f.clusters+2+7)/8)
	return f, nil
}

// next returns the FAT entry of cluster c, or an error for a bad read.
func (f *fatFS) next(c uint32) (uint32, error) {
	switch f.bits {
	case 12:
		b := readHead(f.w.ra, f.w.size, f.fatOff+int64(c)*3/2, 2)
		if len(b) < 2 {
			return 0, io.ErrUnexpectedEOF
		}
		v := uint32(binary.LittleEndian.Uint16(b))
		if c%2 == 1 {
			return v >> 4, nil
		}
		return v & 0xfff, nil
	case 16:
		b := readHead(f.w.ra, f.w.size, f.fatOff+int64(c)*2, 2)
		if len(b) < 2 {
			return 0, io.ErrUnexpectedEOF
		}
		return uint32(binary.LittleEndian.Uint16(b)), nil
	}
	b := readHead(f.w.ra, f.w.size, f.fatOff+int64(c)*4, 4)
	if len(b) < 4 {
		return 0, io.ErrUnexpectedEOF
	}
	return binary.LittleEndian.Uint32(b) & 0x0fffffff, nil
}

func (f *fatFS) isEnd(v uint32) bool {
	switch f.bits {
	case 12:
		return v >= 0xff8
	case 16:
		return v >= 0xfff8
	}
	return v >= 0x0ffffff8
}

// chain returns the cluster chain from first, at most max clusters long,
// claiming each cluster. A cluster outside the volume, a loop, or one
// claimed before is an error.
func (f *fatFS) chain(first uint32, max int64) ([]uint32, error) {
	var out []uint32
	for c := first; ; {
		if c < 2 || c >= f.clusters+2 {
			return out, fmt.Errorf("cluster %d outside the volume", c)
		}
		if f.claimed[c/8]&(1<<(c%8)) != 0 {
			return out, &kindError{ProblemOverlap, fmt.Errorf("cluster %d is used twice (cross-linked or looping chain)", c)}
		}
		f.claimed[c/8] |= 1 << (c % 8)
		out = append(out, c)
		if int64(len(out)) >= max {
			return out, nil
		}
		v, err := f.next(c)
		if err != nil {
			return out, err
		}
		if f.isEnd(v) {
			return out, nil
		}
		c = v
	}
}

// clusterReader reads a file's clusters in chain order.
func (f *fatFS) clusterReader(cl []uint32, size int64) io.Reader {
	rs := make([]io.Reader, 0, len(cl))
	for _, c := range cl {
		n := min(f.cluster, size)
		if n <= 0 {
			break
		}
		rs = append(rs, io.NewSectionReader(f.w.ra, f.dataOff+int64(c-2)*f.cluster, n))
		size -= n
	}
	return io.MultiReader(rs...)
}

func walkFAT(w *walker) error {
	f, err := openFAT(w)
	if err != nil {
		w.problem(ProblemCorrupt, "", "fat: "+err.Error())
		return nil
	}
	var root []byte
	if f.bits == 32 {
		root, err = f.dirData(f.rootCluster)
		if err != nil {
			w.problem(classify(err), "", "fat root directory: "+err.Error())
		}
	} else {
		root = readHead(w.ra, w.size, f.rootOff, int(f.rootEntries*32))
	}
	return f.dir(root, "", 0)
}

// dirData reads a directory's clusters, bounded by the FAT's 65536
// entries.
func (f *fatFS) dirData(first uint32) ([]byte, error) {
	cl, err := f.chain(first, fatMaxDirEntries*32/f.cluster+1)
	var b []byte
	for _, c := range cl {
		b = append(b, readHead(f.w.ra, f.w.size, f.dataOff+int64(c-2)*f.cluster, int(f.cluster))...)
	}
	return b, err
}

// dir emits the entries of one directory and recurses.
func (f *fatFS) dir(data []byte, prefix string, depth int) error {
	w := f.w
	if depth > 64 {
		w.problem(ProblemCorrupt, prefix, "directories nested too deep")
		return nil
	}
	var lfn []uint16
	var lfnParts []string
	for off := 0; off+32 <= len(data); off += 32 {
		d := data[off : off+32]
		attr := d[11]
		switch {
		case d[0] == 0:
			return nil
		case d[0] == 0xe5:
			lfnParts = nil
			continue
		case attr&0x3f == 0x0f: // a long-name piece
			lfnParts = append([]string{lfnPiece(d, &lfn)}, lfnParts...)
			continue
		case attr&0x08 != 0: // volume label
			lfnParts = nil
			continue
		}
		name := shortName(d)
		if len(lfnParts) > 0 {
			name = strings.Join(lfnParts, "")
		}
		lfnParts = nil
		if name == "." || name == ".." {
			continue
		}
		if err := f.visit(d, prefix+name, depth); err != nil {
			return err
		}
	}
	return nil
}

// visit emits one directory entry.
func (f *fatFS) visit(d []byte, name string, depth int) error {
	w := f.w
	le := binary.LittleEndian
	first := uint32(le.Uint16(d[26:]))
	if f.bits == 32 {
		first |= uint32(le.Uint16(d[20:])) << 16
	}
	size := int64(le.Uint32(d[28:]))
	e := Entry{Name: name, Size: size, CompressedSize: size, Method: "store",
		Modified: dosTime(le.Uint16(d[24:]), le.Uint16(d[22:]))}
	if d[11]&0x10 != 0 {
		e.Name, e.Size, e.CompressedSize = name+"/", 0, 0
		if err := w.emit(e, nil); err != nil {
			return err
		}
		data, err := f.dirData(first)
		if err != nil {
			w.problem(classify(err), e.Name, "fat directory: "+err.Error())
		}
		return f.dir(data, e.Name, depth+1)
	}
	if size == 0 {
		return w.emit(e, nil)
	}
	cl, err := f.chain(first, (size+f.cluster-1)/f.cluster)
	if err != nil {
		w.problem(classify(err), name, "fat: "+err.Error())
		if len(cl) == 0 {
			return w.emit(e, nil)
		}
	}
	return w.emit(e, &exactReader{r: f.clusterReader(cl, size), want: size})
}

// lfnPiece decodes the 13 UTF-16 units of a VFAT long-name entry.
func lfnPiece(d []byte, buf *[]uint16) string {
	u := (*buf)[:0]
	for _, r := range [][2]int{{1, 11}, {14, 26}, {28, 32}} {
		for i := r[0]; i < r[1]; i += 2 {
			c := binary.LittleEndian.Uint16(d[i:])
			if c == 0 || c == 0xffff {
				*buf = u
				return string(utf16.Decode(u))
			}
			u = append(u, c)
		}
	}
	*buf = u
	return string(utf16.Decode(u))
}

// shortName formats an 8.3 name, honouring the NT lower-case flags.
func shortName(d []byte) string {
	base := strings.TrimRight(string(d[:8]), " ")
	ext := strings.TrimRight(string(d[8:11]), " ")
	if len(base) > 0 && base[0] == 0x05 {
		base = "\xe5" + base[1:]
	}
	if d[12]&0x08 != 0 {
		base = strings.ToLower(base)
	}
	if d[12]&0x10 != 0 {
		ext = strings.ToLower(ext)
	}
	if ext == "" {
		return base
	}
	return base + "." + ext
}
