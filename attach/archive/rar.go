package archive

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/nwaples/rardecode/v2"
)

// rarMain is what the main archive header says (RAR 5.0 archive format
// §"Main archive header"; RAR 2.9-4.x technote MAIN_HEAD).
type rarMain struct {
	version          int // 4 or 5
	solid            bool
	headersEncrypted bool
	multiVolume      bool
}

// readRARMain reads the main archive header after the signature.
func readRARMain(ra io.ReaderAt, size int64) (rarMain, bool) {
	h := readHead(ra, size, 0, 64)
	switch {
	case len(h) >= 20 && string(h[:8]) == "Rar!\x1a\x07\x01\x00":
		m := rarMain{version: 5}
		b := h[8+4:] // after the block CRC
		var ok bool
		var typ, flags, arcFlags uint64
		if b, ok = skipUvarint(b); !ok { // header size
			return m, false
		}
		if typ, b, ok = uvarint(b); !ok {
			return m, false
		}
		if typ == 4 { // archive encryption header: everything after is encrypted
			m.headersEncrypted, m.solid = true, true
			return m, true
		}
		if flags, b, ok = uvarint(b); !ok || typ != 1 {
			return m, false
		}
		for _, bit := range []uint64{1, 2} { // extra and data area sizes
			if flags&bit != 0 {
				if b, ok = skipUvarint(b); !ok {
					return m, false
				}
			}
		}
		if arcFlags, _, ok = uvarint(b); !ok {
			return m, false
		}
		m.solid, m.multiVolume = arcFlags&0x4 != 0, arcFlags&0x1 != 0
		return m, true
	case len(h) >= 14 && string(h[:7]) == "Rar!\x1a\x07\x00" && h[9] == 0x73:
		flags := binary.LittleEndian.Uint16(h[10:])
		return rarMain{version: 4, solid: flags&0x8 != 0, headersEncrypted: flags&0x80 != 0,
			multiVolume: flags&0x1 != 0}, true
	}
	return rarMain{}, false
}

func uvarint(b []byte) (uint64, []byte, bool) {
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, nil, false
	}
	return v, b[n:], true
}

func skipUvarint(b []byte) ([]byte, bool) {
	_, rest, ok := uvarint(b)
	return rest, ok
}

// rarWalk walks a RAR archive with one rardecode.Reader at a time, opened
// with the password that last worked.
type rarWalk struct {
	w    *walker
	main rarMain
	r    *rardecode.Reader
	pw   int // candidate index of r's password, -1 for none
}

func walkRAR(w *walker) error {
	main, ok := readRARMain(w.ra, w.size)
	if !ok {
		w.problem(ProblemCorrupt, "", "rar: no main archive header")
		return nil
	}
	if main.headersEncrypted {
		w.res.HeadersEncrypted, w.res.Encrypted = true, true
	}
	rw := &rarWalk{w: w, main: main, pw: -1}
	var err error
	rw.r, err = rw.open(nil)
	if err != nil && !errors.Is(err, rardecode.ErrArchiveEncrypted) {
		w.problem(classify(err), "", "rar: "+err.Error())
		return nil
	}
	for n := 0; ; n++ {
		var h *rardecode.FileHeader
		if err == nil {
			h, err = rw.r.Next()
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if h, err = rw.recover(n, err); err != nil || h == nil {
				return err
			}
		}
		if err := rw.visit(n, h); err != nil {
			return err
		}
	}
}

// password returns candidate i's value, nil for -1 (no password).
func (rw *rarWalk) password(i int) *string {
	if i < 0 {
		return nil
	}
	return &rw.w.keys.cands[i].Value
}

// open returns a fresh reader of the archive (pw nil: no password).
func (rw *rarWalk) open(pw *string) (*rardecode.Reader, error) {
	opts := []rardecode.Option{rardecode.MaxDictionarySize(rw.w.lim.MaxDictionary)}
	if pw != nil {
		opts = append(opts, rardecode.Password(*pw))
	}
	return rardecode.NewReader(io.NewSectionReader(rw.w.ra, 0, rw.w.size), opts...)
}

// seek opens a fresh reader and advances it to entry n.
func (rw *rarWalk) seek(pw *string, n int) (*rardecode.Reader, *rardecode.FileHeader, error) {
	r, err := rw.open(pw)
	if err != nil {
		return nil, nil, err
	}
	var h *rardecode.FileHeader
	for range n + 1 {
		if err := rw.w.ctx.Err(); err != nil {
			return nil, nil, err
		}
		if h, err = r.Next(); err != nil {
			return nil, nil, err
		}
	}
	return r, h, nil
}

