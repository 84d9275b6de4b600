package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"

	"github.com/mailguard/mailguard/store"
)

func validSum(sum string) bool {
	if len(sum) != 64 {
		return false
	}
	_, err := hex.DecodeString(sum)
	return err == nil
}

// PutBlob implements store.Store: content-addressed, so the same
// attachment in many messages (or sent by many nodes at once) is kept
// once. The content is read and checked against sum before anything is
// written; storing a blob that exists only marks it as recently used, so
// that retention measures its age from its last use.
func (s *DB) PutBlob(ctx context.Context, sum string, r io.Reader) error {
	if !validSum(sum) {
		return fmt.Errorf("store: invalid sha256 %q", sum)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE blobs SET stored_at = greatest(stored_at, $2) WHERE sha256 = $1`, sum, s.now())
	if err != nil {
		return fmt.Errorf("store: blob %s: %w", sum, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	b := s.newBuffer()
	defer b.Close()
	h := sha256.New()
	if _, err := b.readFrom(io.TeeReader(r, h), s.chunk); err != nil {
		return fmt.Errorf("store: blob %s: %w", sum, err)
	}
	if hex.EncodeToString(h.Sum(nil)) != sum {
		return fmt.Errorf("store: blob %s: content does not match its sha256", sum)
	}
	err = s.tx(ctx, func(tx pgx.Tx) error {
		// A node storing the same content at the same moment makes this
		// wait for its commit, then insert nothing.
		tag, err := tx.Exec(ctx, `INSERT INTO blobs (sha256, size, stored_at) VALUES ($1, $2, $3)
			ON CONFLICT (sha256) DO NOTHING`, sum, b.size, s.now())
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		return s.writeChunks(ctx, tx, "blob_chunks", "sha256", sum, b)
	})
	if err != nil {
		return fmt.Errorf("store: blob %s: %w", sum, err)
	}
	return nil
}

// OpenBlob implements store.Store.
func (s *DB) OpenBlob(ctx context.Context, sum string) (io.ReadSeekCloser, error) {
	if !validSum(sum) {
		return nil, store.ErrNotFound
	}
	r, found, err := s.readChunks(ctx, "blob_chunks", "sha256", sum)
	if err != nil {
		return nil, fmt.Errorf("store: blob %s: %w", sum, err)
	}
	if !found {
		return nil, fmt.Errorf("store: blob %s: %w", sum, store.ErrNotFound)
	}
	return r, nil
}
