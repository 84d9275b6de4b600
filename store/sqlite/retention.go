package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mailguard/mailguard/store"
)

func init() {
	// content_purged marks rows whose spool bytes retention removed, so
	// that each purge looks only at what is still there.
	registerMigration("0003_retention", `ALTER TABLE messages ADD COLUMN content_purged INTEGER NOT NULL DEFAULT 0;
	CREATE INDEX messages_state_at ON messages(state, state_at);`)
}

// finishedStates are the states a message never leaves; only they lose
// their rows to retention.
var finishedStates = []store.State{store.Delivered, store.Bounced, store.Rejected, store.Deleted}

// noPendingDelivery is the SQL condition that a message has no delivery
// left to make (a message with one is never purged, whatever its state).
const noPendingDelivery = `NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.msg_id = messages.id AND d.done_at = 0)`

// Purge implements store.Store. Each step is idempotent and safe beside a
// running serve and other nodes: state changes are conditional, files are
// removed before the row says they are gone (a crash in between leaves a
// row that the next purge finishes), and rows go last.
func (s *DB) Purge(ctx context.Context, r store.Retention) (store.Purged, error) {
	var out store.Purged
	if r.Now.IsZero() {
		r.Now = s.now()
	}
	steps := []func(context.Context, store.Retention, *store.Purged) (bool, error){
		s.purgeQuarantined, s.purgeContent, s.purgeRecords, s.purgeBlobs, s.purgeVerdicts,
	}
	for _, step := range steps {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		more, err := step(ctx, r, &out)
		if err != nil {
			return out, err
		}
		out.More = out.More || more
	}
	return out, nil
}

// cutoff is the state_at bound for an age (the zero time when the age is
// zero: keep forever).
func cutoff(r store.Retention, age time.Duration) int64 {
	if age <= 0 {
		return 0
	}
	return us(r.Now.Add(-age))
}

func limitClause(n int) string {
	if n <= 0 {
		return ""
	}
	return fmt.Sprintf(" LIMIT %d", n)
}

// queryIDs runs a query whose rows are one message ID each.
func (s *DB) queryIDs(ctx context.Context, q string, args ...any) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// purgeQuarantined deletes quarantined messages nobody reviewed in time.
// The content goes in purgeContent, which runs next.
func (s *DB) purgeQuarantined(ctx context.Context, r store.Retention, out *store.Purged) (bool, error) {
	cut := cutoff(r, r.Quarantined)
	if cut == 0 {
		return false, nil
	}
	ids, err := s.queryIDs(ctx, `SELECT id FROM messages WHERE state = ? AND state_at < ? AND `+noPendingDelivery+
		` ORDER BY state_at, id`+limitClause(r.Limit), string(store.Quarantined), cut)
	if err != nil {
		return false, fmt.Errorf("store: purge quarantined: %w", err)
	}
	more := r.Limit > 0 && len(ids) == r.Limit
	if r.DryRun || len(ids) == 0 {
		out.Deleted = append(out.Deleted, ids...)
		return more, nil
	}
	note := fmt.Sprintf("quarantined for more than %s", formatAge(r.Quarantined))
	var deleted []string
	err = s.write(ctx, nil, func(tx *sql.Tx) error {
		deleted = deleted[:0]
		now := s.now()
		for _, id := range ids {
			err := setState(tx, id, []store.State{store.Quarantined}, store.Deleted, now)
			if errors.Is(err, store.ErrState) || errors.Is(err, store.ErrNotFound) {
				continue // an operator released or deleted it meanwhile
			}
			if err != nil {
				return err
			}
			if err := insertAudit(tx, store.Audit{MsgID: id, Actor: r.Actor, Action: "delete", Note: note}, now); err != nil {
				return err
			}
			if err := cancelDeliveries(tx, id, now); err != nil {
				return err
			}
			deleted = append(deleted, id)
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("store: purge quarantined: %w", err)
	}
	out.Deleted = append(out.Deleted, deleted...)
	return more, nil
}

// purgeContent removes the spool bytes of finished messages past their
// content age, and of deleted messages whose bytes were left behind.
func (s *DB) purgeContent(ctx context.Context, r store.Retention, out *store.Purged) (bool, error) {
	conds := []string{`state = ?`}
	args := []any{string(store.Deleted)}
	if cut := cutoff(r, r.Delivered); cut != 0 {
		conds = append(conds, `(state IN (?, ?) AND state_at < ?)`)
		args = append(args, string(store.Delivered), string(store.Bounced), cut)
	}
	if cut := cutoff(r, r.Rejected); cut != 0 {
		conds = append(conds, `(state = ? AND state_at < ?)`)
		args = append(args, string(store.Rejected), cut)
	}
	ids, err := s.queryIDs(ctx, `SELECT id FROM messages WHERE content_purged = 0 AND (`+strings.Join(conds, ` OR `)+
		`) AND `+noPendingDelivery+` ORDER BY state_at, id`+limitClause(r.Limit), args...)
	if err != nil {
		return false, fmt.Errorf("store: purge content: %w", err)
	}
	more := r.Limit > 0 && len(ids) == r.Limit
	// In a dry run, the quarantined messages that would be deleted still
	// have their content: it would go too.
	if r.DryRun {
		ids = append(ids, out.Deleted...)
	}
	var gone []string
	for _, id := range ids {
		n, found, err := s.removeSpool(id, r.DryRun)
		if err != nil {
			return false, err
		}
		// A deleted message whose bytes the operator's delete already
		// removed is not news: report only bytes this purge removes.
		if found {
			out.Content = append(out.Content, id)
			out.Bytes += n
		}
		gone = append(gone, id)
	}
	if !r.DryRun {
		if err := s.markPurged(ctx, gone); err != nil {
			return false, err
		}
	}
	return more, nil
}

// removeSpool removes (or, dry, measures) the bytes of id, inline or in a
// file, and returns their size and whether they were there; bytes already
// gone are not an error.
func (s *DB) removeSpool(id string, dry bool) (int64, bool, error) {
	var n int64
	err := s.r.QueryRow(`SELECT length(data) FROM spool_inline WHERE id = ?`, id).Scan(&n)
	if err == nil {
		if !dry {
			if err := s.write(context.Background(), nil, func(tx *sql.Tx) error {
				_, err := tx.Exec(`DELETE FROM spool_inline WHERE id = ?`, id)
				return err
			}); err != nil {
				return 0, false, fmt.Errorf("store: purge %s: %w", id, err)
			}
		}
		return n, true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, false, fmt.Errorf("store: purge %s: %w", id, err)
	}
	p := s.spoolPath(id)
	info, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("store: purge %s: %w", id, err)
	}
	if dry {
		return info.Size(), true, nil
	}
	if err := s.fs.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, false, fmt.Errorf("store: purge %s: %w", id, err)
	}
	return info.Size(), true, nil
}