// recover handles a Next error at entry n: encrypted headers need a
// password (each candidate opens the archive and reaches entry n). Other
// errors end the walk with a problem (the library's reader is unusable
// after a failed Next). It returns the entry's header, or nil to stop.
func (rw *rarWalk) recover(n int, err error) (*rardecode.FileHeader, error) {
	w := rw.w
	switch {
	case errors.Is(err, rardecode.ErrArchiveEncrypted) && rw.pw < 0:
		w.res.HeadersEncrypted, w.res.Encrypted = true, true
		i, err := w.unlock(func(pw string, _ bool) (bool, error) {
			_, _, err := rw.seek(&pw, n)
			return err == nil, nil
		})
		if err != nil || i < 0 {
			return nil, err // HeadersEncrypted without PasswordSource says it
		}
		w.res.PasswordSource = w.source(i)
		return rw.reseek(i, n)
	case errors.Is(err, rardecode.ErrDictionaryTooLarge):
		w.problem(ProblemBomb, "", fmt.Sprintf("rar: entry %d declares a dictionary beyond %d bytes; walk stopped", n, w.lim.MaxDictionary))
	case errors.Is(err, rardecode.ErrMultiVolume):
		w.problem(ProblemTruncated, "", "rar: archive continues in another volume")
	default:
		w.problem(classify(err), "", fmt.Sprintf("rar: entry %d: %v", n, err))
	}
	return nil, nil
}

// reseek makes a fresh reader with candidate i the current one, at entry n.
func (rw *rarWalk) reseek(i, n int) (*rardecode.FileHeader, error) {
	r, h, err := rw.seek(rw.password(i), n)
	if err != nil {
		if ctxErr := rw.w.ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		rw.w.problem(classify(err), "", fmt.Sprintf("rar: entry %d: %v", n, err))
		return nil, nil
	}
	rw.r, rw.pw = r, i
	return h, nil
}

func (rw *rarWalk) visit(n int, h *rardecode.FileHeader) error {
	w := rw.w
	e := Entry{Name: h.Name, Size: h.UnPackedSize, CompressedSize: h.PackedSize, Modified: h.ModificationTime,
		Dir: h.IsDir, Encrypted: h.Encrypted, Method: fmt.Sprintf("rar%d", rw.main.version)}
	if h.UnKnownSize {
		e.Size = -1
	}
	if h.Encrypted {
		e.Method += "+aes"
	}
	if h.LinkType != rardecode.LinkTypeNone {
		e.Link = h.LinkTarget
		if e.Link == "" {
			e.Link = "?"
		}
		return w.emit(e, nil)
	}
	if e.Dir {
		return w.emit(e, nil)
	}
	var r io.Reader = rw.r
	if h.Encrypted {
		var err error
		if r, err = rw.unlock(n); err != nil {
			return err
		}
		if r == nil {
			e.Locked = true
			return w.emit(e, nil)
		}
		e.Decrypted, e.PasswordSource = true, w.source(rw.pw)
	}
	cr := &countReader{r: r}
	if err := w.emit(e, cr); err != nil {
		return err
	}
	return rw.drain(h, cr.n)
}

// unlock returns a reader of encrypted entry n, or nil when no candidate
// opens it. The current password is tried first by reading one byte (RAR
// 5 checks the password there). Otherwise each candidate opens the
// archive, advances to entry n and decodes up to confirmBytes of it: a
// wrong RAR 5 password fails at once on its check value, a wrong RAR 3
// key only as bad data or a CRC mismatch.
func (rw *rarWalk) unlock(n int) (io.Reader, error) {
	w := rw.w
	if rw.pw >= 0 {
		var b [1]byte
		k, err := io.ReadFull(rw.r, b[:])
		switch {
		case err == nil, errors.Is(err, io.EOF):
			return io.MultiReader(bytes.NewReader(b[:k]), rw.r), nil
		case !errors.Is(err, rardecode.ErrBadPassword):
			return &errReader{err}, nil
		}
	}
	i, err := w.unlock(func(pw string, remembered bool) (bool, error) {
		r, h, err := rw.seek(&pw, n)
		if err != nil {
			return false, nil
		}
		limit := int64(confirmBytes)
		switch {
		case remembered:
			limit = 1
		case rw.main.version == 4:
			// RAR 3.x has no password check value, and stored data has no
			// structure to break: only the CRC at the end tells.
			limit = max(limit, w.entryCap(h.UnPackedSize)+1)
		}
		if _, err := io.CopyN(io.Discard, r, limit); err != nil && !errors.Is(err, io.EOF) {
			return false, nil
		}
		return true, nil
	})
	if err != nil || i < 0 {
		return nil, err
	}
	if h, err := rw.reseek(i, n); err != nil || h == nil {
		return nil, err
	}
	return rw.r, nil
}

// drain reads the rest of an entry that fn left unread in a solid
// archive, where the next entry's decoding depends on this one's.
func (rw *rarWalk) drain(h *rardecode.FileHeader, read int64) error {
	w := rw.w
	if !rw.main.solid || w.stopped {
		return nil
	}
	rest := int64(-1)
	if !h.UnKnownSize {
		rest = max(h.UnPackedSize-read, 0)
	}
	return w.skip(h.Name, rw.r, rest)
}
