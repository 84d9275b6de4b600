//go:build unix

package scan

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"syscall"
)

// fileOf reports whether ra is a file (or a section of one) that Scan can
// memory-map, and at which offset the data starts.
func fileOf(ra io.ReaderAt) (*os.File, int64, bool) {
	switch r := ra.(type) {
	case *os.File:
		return r, 0, true
	case *io.SectionReader:
		outer, off, _ := r.Outer()
		if f, ok := outer.(*os.File); ok {
			return f, off, true
		}
	}
	return nil, 0, false
}

// mapFile maps size bytes of f starting at off read-only. It refuses
// ranges beyond the end of the file: touching such pages would raise
// SIGBUS.
func mapFile(f *os.File, off, size int64) ([]byte, func(), error) {
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if !st.Mode().IsRegular() || off < 0 || off+size > st.Size() {
		return nil, nil, errors.New("scan: range not mappable")
	}
	page := int64(os.Getpagesize())
	start := off &^ (page - 1)
	length := size + off - start
	if length > math.MaxInt {
		return nil, nil, errors.New("scan: file too large to map")
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, nil, err
	}
	var m []byte
	var merr error
	if err := rc.Control(func(fd uintptr) {
		m, merr = syscall.Mmap(int(fd), start, int(length), syscall.PROT_READ, syscall.MAP_SHARED)
	}); err != nil {
		return nil, nil, err
	}
	if merr != nil {
		return nil, nil, fmt.Errorf("scan: mmap: %w", merr)
	}
	_ = syscall.Madvise(m, syscall.MADV_SEQUENTIAL) // a hint; failure changes nothing
	return m[off-start:], func() { _ = syscall.Munmap(m) }, nil
}