func (s *DB) markPurged(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	return s.write(ctx, nil, func(tx *sql.Tx) error {
		for _, id := range ids {
			if _, err := tx.Exec(`UPDATE messages SET content_purged = 1 WHERE id = ?`, id); err != nil {
				return fmt.Errorf("store: purge %s: %w", id, err)
			}
		}
		return nil
	})
}

// purgeRecords removes the rows of finished messages past the record age:
// bytes first (if any are left), then file index, deliveries, audit and
// the message row, in one transaction.
func (s *DB) purgeRecords(ctx context.Context, r store.Retention, out *store.Purged) (bool, error) {
	cut := cutoff(r, r.Records)
	if cut == 0 {
		return false, nil
	}
	args := []any{cut}
	for _, st := range finishedStates {
		args = append(args, string(st))
	}
	ids, err := s.queryIDs(ctx, `SELECT id FROM messages WHERE state_at < ? AND state IN (`+placeholders(len(finishedStates))+
		`) AND `+noPendingDelivery+` ORDER BY state_at, id`+limitClause(r.Limit), args...)
	if err != nil {
		return false, fmt.Errorf("store: purge records: %w", err)
	}
	more := r.Limit > 0 && len(ids) == r.Limit
	counted := map[string]bool{} // a dry run measured these bytes already
	for _, id := range out.Content {
		counted[id] = true
	}
	for _, id := range ids {
		n, _, err := s.removeSpool(id, r.DryRun)
		if err != nil {
			return false, err
		}
		if !counted[id] {
			out.Bytes += n
		}
	}
	if r.DryRun || len(ids) == 0 {
		out.Records = append(out.Records, ids...)
		return more, nil
	}
	var removed []string
	err = s.write(ctx, nil, func(tx *sql.Tx) error {
		removed = removed[:0]
		for _, id := range ids {
			ok, err := deleteRecord(tx, id)
			if err != nil {
				return err
			}
			if ok {
				removed = append(removed, id)
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("store: purge records: %w", err)
	}
	out.Records = append(out.Records, removed...)
	return more, nil
}

// deleteRecord removes everything the store keeps about a finished
// message, provided it is still finished and has no delivery pending.
func deleteRecord(tx *sql.Tx, id string) (bool, error) {
	args := []any{id}
	for _, st := range finishedStates {
		args = append(args, string(st))
	}
	var n int
	err := tx.QueryRow(`SELECT count(*) FROM messages WHERE id = ? AND state IN (`+placeholders(len(finishedStates))+
		`) AND `+noPendingDelivery, args...).Scan(&n)
	if err != nil || n == 0 {
		return false, err
	}
	for _, q := range []string{`DELETE FROM files WHERE msg_id = ?`, `DELETE FROM deliveries WHERE msg_id = ?`,
		`DELETE FROM audit WHERE msg_id = ?`, `DELETE FROM messages WHERE id = ?`} {
		if _, err := tx.Exec(q, id); err != nil {
			return false, fmt.Errorf("record %s: %w", id, err)
		}
	}
	return true, nil
}

// purgeBlobs removes sandbox blobs that nothing refers to any more: no held
// message has the file and no sandbox task waits to upload it, and the
// blob is older than the verdict cache lives.
func (s *DB) purgeBlobs(ctx context.Context, r store.Retention, out *store.Purged) (bool, error) {
	if r.Blobs <= 0 {
		return false, nil
	}
	root := filepath.Join(s.dir, "blob")
	old := r.Now.Add(-r.Blobs)
	var cands []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || !validSum(d.Name()) || filepath.Base(filepath.Dir(p)) != d.Name()[:2] {
			return nil // temp files and strangers are not ours to remove
		}
		if info, err := d.Info(); err == nil && info.ModTime().Before(old) {
			cands = append(cands, d.Name())
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("store: purge blobs: %w", err)
	}
	if len(cands) == 0 {
		return false, nil
	}
	refs, err := s.blobRefs(ctx)
	if err != nil {
		return false, err
	}
	more := false
	for _, sum := range cands {
		if refs[sum] {
			continue
		}
		if r.Limit > 0 && len(out.Blobs) >= r.Limit {
			more = true
			break
		}
		n, err := s.removeBlob(ctx, sum, old, r.DryRun)
		if err != nil {
			return false, err
		}
		if n >= 0 {
			out.Blobs = append(out.Blobs, sum)
			out.Bytes += n
		}
	}
	return more, nil
}

// blobRefs returns the sums that held messages and sandbox tasks refer to.
func (s *DB) blobRefs(ctx context.Context) (map[string]bool, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT f.sha256 FROM files f JOIN messages m ON m.id = f.msg_id WHERE m.state = ?
		UNION SELECT sha256 FROM sandbox_tasks`, string(store.Held))
	if err != nil {
		return nil, fmt.Errorf("store: purge blobs: %w", err)
	}
	defer rows.Close()
	refs := map[string]bool{}
	for rows.Next() {
		var sum string
		if err := rows.Scan(&sum); err != nil {
			return nil, err
		}
		refs[sum] = true
	}
	return refs, rows.Err()
}

// removeBlob removes one unreferenced blob, checking again just before:
// its age (a blob rewritten since is young again) and the task table (an
// inspection may have queued it since the references were read). It
// returns the bytes removed, or -1 when the blob stays.
func (s *DB) removeBlob(ctx context.Context, sum string, old time.Time, dry bool) (int64, error) {
	p := s.blobPath(sum)
	info, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) || err == nil && !info.ModTime().Before(old) {
		return -1, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: purge blob %s: %w", sum, err)
	}
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM sandbox_tasks WHERE sha256 = ?`, sum).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: purge blob %s: %w", sum, err)
	}
	if n > 0 {
		return -1, nil
	}
	if dry {
		return info.Size(), nil
	}
	if err := s.fs.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("store: purge blob %s: %w", sum, err)
	}
	return info.Size(), nil
}

// purgeVerdicts removes expired sandbox verdicts (sandbox.Store allows it
// whenever convenient).
func (s *DB) purgeVerdicts(ctx context.Context, r store.Retention, out *store.Purged) (bool, error) {
	if r.Blobs <= 0 {
		return false, nil
	}
	now := us(r.Now)
	if r.DryRun {
		var n int
		err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM sandbox_verdicts WHERE expires <= ?`, now).Scan(&n)
		out.Verdicts += n
		return false, err
	}
	var n int64
	err := s.write(ctx, nil, func(tx *sql.Tx) error {
		res, err := tx.Exec(`DELETE FROM sandbox_verdicts WHERE expires <= ?`, now)
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("store: purge verdicts: %w", err)
	}
	out.Verdicts += int(n)
	return false, nil
}

// formatAge prints an age the way policy.hcl writes it ("90d", "36h").
func formatAge(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}
