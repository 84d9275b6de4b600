package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailguard/mailguard/store"
)

// Lock order. Every transaction that changes a message and its deliveries
// locks the message row first (UPDATE messages, or SELECT … FOR NO KEY
// UPDATE), then the deliveries; Claim locks deliveries only and skips
// locked ones (SKIP LOCKED), so it never waits. Two nodes therefore never
// wait on each other in a cycle.

// Claim implements store.Store: one statement picks the due deliveries
// nobody holds (FOR UPDATE SKIP LOCKED: rows another node is claiming at
// this instant are skipped, not waited for) and leases them to owner. A
// node that dies keeps its leases only until they expire.
func (s *DB) Claim(ctx context.Context, owner string, lease time.Duration, max int) ([]store.Delivery, error) {
	if max <= 0 {
		return nil, nil
	}
	now := s.now()
	rows, _ := s.pool.Query(ctx, `WITH due AS (
			SELECT id FROM deliveries
			WHERE done_at IS NULL AND next_at <= $1 AND (lease_until IS NULL OR lease_until <= $1)
			ORDER BY next_at, id LIMIT $2
			FOR UPDATE SKIP LOCKED)
		UPDATE deliveries d SET lease_until = $3, lease_owner = $4
		FROM due, messages m
		WHERE d.id = due.id AND m.id = d.msg_id
		RETURNING d.id, d.msg_id, d.route, d.mail_from, d.rcpts, d.attempts, d.next_at, d.created_at,
			d.extra, d.last_error, m.received_at, m.smtputf8, m.eightbit, m.prepend, m.subject_prefix,
			m.strip_ar, m.size`, now, max, now.Add(lease), clean(owner))
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Delivery, error) {
		var d store.Delivery
		var next, created, recv *time.Time
		err := r.Scan(&d.ID, &d.MsgID, &d.Route, &d.MailFrom, &d.Rcpts, &d.Attempts, &next, &created,
			&d.Extra, &d.LastError, &recv, &d.SMTPUTF8, &d.EightBit, &d.Prepend, &d.SubjectPrefix,
			&d.StripAuthResults, &d.Size)
		d.NextAt, d.Created, d.Received = utc(next), utc(created), utc(recv)
		d.Rcpts = nonNil(d.Rcpts)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: claim: %w", err)
	}
	// RETURNING has no order: hand them out oldest first, as claimed.
	slices.SortFunc(out, func(a, b store.Delivery) int {
		if c := a.NextAt.Compare(b.NextAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out, nil
}

// lockMessageOf locks the message of delivery id (see Lock order) and
// returns its ID.
func lockMessageOf(ctx context.Context, tx pgx.Tx, id int64) (string, error) {
	var msgID string
	err := tx.QueryRow(ctx, lockMessageOfSQL, id).Scan(&msgID)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("store: delivery %d: %w", id, store.ErrNotFound)
	}
	return msgID, err
}

// DeliveryDone implements store.Store. The message row is locked before
// the last pending delivery is counted, so that two nodes finishing the
// last two deliveries of one message at once cannot both see the other's
// as pending: the second waits and sees the first committed. Without a
// DSN this is one round trip.
func (s *DB) DeliveryDone(ctx context.Context, id int64, results []store.RcptResult, dsn *store.Message, dsnBytes []byte) error {
	if dsn != nil {
		return s.deliveryDoneDSN(ctx, id, results, dsn, dsnBytes)
	}
	return s.batch(ctx, func(b *pgx.Batch) {
		now := s.now()
		b.Queue(lockMessageOfSQL, id)
		b.Queue(doneSQL, now, resultsJSON(results), lastError(results), accepted(results), id)
		// Finishing is idempotent: after a delivery that was already done
		// (cancelled, or done by a worker whose lease expired), it changes
		// nothing.
		b.Queue(`UPDATE messages SET state_at = $2, state = CASE
				WHEN EXISTS (SELECT 1 FROM deliveries WHERE msg_id = messages.id AND accepted) THEN 'delivered'
				ELSE 'bounced' END
			WHERE id = (SELECT msg_id FROM deliveries WHERE id = $1) AND state IN ('queued', 'released')
				AND NOT EXISTS (SELECT 1 FROM deliveries WHERE msg_id = messages.id AND done_at IS NULL)`, id, now)
	}, func(br pgx.BatchResults) error {
		var msgID string
		if err := br.QueryRow().Scan(&msgID); errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("store: delivery %d: %w", id, store.ErrNotFound)
		} else if err != nil {
			return fmt.Errorf("store: done %d: %w", id, err)
		}
		for range 2 {
			if _, err := br.Exec(); err != nil {
				return fmt.Errorf("store: done %d: %w", id, err)
			}
		}
		return nil
	})
}

const (
	lockMessageOfSQL = `SELECT m.id FROM deliveries d JOIN messages m ON m.id = d.msg_id
		WHERE d.id = $1 FOR NO KEY UPDATE OF m`
	doneSQL = `UPDATE deliveries SET done_at = $1, attempts = attempts + 1, lease_until = NULL,
		results = $2, last_error = $3, rcpts = '{}', accepted = accepted OR $4
		WHERE id = $5 AND done_at IS NULL`
)

