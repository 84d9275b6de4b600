package archive

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"
	"unicode/utf16"
)

// The ISO 9660 reader is written here (ECMA-119, Joliet, SUSP/Rock Ridge
// IEEE P1282) rather than taken from go-diskfs: go-diskfs allocates sizes
// straight from the image (path table, directory extents, Rock Ridge
// continuation areas: up to 4 GiB each), which a crafted image turns into
// an out-of-memory abort. Here every directory is bounded, loops are
// refused, and file content is a section of the image.

const (
	isoSector     = 2048
	isoMaxDir     = 4 << 20 // bytes of one directory extent
	isoMaxDepth   = 64
	isoMaxCEHops  = 16 // Rock Ridge continuation areas per record
	isoMaxCELen   = 64 << 10
	isoMaxDirRead = 64 << 20 // directory bytes read per image
)

// isoVolume is what the volume descriptors say.
type isoVolume struct {
	block   int64
	root    isoRecord
	joliet  bool // root is the Joliet (UCS-2) tree
	hasUDF  bool // an NSR descriptor: the UDF view may differ (ISO/UDF bridge)
	rrFound bool
}

// isoRecord is one directory record.
type isoRecord struct {
	name      string
	extent    int64
	size      int64
	dir       bool
	multi     bool // more extents of this file follow
	modified  time.Time
	link      string // Rock Ridge symlink target
	relocated bool   // Rock Ridge RE: shown elsewhere via CL
	moved     bool   // Rock Ridge CL: a directory relocated to extent
}

// readISOVolumes reads the volume descriptor set (ECMA-119 §8) and the UDF
// volume recognition sequence.
func readISOVolumes(ra io.ReaderAt, size int64) (*isoVolume, error) {
	v := &isoVolume{}
	var pvd, svd []byte
	for i := int64(0); i < 64; i++ {
		d := readHead(ra, size, 16*isoSector+i*isoSector, isoSector)
		if len(d) < isoSector {
			break
		}
		switch string(d[1:6]) {
		case "NSR02", "NSR03":
			v.hasUDF = true
			continue
		case "BEA01", "BOOT2", "CDW02":
			continue
		case "CD001":
		default: // "TEA01" ends the recognition sequence; anything else is data
			i = 64
			continue
		}
		switch {
		case d[0] == 1 && pvd == nil:
			pvd = d
		case d[0] == 2 && svd == nil && isJoliet(d[88:120]):
			svd = d
		}
	}
	d := pvd
	if svd != nil {
		d, v.joliet = svd, true
	}
	if d == nil {
		return v, errors.New("no primary volume descriptor")
	}
	v.block = int64(binary.LittleEndian.Uint16(d[128:]))
	if v.block < 512 || v.block > isoSector || v.block&(v.block-1) != 0 {
		return v, fmt.Errorf("logical block size %d", v.block)
	}
	root, _, err := parseISORecord(d[156:190], v.joliet)
	if err != nil {
		return v, fmt.Errorf("root directory record: %w", err)
	}
	v.root = root
	if pvd != nil && svd != nil {
		// Prefer Rock Ridge (POSIX names, symlinks) over Joliet when the
		// primary tree has it.
		if pr, _, err := parseISORecord(pvd[156:190], false); err == nil && isoHasSUSP(ra, size, v.block, pr) {
			v.root, v.joliet = pr, false
		}
	}
	return v, nil
}

// isJoliet checks a supplementary descriptor's escape sequences for UCS-2.
func isJoliet(esc []byte) bool {
	return bytes.Contains(esc, []byte("%/@")) || bytes.Contains(esc, []byte("%/C")) || bytes.Contains(esc, []byte("%/E"))
}

// isoHasSUSP looks for the SUSP "SP" entry in the root's "." record.
func isoHasSUSP(ra io.ReaderAt, size, block int64, root isoRecord) bool {
	b := readHead(ra, size, root.extent*block, 256)
	if len(b) < 34 || int(b[0]) > len(b) || b[0] < 34 {
		return false
	}
	su := b[34:b[0]] // "." has a 1-byte name: 33 + 1, no padding
	return len(su) >= 7 && su[0] == 'S' && su[1] == 'P' && su[4] == 0xbe && su[5] == 0xef
}

