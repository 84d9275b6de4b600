package archive

import (
	"crypto/aes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"

	"github.com/bodgit/sevenzip"
)

// szWalk walks a 7z archive whose header passed szReadHeader.
type szWalk struct {
	w    *walker
	info *szInfo
	zr   *sevenzip.Reader // opened with password pw
	pw   int              // candidate index of zr's password, -1 for none
	// keyOf remembers, per encrypted folder, the candidate that opened it
	// (-1: none did).
	keyOf map[int]int
	// pos is how far the library has decoded each folder; reaching a file
	// further on decodes and discards the bytes in between.
	pos map[int]int64
}

func walk7z(w *walker) error {
	info, err := w.szReadHeader()
	if info != nil && info.headerEncrypted {
		w.res.HeadersEncrypted, w.res.Encrypted = true, true
	}
	if err != nil {
		w.szProblem("", err)
		return nil
	}
	if info.headerEncrypted {
		if info.headerPassword < 0 {
			return nil // HeadersEncrypted without PasswordSource says it
		}
		w.res.PasswordSource = w.source(info.headerPassword)
	}
	if info.files == 0 {
		return nil
	}
	s := &szWalk{w: w, info: info, pw: -1, keyOf: map[int]int{}, pos: map[int]int64{}}
	if err := s.open(info.headerPassword); err != nil {
		w.szProblem("", err)
		return nil
	}
	offset := map[int]int64{} // each file's offset in its folder
	for i, f := range s.zr.File {
		if w.lim.MaxEntries >= 0 && i > w.lim.MaxEntries {
			break
		}
		off := offset[f.Stream]
		if !f.FileInfo().IsDir() && f.UncompressedSize > 0 {
			offset[f.Stream] += int64(f.UncompressedSize)
		}
		if err := s.visit(i, f, off); err != nil {
			return err
		}
	}
	return nil
}

// szProblem records a 7z error, marking unsupported coders as such.
func (w *walker) szProblem(entry string, err error) {
	kind := classify(err)
	w.problem(kind, entry, err.Error())
	if kind == ProblemUnsupportedMethod {
		w.unsupported("7z: " + err.Error())
	}
}

// open (re)opens the archive with candidate i (-1: no password).
func (s *szWalk) open(i int) error {
	pw := ""
	if i >= 0 {
		pw = s.w.keys.cands[i].Value
	}
	zr, err := sevenzip.NewReaderWithPassword(s.w.ra, s.w.size, pw)
	if err != nil {
		return err
	}
	s.zr, s.pw = zr, i
	return nil
}

// folder returns the parsed folder of file f, or nil for files without
// content.
func (s *szWalk) folder(f *sevenzip.File) *szFolder {
	fs := s.info.main.folders
	if f.FileInfo().IsDir() || f.UncompressedSize == 0 || f.Stream < 0 || f.Stream >= len(fs) {
		return nil
	}
	return fs[f.Stream]
}

func (s *szWalk) visit(i int, f *sevenzip.File, off int64) error {
	w := s.w
	e := Entry{Name: f.Name, Size: int64(f.UncompressedSize), CompressedSize: -1, Modified: f.Modified,
		Dir: f.FileInfo().IsDir()}
	fo := s.folder(f)
	if fo == nil {
		e.CompressedSize = 0
		return w.emit(e, nil)
	}
	e.Method, e.Encrypted = fo.method(), fo.encrypted()
	if s.info.main.subCounts[f.Stream] == 1 {
		var packed uint64
		for _, n := range s.info.main.packSizes[fo.firstPack : fo.firstPack+len(fo.packedIn)] {
			packed += n
		}
		e.CompressedSize = int64(min(packed, 1<<62))
	}
	if e.Encrypted {
		ok, err := s.unlock(i, f.Stream)
		if err != nil {
			return err
		}
		if !ok {
			e.Locked = true
			return w.emit(e, nil)
		}
		e.Decrypted, e.PasswordSource = true, w.source(s.pw)
	}
	skip := off - s.pos[f.Stream]
	if skip < 0 {
		skip = off // the pooled reader is past this file: decoding restarts
	}
	if w.lim.MaxTotalBytes >= 0 && w.res.Bytes+w.skipped+skip > w.lim.MaxTotalBytes {
		w.problem(ProblemTotalSize, f.Name, fmt.Sprintf("reaching it in its solid block needs %d more bytes decoded; walk stopped", skip))
		w.stopped = true
		return errStop
	}
	w.skipped += skip
	rc, err := s.zr.File[i].Open()
	if err != nil {
		w.szProblem(f.Name, err)
		return w.emit(e, nil)
	}
	defer rc.Close()
	cr := &countReader{r: rc}
	var r io.Reader = cr
	if f.CRC32 != 0 {
		r = &crcReader{r: cr, h: crc32.NewIEEE(), want: f.CRC32, check: true, size: -1}
	}
	err = w.emit(e, &szErrReader{r})
	s.pos[f.Stream] = off + cr.n
	return err
}