// deliveryDoneDSN is DeliveryDone with a DSN to queue, in a transaction
// that queues it only if this call finished the delivery.
func (s *DB) deliveryDoneDSN(ctx context.Context, id int64, results []store.RcptResult, dsn *store.Message, dsnBytes []byte) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		now := s.now()
		msgID, err := lockMessageOf(ctx, tx, id)
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, doneSQL, now, resultsJSON(results), lastError(results), accepted(results), id)
		if err != nil {
			return fmt.Errorf("store: done %d: %w", id, err)
		}
		if tag.RowsAffected() == 0 {
			return nil // already finished: cancelled, or by a worker whose lease had expired
		}
		if err := finishMessage(ctx, tx, msgID, now); err != nil {
			return err
		}
		return s.queueDSN(ctx, tx, dsn, dsnBytes)
	})
}

// finishMessage sets the final state once no delivery of the message is
// pending: delivered if a recipient accepted it in any attempt of any
// delivery, bounced otherwise. Released and queued are the states a
// delivery leaves.
func finishMessage(ctx context.Context, tx pgx.Tx, msgID string, now time.Time) error {
	_, err := tx.Exec(ctx, `UPDATE messages SET state_at = $2, state = CASE
			WHEN EXISTS (SELECT 1 FROM deliveries WHERE msg_id = $1 AND accepted) THEN 'delivered'
			ELSE 'bounced' END
		WHERE id = $1 AND state IN ('queued', 'released')
			AND NOT EXISTS (SELECT 1 FROM deliveries WHERE msg_id = $1 AND done_at IS NULL)`, msgID, now)
	if err != nil {
		return fmt.Errorf("store: finish %s: %w", msgID, err)
	}
	return nil
}

// DeliveryRetry implements store.Store. A delivery that is no longer
// pending (cancelled meanwhile) is left alone, and so is its DSN.
func (s *DB) DeliveryRetry(ctx context.Context, id int64, at time.Time, pending []string, results []store.RcptResult, dsn *store.Message, dsnBytes []byte) error {
	args := []any{cleanAll(pending), at, resultsJSON(results), lastError(results), accepted(results), id}
	if dsn == nil {
		if _, err := s.pool.Exec(ctx, retrySQL, args...); err != nil {
			return fmt.Errorf("store: retry %d: %w", id, err)
		}
		return nil
	}
	return s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, retrySQL, args...)
		if err != nil {
			return fmt.Errorf("store: retry %d: %w", id, err)
		}
		if tag.RowsAffected() == 0 {
			return nil
		}
		return s.queueDSN(ctx, tx, dsn, dsnBytes)
	})
}

const retrySQL = `UPDATE deliveries SET rcpts = $1, attempts = attempts + 1, next_at = $2,
	lease_until = NULL, lease_owner = '', results = $3, last_error = $4, accepted = accepted OR $5
	WHERE id = $6 AND done_at IS NULL`

// ReleaseLeases implements store.Store.
func (s *DB) ReleaseLeases(ctx context.Context, owner string) (int, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE deliveries SET lease_until = NULL, lease_owner = ''
		WHERE done_at IS NULL AND lease_owner = $1`, clean(owner))
	if err != nil {
		return 0, fmt.Errorf("store: release leases: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// PendingDeliveries implements store.Store.
func (s *DB) PendingDeliveries(ctx context.Context) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM deliveries WHERE done_at IS NULL`).Scan(&n)
	return n, err
}

// liveStates are the states whose messages still need their bytes.
var liveStates = []string{string(store.Received), string(store.Inspected), string(store.Queued),
	string(store.Held), string(store.Quarantined), string(store.Released)}

// Recover implements store.Store. Bytes and rows commit together, so
// there are no orphan files and no temporary files to clean; a row in a
// live state without bytes (restored from an incomplete backup, edited by
// hand) becomes Error, conditionally, so several nodes may recover at once.
func (s *DB) Recover(ctx context.Context) (store.Recovery, error) {
	var rec store.Recovery
	ids, err := s.queryIDs(ctx, `UPDATE messages m SET state = $1, state_at = $2
		WHERE state = ANY($3) AND NOT EXISTS (SELECT 1 FROM spool WHERE msg_id = m.id AND seq = 0)
		RETURNING id`, string(store.Error), s.now(), liveStates)
	if err != nil {
		return rec, fmt.Errorf("store: recover: %w", err)
	}
	slices.Sort(ids)
	rec.MissingSpool = ids
	return rec, nil
}

func resultsJSON(r []store.RcptResult) []byte {
	if r == nil {
		r = []store.RcptResult{}
	}
	b, _ := json.Marshal(r)
	return b
}

// accepted reports whether a recipient accepted the message.
func accepted(results []store.RcptResult) bool {
	for _, r := range results {
		if r.Code >= 200 && r.Code < 300 {
			return true
		}
	}
	return false
}

func lastError(results []store.RcptResult) string {
	var parts []string
	for _, r := range results {
		if r.Code >= 400 || r.Code == 0 {
			parts = append(parts, fmt.Sprintf("%s: %d %s", r.Rcpt, r.Code, r.Text))
		}
	}
	return clean(strings.Join(parts, "; "))
}