// parseISORecord parses one directory record (ECMA-119 §9.1) and returns
// its system use area.
func parseISORecord(b []byte, joliet bool) (isoRecord, []byte, error) {
	if len(b) < 34 || int(b[0]) > len(b) || b[0] < 34 {
		return isoRecord{}, nil, errors.New("short directory record")
	}
	n := int(b[32])
	if 33+n > int(b[0]) {
		return isoRecord{}, nil, errors.New("name past the record")
	}
	r := isoRecord{
		extent:   int64(binary.LittleEndian.Uint32(b[2:])),
		size:     int64(binary.LittleEndian.Uint32(b[10:])),
		dir:      b[25]&0x02 != 0,
		multi:    b[25]&0x80 != 0,
		modified: isoTime(b[18:25]),
	}
	raw := b[33 : 33+n]
	switch {
	case n == 1 && raw[0] == 0:
		r.name = "."
	case n == 1 && raw[0] == 1:
		r.name = ".."
	case joliet:
		u := make([]uint16, n/2)
		for i := range u {
			u[i] = binary.BigEndian.Uint16(raw[2*i:])
		}
		r.name = string(utf16.Decode(u))
	default:
		r.name = string(raw)
	}
	if !r.dir && r.name != "." && r.name != ".." {
		if i := strings.LastIndexByte(r.name, ';'); i > 0 {
			r.name = r.name[:i]
		}
		r.name = strings.TrimSuffix(r.name, ".")
	}
	var su []byte
	if start := 33 + n + (1 - n%2); start <= int(b[0]) {
		su = b[start:b[0]]
	}
	return r, su, nil
}

// isoTime decodes a 7-byte recording date (ECMA-119 §9.1.5).
func isoTime(b []byte) time.Time {
	if b[1] == 0 || b[1] > 12 || b[2] == 0 {
		return time.Time{}
	}
	zone := time.FixedZone("", int(int8(b[6]))*15*60)
	return time.Date(1900+int(b[0]), time.Month(b[1]), int(b[2]), int(b[3]), int(b[4]), int(b[5]), 0, zone)
}

// walkUDFView walks the UDF view of an image through 7z. It reports false
// (and a problem) when 7z cannot list it, so the ISO 9660 view is walked
// instead.
func (w *walker) walkUDFView() (bool, error) {
	format := w.format
	w.format = UDF
	s, err := w.cliOpen()
	var entries []cliEntry
	if err == nil {
		entries, err = w.cliList(s)
	}
	if ctxErr := w.ctx.Err(); ctxErr != nil {
		return true, ctxErr
	}
	if err != nil || len(entries) == 0 {
		w.format = format
		w.problem(ProblemCorrupt, "", fmt.Sprintf("udf view unreadable by 7z (%v); reading the ISO 9660 view", err))
		return false, nil
	}
	w.res.Format = UDF
	for _, ce := range entries {
		if err := w.cliVisit(ce); err != nil {
			return true, err
		}
	}
	return true, nil
}

// isoWalk walks one ISO 9660 tree.
type isoWalk struct {
	w       *walker
	v       *isoVolume
	visited map[int64]bool // directory extents already read
	dirRead int64
}

func walkISO(w *walker) error {
	v, err := readISOVolumes(w.ra, w.size)
	if v != nil && v.hasUDF && w.cliAvailable() {
		// Windows shows the UDF view of an ISO/UDF bridge, and it may hold
		// other files than the ISO 9660 view.
		if done, err := w.walkUDFView(); done || err != nil {
			return err
		}
	}
	if err != nil {
		if v != nil && v.hasUDF {
			w.unsupported("udf: no Go reader, and the 7z fallback is unusable")
			return nil
		}
		w.problem(ProblemCorrupt, "", "iso9660: "+err.Error())
		return nil
	}
	if v.hasUDF {
		w.problem(ProblemUnsupportedMethod, "", "ISO/UDF bridge: only the ISO 9660 view was read, not the UDF view Windows shows")
	}
	iw := &isoWalk{w: w, v: v, visited: map[int64]bool{}}
	return iw.dir(v.root, "", 0)
}

// dir emits the records of one directory and recurses.
func (iw *isoWalk) dir(d isoRecord, prefix string, depth int) error {
	w := iw.w
	switch {
	case depth > isoMaxDepth:
		w.problem(ProblemCorrupt, prefix, "directories nested too deep")
		return nil
	case iw.visited[d.extent]:
		w.problem(ProblemCorrupt, prefix, "directory loop")
		return nil
	case d.size > isoMaxDir || iw.dirRead+d.size > isoMaxDirRead:
		w.problem(ProblemBomb, prefix, fmt.Sprintf("directory of %d bytes", d.size))
		return nil
	}
	iw.visited[d.extent] = true
	iw.dirRead += d.size
	data := readHead(w.ra, w.size, d.extent*iw.v.block, int(d.size))
	if int64(len(data)) < d.size {
		w.problem(ProblemTruncated, prefix, "directory past the end of the image")
	}
	var pending []isoRecord // extents of a multi-extent file
	for off := 0; off < len(data); {
		n := int(data[off])
		if n == 0 { // records do not cross sectors: skip the padding
			off = (off/isoSector + 1) * isoSector
			continue
		}
		r, su, err := parseISORecord(data[off:], iw.v.joliet)
		if err != nil {
			w.problem(ProblemCorrupt, prefix, "iso9660: "+err.Error())
			return nil
		}
		off += n
		if r.name == "." || r.name == ".." {
			continue
		}
		if !iw.v.joliet {
			iw.rockRidge(&r, su)
		}
		if r.relocated {
			continue
		}
		if r.multi {
			pending = append(pending, r)
			continue
		}
		if err := iw.visit(append(pending, r), prefix, depth); err != nil {
			return err
		}
		pending = nil
	}
	return nil
}

