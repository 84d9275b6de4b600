package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mailguard/mailguard/store"
)

// Claim implements store.Store. A claim is a lease: if the claiming worker
// dies, the delivery becomes due again when the lease expires, so a message
// is delivered at least once and never forgotten.
func (s *DB) Claim(ctx context.Context, owner string, lease time.Duration, max int) ([]store.Delivery, error) {
	var out []store.Delivery
	err := s.write(ctx, nil, func(tx *sql.Tx) error {
		out = out[:0]
		now := s.now()
		rows, err := tx.Query(`SELECT d.id, d.msg_id, d.route, d.mail_from, d.rcpts, d.attempts,
			d.next_at, d.created_at, d.extra, d.last_error, m.received_at, m.smtputf8, m.eightbit,
			m.prepend, m.subject_prefix, m.strip_ar, m.size
			FROM deliveries d JOIN messages m ON m.id = d.msg_id
			WHERE d.done_at = 0 AND d.next_at <= ? AND d.lease_until <= ?
			ORDER BY d.next_at LIMIT ?`, us(now), us(now), max)
		if err != nil {
			return fmt.Errorf("store: claim: %w", err)
		}
		for rows.Next() {
			var d store.Delivery
			var rcpts string
			var next, created, recv int64
			if err := rows.Scan(&d.ID, &d.MsgID, &d.Route, &d.MailFrom, &rcpts, &d.Attempts,
				&next, &created, &d.Extra, &d.LastError, &recv, &d.SMTPUTF8, &d.EightBit,
				&d.Prepend, &d.SubjectPrefix, &d.StripAuthResults, &d.Size); err != nil {
				rows.Close()
				return err
			}
			d.Rcpts, d.NextAt, d.Created, d.Received = parseList(rcpts), fromUS(next), fromUS(created), fromUS(recv)
			out = append(out, d)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, d := range out {
			if _, err := tx.Exec(`UPDATE deliveries SET lease_until = ?, lease_owner = ? WHERE id = ?`,
				us(now.Add(lease)), owner, d.ID); err != nil {
				return fmt.Errorf("store: claim %d: %w", d.ID, err)
			}
		}
		return nil
	})
	return out, err
}

// DeliveryRetry implements store.Store.
func (s *DB) DeliveryRetry(ctx context.Context, id int64, at time.Time, pending []string, results []store.RcptResult, dsn *store.Message, dsnBytes []byte) error {
	dirs, inline, err := s.spoolDSN(dsn, dsnBytes)
	if err != nil {
		return err
	}
	err = s.write(ctx, dirs, func(tx *sql.Tx) error {
		_, err := tx.Exec(`UPDATE deliveries SET rcpts = ?, attempts = attempts + 1, next_at = ?,
			lease_until = 0, lease_owner = '', results = ?, last_error = ?,
			any_delivered = max(any_delivered, ?) WHERE id = ? AND done_at = 0`,
			jsonList(pending), us(at), resultsJSON(results), lastError(results), anyDelivered(results), id)
		if err != nil {
			return fmt.Errorf("store: retry %d: %w", id, err)
		}
		return s.queueDSN(tx, dsn, inline)
	})
	if err != nil && dsn != nil {
		os.Remove(s.spoolPath(dsn.ID))
	}
	return err
}

// spoolDSN prepares the bytes of a DSN (when there is one): kept inline
// (returned, for queueDSN to insert) when small, else spooled to a file
// whose directory the committing transaction must fsync.
func (s *DB) spoolDSN(dsn *store.Message, b []byte) (dirs []string, inline []byte, err error) {
	if dsn == nil {
		return nil, nil, nil
	}
	dsn.Size = int64(len(b))
	if s.inline > 0 && len(b) <= s.inline {
		if !validID(dsn.ID) {
			return nil, nil, fmt.Errorf("store: invalid message id %q", dsn.ID)
		}
		return nil, b, nil
	}
	dir, err := s.addSpooled(dsn.ID, b)
	if err != nil {
		return nil, nil, err
	}
	return []string{dir}, nil, nil
}

// queueDSN records a DSN as a queued message with its delivery (and its
// bytes when they are inline).
func (s *DB) queueDSN(tx *sql.Tx, dsn *store.Message, inline []byte) error {
	if dsn == nil {
		return nil
	}
	if inline != nil {
		if err := insertInline(tx, dsn.ID, inline); err != nil {
			return err
		}
	}
	now := s.now()
	dsn.State = store.Queued
	if dsn.ReceivedAt.IsZero() {
		dsn.ReceivedAt = now
	}
	if err := insertMessage(tx, dsn, now); err != nil {
		return err
	}
	route := "inbound"
	if dsn.Direction == "outbound" {
		route = "outbound"
	}
	return insertDeliveries(tx, dsn.ID, []store.Delivery{{Route: route, MailFrom: "", Rcpts: dsn.Rcpts}}, now)
}

// DeliveryDone implements store.Store.
func (s *DB) DeliveryDone(ctx context.Context, id int64, results []store.RcptResult, dsn *store.Message, dsnBytes []byte) error {
	dirs, inline, err := s.spoolDSN(dsn, dsnBytes)
	if err != nil {
		return err
	}
	err = s.write(ctx, dirs, func(tx *sql.Tx) error {
		now := s.now()
		var msgID string
		if err := tx.QueryRow(`SELECT msg_id FROM deliveries WHERE id = ?`, id).Scan(&msgID); err != nil {
			return fmt.Errorf("store: done %d: %w", id, err)
		}
		res, err := tx.Exec(`UPDATE deliveries SET done_at = ?, attempts = attempts + 1,
			lease_until = 0, results = ?, last_error = ?, rcpts = '[]',
			any_delivered = max(any_delivered, ?) WHERE id = ? AND done_at = 0`,
			us(now), resultsJSON(results), lastError(results), anyDelivered(results), id)
		if err != nil {
			return fmt.Errorf("store: done %d: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil // already finished by another worker whose lease expired
		}
		if err := finishMessage(tx, msgID, now); err != nil {
			return err
		}
		return s.queueDSN(tx, dsn, inline)
	})
	if err != nil && dsn != nil {
		os.Remove(s.spoolPath(dsn.ID))
	}
	return err
}

// finishMessage sets the final state once no delivery of the message is
// pending: delivered if any recipient got the message, bounced otherwise.
func finishMessage(tx *sql.Tx, msgID string, now time.Time) error {
	var pending int
	if err := tx.QueryRow(`SELECT count(*) FROM deliveries WHERE msg_id = ? AND done_at = 0`, msgID).Scan(&pending); err != nil {
		return err
	}
	if pending > 0 {
		return nil
	}
	var delivered bool
	if err := tx.QueryRow(`SELECT EXISTS (SELECT 1 FROM deliveries WHERE msg_id = ? AND any_delivered = 1)`, msgID).Scan(&delivered); err != nil {
		return err
	}
	final := store.Bounced
	if delivered {
		final = store.Delivered
	}
	// A released message stays "released" in the operator's eyes until it
	// is delivered; queued and released are the states a delivery leaves.
	_, err := tx.Exec(`UPDATE messages SET state = ?, state_at = ? WHERE id = ? AND state IN (?, ?)`,
		string(final), us(now), msgID, string(store.Queued), string(store.Released))
	return err
}

// ReleaseLeases implements store.Store.
func (s *DB) ReleaseLeases(ctx context.Context, owner string) (int, error) {
	var n int64
	err := s.write(ctx, nil, func(tx *sql.Tx) error {
		res, err := tx.Exec(`UPDATE deliveries SET lease_until = 0, lease_owner = '' WHERE done_at = 0 AND lease_owner = ?`, owner)
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return int(n), err
}

// PendingDeliveries implements store.Store.
func (s *DB) PendingDeliveries(ctx context.Context) (int, error) {
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM deliveries WHERE done_at = 0`).Scan(&n)
	return n, err
}

// Recover implements store.Store: spool files with no row move to
// spool/orphan (evidence is kept, never deleted blindly), rows in a live
// state without a spool file become Error, temp files older than a day go.
func (s *DB) Recover(ctx context.Context) (store.Recovery, error) {
	var rec store.Recovery
	tmpDir := filepath.Join(s.dir, "spool", "tmp")
	entries, err := os.ReadDir(tmpDir)
	if err != nil {
		return rec, fmt.Errorf("store: recover: %w", err)
	}
	for _, e := range entries {
		info, err := e.Info()
		if err == nil && s.now().Sub(info.ModTime()) > 24*time.Hour {
			if os.Remove(filepath.Join(tmpDir, e.Name())) == nil {
				rec.TempRemoved++
			}
		}
	}
	// Spool files (large messages) without a row: moved aside as evidence.
	msgRoot := filepath.Join(s.dir, "spool", "msg")
	err = filepath.WalkDir(msgRoot, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		id := d.Name()
		var one int
		switch err := s.r.QueryRowContext(ctx, `SELECT 1 FROM messages WHERE id = ?`, id).Scan(&one); {
		case err == nil:
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		if err := os.Rename(p, filepath.Join(s.dir, "spool", "orphan", id)); err != nil {
			return err
		}
		rec.Orphans = append(rec.Orphans, id)
		return nil
	})
	if err != nil {
		return rec, fmt.Errorf("store: recover: %w", err)
	}
	// Rows in a live state whose bytes are neither inline nor in a file.
	rows, err := s.r.QueryContext(ctx, `SELECT id FROM messages WHERE state IN (?,?,?,?,?,?)
		AND content_purged = 0 AND NOT EXISTS (SELECT 1 FROM spool_inline i WHERE i.id = messages.id)`,
		string(store.Received), string(store.Inspected), string(store.Queued), string(store.Held),
		string(store.Quarantined), string(store.Released))
	if err != nil {
		return rec, fmt.Errorf("store: recover: %w", err)
	}
	var noInline []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return rec, err
		}
		noInline = append(noInline, id)
	}
	rows.Close()
	for _, id := range noInline {
		if _, err := os.Stat(s.spoolPath(id)); errors.Is(err, os.ErrNotExist) {
			rec.MissingSpool = append(rec.MissingSpool, id)
		}
	}
	for _, id := range rec.MissingSpool {
		if err := s.write(ctx, nil, func(tx *sql.Tx) error {
			return setState(tx, id, nil, store.Error, s.now())
		}); err != nil {
			return rec, err
		}
	}
	return rec, nil
}

// anyDelivered is 1 when a recipient of the attempt was accepted: a
// message is "delivered" once any recipient got it in any attempt, even if
// a later attempt for the others fails.
func anyDelivered(results []store.RcptResult) int {
	for _, r := range results {
		if r.Code >= 200 && r.Code < 300 {
			return 1
		}
	}
	return 0
}

func resultsJSON(r []store.RcptResult) string {
	if r == nil {
		r = []store.RcptResult{}
	}
	b, _ := json.Marshal(r)
	return string(b)
}

func lastError(results []store.RcptResult) string {
	var parts []string
	for _, r := range results {
		if r.Code >= 400 || r.Code == 0 {
			parts = append(parts, fmt.Sprintf("%s: %d %s", r.Rcpt, r.Code, r.Text))
		}
	}
	return strings.Join(parts, "; ")
}
