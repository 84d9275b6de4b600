package sqlite

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/mailguard/mailguard/store"
)

// blobPath is where content with that SHA-256 is kept.
func (s *DB) blobPath(sum string) string {
	return filepath.Join(s.dir, "blob", sum[:2], sum)
}

func validSum(sum string) bool {
	if len(sum) != 64 {
		return false
	}
	_, err := hex.DecodeString(sum)
	return err == nil
}

// PutBlob stores content under its SHA-256 (content-addressed: the same
// attachment in many messages is kept once), durably: written to a temp
// file, checked against sum, fsynced, renamed, directory fsynced. Storing
// a blob that exists is a no-op.
func (s *DB) PutBlob(ctx context.Context, sum string, r io.Reader) error {
	if !validSum(sum) {
		return fmt.Errorf("store: invalid sha256 %q", sum)
	}
	final := s.blobPath(sum)
	if _, err := os.Stat(final); err == nil {
		// Still in use: touch it, so the retention purge (which removes
		// unreferenced blobs by age) does not take it meanwhile.
		now := s.now()
		os.Chtimes(final, now, now)
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o750); err != nil {
		return fmt.Errorf("store: blob dir: %w", err)
	}
	tmp := filepath.Join(s.dir, "spool", "tmp", "blob-"+sum+"-"+randSuffix())
	f, err := s.fs.Create(tmp)
	if err != nil {
		return fmt.Errorf("store: blob create: %w", err)
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(f, h), r)
	if err == nil && hex.EncodeToString(h.Sum(nil)) != sum {
		err = fmt.Errorf("content does not match its sha256")
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = s.fs.Rename(tmp, final)
	}
	if err == nil {
		err = s.fs.SyncDir(filepath.Dir(final))
	}
	if err != nil {
		s.fs.Remove(tmp)
		return fmt.Errorf("store: blob %s: %w", sum, err)
	}
	return nil
}

// OpenBlob returns the content stored under sum.
func (s *DB) OpenBlob(ctx context.Context, sum string) (io.ReadSeekCloser, error) {
	if !validSum(sum) {
		return nil, store.ErrNotFound
	}
	f, err := os.Open(s.blobPath(sum))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("store: blob %s: %w", sum, store.ErrNotFound)
	}
	return f, err
}

func randSuffix() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