// visit emits one file (its extents) or directory.
func (iw *isoWalk) visit(parts []isoRecord, prefix string, depth int) error {
	w := iw.w
	last := parts[len(parts)-1]
	name := prefix + last.name
	e := Entry{Name: name, Modified: last.modified, Dir: last.dir, Link: last.link, Method: "store"}
	if last.dir {
		e.Name += "/"
		e.Size, e.CompressedSize = 0, 0
		if err := w.emit(e, nil); err != nil {
			return err
		}
		if last.moved { // the size is in the relocated directory's "." record
			dot, _, err := parseISORecord(readHead(w.ra, w.size, last.extent*iw.v.block, 256), false)
			if err != nil {
				w.problem(ProblemCorrupt, e.Name, "relocated directory: "+err.Error())
				return nil
			}
			last.size = dot.size
		}
		return iw.dir(last, e.Name, depth+1)
	}
	var readers []io.Reader
	for _, p := range parts {
		e.Size += p.size
		start := p.extent * iw.v.block
		if start > w.size || p.size > w.size-start {
			w.problem(ProblemTruncated, name, fmt.Sprintf("extent of %d bytes at %d past the end of the image", p.size, start))
		}
		readers = append(readers, io.NewSectionReader(w.ra, start, p.size))
	}
	e.CompressedSize = e.Size
	if e.Link != "" {
		return w.emit(e, nil)
	}
	return w.emit(e, &exactReader{r: io.MultiReader(readers...), want: e.Size})
}

// rockRidge applies the SUSP entries of a record (IEEE P1282): NM names,
// SL symlinks, RE/CL directory relocation, following CE continuations.
func (iw *isoWalk) rockRidge(r *isoRecord, su []byte) {
	var name, link []string
	haveName := false
	for hops := 0; len(su) >= 4 && hops <= isoMaxCEHops; {
		sig, n := string(su[:2]), int(su[2])
		if n < 4 || n > len(su) {
			break
		}
		data := su[4:n]
		switch sig {
		case "NM":
			if len(data) >= 1 && data[0]&0x06 == 0 {
				name, haveName = append(name, string(data[1:])), true
			}
		case "SL":
			link = append(link, slComponents(data)...)
		case "RE":
			r.relocated = true
		case "CL":
			if len(data) >= 4 {
				r.extent, r.dir, r.moved = int64(binary.LittleEndian.Uint32(data)), true, true
			}
		case "CE":
			if len(data) >= 24 {
				blk := int64(binary.LittleEndian.Uint32(data))
				off := int64(binary.LittleEndian.Uint32(data[8:]))
				ln := int64(binary.LittleEndian.Uint32(data[16:]))
				if ln <= isoMaxCELen {
					su = readHead(iw.w.ra, iw.w.size, blk*iw.v.block+off, int(ln))
					hops++
					continue
				}
			}
		case "ST":
			su = nil
			continue
		}
		su = su[n:]
	}
	if haveName {
		r.name = strings.Join(name, "")
	}
	if len(link) > 0 {
		r.link = path.Join(link...)
		if strings.HasPrefix(link[0], "/") {
			r.link = "/" + strings.TrimPrefix(r.link, "/")
		}
	}
}

// slComponents decodes the component records of an SL entry.
func slComponents(data []byte) []string {
	var out []string
	if len(data) < 1 {
		return nil
	}
	for c := data[1:]; len(c) >= 2; {
		flags, n := c[0], int(c[1])
		if 2+n > len(c) {
			break
		}
		switch {
		case flags&0x02 != 0:
			out = append(out, ".")
		case flags&0x04 != 0:
			out = append(out, "..")
		case flags&0x08 != 0:
			out = append(out, "/")
		default:
			out = append(out, string(c[2:2+n]))
		}
		c = c[2+n:]
	}
	return out
}