// unlock finds the password of an encrypted folder: each candidate opens
// the archive and decodes the start of file i (up to confirmBytes, or one
// byte for the password that already worked here; a wrong AES key breaks
// the LZMA stream at once). The archive stays open with the winner.
func (s *szWalk) unlock(i, folder int) (bool, error) {
	if k, ok := s.keyOf[folder]; ok {
		if k >= 0 && k != s.pw {
			if err := s.open(k); err != nil {
				return false, nil
			}
			clear(s.pos)
		}
		return k >= 0, nil
	}
	w := s.w
	k, err := w.unlock(func(pw string, remembered bool) (bool, error) {
		if !remembered && !s.paddingOK(folder, pw) {
			return false, nil
		}
		zr, err := sevenzip.NewReaderWithPassword(w.ra, w.size, pw)
		if err != nil {
			return false, nil
		}
		n := int64(confirmBytes)
		if remembered {
			n = 1
		}
		f := zr.File[i]
		rc, err := f.Open()
		if err != nil {
			return false, nil
		}
		defer rc.Close()
		// A wrong key can pass as LZMA2 "uncompressed" chunks for a long
		// way: the CRC decides when the file ends within the trial.
		r := &crcReader{r: rc, h: crc32.NewIEEE(), want: f.CRC32, check: f.CRC32 != 0, size: -1}
		if _, err := io.CopyN(io.Discard, r, n); err != nil && !errors.Is(err, io.EOF) {
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return false, err
	}
	s.keyOf[folder] = k
	if k < 0 {
		return false, nil
	}
	if k != s.pw {
		if err := s.open(k); err != nil {
			w.szProblem("", err)
			return false, nil
		}
		clear(s.pos)
	}
	return true, nil
}

// szErrReader classifies the library's read errors: a wrapped LZMA error
// with ReadError.Encrypted is what a wrong password looks like.
type szErrReader struct{ r io.Reader }

func (s *szErrReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	var re *sevenzip.ReadError
	if err != nil && errors.As(err, &re) && re.Encrypted {
		err = &kindError{ProblemChecksum, fmt.Errorf("decryption failed (wrong password?): %w", err)}
	}
	return n, err
}

// paddingOK checks pw against the end of an encrypted folder's packed
// stream, before any decoding: 7-Zip pads the AES input with zeros to a
// whole block, and an LZMA2 stream ends with a 0x00 byte, so the last
// block decrypted with the right key ends in zeros where the AES coder's
// declared output ends. A wrong key passes with odds of 2^-8 per such
// byte. Folders where that cannot be checked pass.
func (s *szWalk) paddingOK(folder int, pw string) bool {
	m := s.info.main
	f := m.folders[folder]
	var in, out uint64
	for ci, c := range f.coders {
		if c.id != szAES || c.in != 1 || c.out != 1 || len(c.props) < 1 {
			in, out = in+c.in, out+c.out
			continue
		}
		pi := slices.Index(f.packedIn, in) // the AES input must be a packed stream
		if pi < 0 {
			return true
		}
		off := s.info.start + szSigLen + int64(m.packPos)
		for _, n := range m.packSizes[:f.firstPack+pi] {
			off += int64(n)
		}
		packed, plain := int64(m.packSizes[f.firstPack+pi]), int64(f.unpack[out])
		zeros := packed - plain
		if ci > 0 && f.coders[ci-1].id == szLZMA2 && f.coders[ci-1].in == 1 {
			prevIn := in - 1 // the LZMA2 coder 7-Zip lists before its AES input
			for j := range f.bindIn {
				if f.bindIn[j] == prevIn && f.bindOut[j] == out {
					zeros++ // the LZMA2 end marker
				}
			}
		}
		if packed < aes.BlockSize || packed%aes.BlockSize != 0 || zeros <= 0 || zeros > aes.BlockSize {
			return true
		}
		tail := readHead(s.w.ra, s.w.size, off+packed-2*aes.BlockSize, 2*aes.BlockSize)
		if packed == aes.BlockSize {
			tail = append(make([]byte, aes.BlockSize), readHead(s.w.ra, s.w.size, off, aes.BlockSize)...)
		}
		if len(tail) != 2*aes.BlockSize {
			return true
		}
		last, err := szDecryptBlock(c.props, tail, pw, packed == aes.BlockSize)
		if err != nil {
			return true
		}
		for _, b := range last[aes.BlockSize-int(zeros):] {
			if b != 0 {
				return false
			}
		}
		return true
	}
	return true
}
