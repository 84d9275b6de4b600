package attach

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"sync"
)

// bytesReader is a bytes.Reader constructor kept in one place.
func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

// spillDir is the private directory of one walk's spill files, created on
// first use under the caller's TempDir and removed by Result.Close.
type spillDir struct {
	parent string
	mu     sync.Mutex
	dir    string
	files  []*File
	n      int
}

func (s *spillDir) create() (*os.File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dir == "" {
		parent := s.parent
		if parent == "" {
			parent = os.TempDir()
		}
		d, err := os.MkdirTemp(parent, "mailguard-attach-")
		if err != nil {
			return nil, fmt.Errorf("spill: %w", err)
		}
		s.dir = d
	}
	s.n++
	f, err := os.CreateTemp(s.dir, fmt.Sprintf("f%05d-", s.n))
	if err != nil {
		return nil, fmt.Errorf("spill: %w", err)
	}
	return f, nil
}

func (s *spillDir) track(f *File) {
	s.mu.Lock()
	s.files = append(s.files, f)
	s.mu.Unlock()
}

func (s *spillDir) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, f := range s.files {
		errs = append(errs, f.closeHandle())
	}
	s.files = nil
	if s.dir != "" {
		errs = append(errs, os.RemoveAll(s.dir))
		s.dir = ""
	}
	return errors.Join(errs...)
}

// errSpill marks an I/O failure of the spill directory: the one error
// (besides cancellation) that Walk returns.
type errSpill struct{ err error }

func (e errSpill) Error() string { return e.err.Error() }
func (e errSpill) Unwrap() error { return e.err }

// sink receives the bytes of one file: it hashes them, keeps them in memory
// up to memMax and spills the rest to a file, and stops accepting bytes at
// max (the file is then truncated).
type sink struct {
	spill     *spillDir
	memMax    int64
	max       int64
	buf       bytes.Buffer
	fh        *os.File
	n         int64
	h         hash.Hash
	truncated bool
	err       error
}

func newSink(spill *spillDir, memMax, max int64) *sink {
	return &sink{spill: spill, memMax: memMax, max: max, h: sha256.New()}
}

// Write never fails for the caller's sake except on spill I/O; bytes past
// max are counted as truncation and dropped.
func (s *sink) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n := len(p)
	if room := s.max - s.n; int64(len(p)) > room {
		if room < 0 {
			room = 0
		}
		p = p[:room]
		s.truncated = true
	}
	if len(p) == 0 {
		return n, nil
	}
	s.h.Write(p)
	if s.fh == nil && s.n+int64(len(p)) > s.memMax {
		fh, err := s.spill.create()
		if err != nil {
			s.err = errSpill{err}
			return 0, s.err
		}
		s.fh = fh
		if _, err := fh.Write(s.buf.Bytes()); err != nil {
			s.err = errSpill{fmt.Errorf("spill: %w", err)}
			return 0, s.err
		}
		s.buf = bytes.Buffer{}
	}
	if s.fh != nil {
		if _, err := s.fh.Write(p); err != nil {
			s.err = errSpill{fmt.Errorf("spill: %w", err)}
			return 0, s.err
		}
	} else {
		s.buf.Write(p)
	}
	s.n += int64(len(p))
	return n, nil
}

// full reports whether further bytes would be dropped.
func (s *sink) full() bool { return s.n >= s.max }

// finish stores the content in f (size, sha256, memory or spill path).
func (s *sink) finish(f *File) error {
	if s.err != nil {
		if s.fh != nil {
			s.fh.Close()
		}
		return s.err
	}
	f.Size = s.n
	f.SHA256 = hex.EncodeToString(s.h.Sum(nil))
	f.Truncated = s.truncated
	if s.fh != nil {
		name := s.fh.Name()
		if err := s.fh.Close(); err != nil {
			return errSpill{fmt.Errorf("spill: %w", err)}
		}
		f.path = name
		s.spill.track(f)
		return nil
	}
	f.data = s.buf.Bytes()
	return nil
}

// copyBufs are copyInto's buffers: an archive of thousands of small
// members would otherwise allocate one per member.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyInto copies r into s until EOF, the sink is full (the rest of r is
// not read: that is how a bomb is cut short) or r fails. It returns r's
// error other than EOF, or the spill error.
func copyInto(s *sink, r io.Reader) error {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	for {
		if s.full() {
			// Probe one byte to learn whether there was more.
			var one [1]byte
			if n, _ := r.Read(one[:]); n > 0 {
				s.truncated = true
			}
			return nil
		}
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := s.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// head returns up to n leading bytes of f.
func (f *File) head(n int) []byte {
	if f.path == "" {
		if len(f.data) < n {
			return f.data
		}
		return f.data[:n]
	}
	ra, size, err := f.ReaderAt()
	if err != nil {
		return nil
	}
	if size < int64(n) {
		n = int(size)
	}
	b := make([]byte, n)
	m, _ := ra.ReadAt(b, 0)
	return b[:m]
}

// tail returns up to n trailing bytes of f.
func (f *File) tail(n int) []byte {
	if f.path == "" {
		if len(f.data) < n {
			return f.data
		}
		return f.data[len(f.data)-n:]
	}
	ra, size, err := f.ReaderAt()
	if err != nil {
		return nil
	}
	if size < int64(n) {
		n = int(size)
	}
	b := make([]byte, n)
	m, _ := ra.ReadAt(b, size-int64(n))
	return b[:m]
}

// bytesUpTo returns the whole content when it is at most max bytes (in
// memory or read from the spill file), else nil and false.
func (f *File) bytesUpTo(max int64) ([]byte, bool) {
	if f.Size > max {
		return nil, false
	}
	if f.path == "" {
		return f.data, true
	}
	ra, size, err := f.ReaderAt()
	if err != nil {
		return nil, false
	}
	b := make([]byte, size)
	if _, err := ra.ReadAt(b, 0); err != nil && err != io.EOF {
		return nil, false
	}
	return b, true
}

// limitReader bounds what a decoder may produce.
func limitReader(r io.Reader, n int64) io.Reader { return io.LimitReader(r, n) }

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
