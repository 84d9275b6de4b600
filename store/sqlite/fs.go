package sqlite

import (
	"io"
	"os"
)

// fsys is the small file-system surface the spool uses. Every fsync and
// rename goes through it so tests can make each step fail (chasquid's
// safeio idea) and check that nothing is acknowledged that is not durable.
type fsys interface {
	Create(name string) (file, error)
	Rename(oldpath, newpath string) error
	SyncDir(dir string) error
	Remove(name string) error
}

// file is the part of *os.File the spool writes through.
type file interface {
	io.Writer
	Sync() error
	Close() error
}

// osFS is the real file system.
type osFS struct{}

func (osFS) Create(name string) (file, error) {
	return os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
}

func (osFS) Rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }

func (osFS) Remove(name string) error { return os.Remove(name) }

func (osFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return err
	}
	return d.Close()
}
