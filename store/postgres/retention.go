package postgres

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailguard/mailguard/store"
)

// finishedStates are the states a message never leaves; only they lose
// their rows to retention.
var finishedStates = []string{string(store.Delivered), string(store.Bounced), string(store.Rejected), string(store.Deleted)}

// noPendingDelivery is the SQL condition that a message has no delivery
// left to make (a message with one is never purged, whatever its state).
const noPendingDelivery = `NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.msg_id = messages.id AND d.done_at IS NULL)`

// params numbers query arguments as they are added.
type params struct{ args []any }

func (p *params) add(v any) string {
	p.args = append(p.args, v)
	return "$" + strconv.Itoa(len(p.args))
}

// Purge implements store.Store. Every step selects candidates, then
// changes them in one transaction that checks the conditions again on the
// locked rows: what an operator or another node did in between is
// respected, and several nodes may purge at once. Bytes, index, deliveries
// and rows of a message go in one transaction, so a crash leaves either
// all or nothing.
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

// cutoff is the state_at bound for an age; ok is false when the age is
// zero (keep forever).
func cutoff(r store.Retention, age time.Duration) (time.Time, bool) {
	if age <= 0 {
		return time.Time{}, false
	}
	return r.Now.Add(-age), true
}

func limitClause(n int) string {
	if n <= 0 {
		return ""
	}
	return " LIMIT " + strconv.Itoa(n)
}

// inOrder returns the elements of ids that are in keep, in the order of
// ids (RETURNING has no order; reports follow the selection's).
func inOrder(ids []string, keep map[string]int64) []string {
	var out []string
	for _, id := range ids {
		if _, ok := keep[id]; ok {
			out = append(out, id)
		}
	}
	return out
}

// purgeQuarantined deletes quarantined messages nobody reviewed in time,
// with an audit entry each. The content goes in purgeContent, next.
func (s *DB) purgeQuarantined(ctx context.Context, r store.Retention, out *store.Purged) (bool, error) {
	cut, ok := cutoff(r, r.Quarantined)
	if !ok {
		return false, nil
	}
	ids, err := s.queryIDs(ctx, `SELECT id FROM messages WHERE state = $1 AND state_at < $2 AND `+noPendingDelivery+
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
	err = s.tx(ctx, func(tx pgx.Tx) error {
		now := s.now()
		rows, _ := tx.Query(ctx, `UPDATE messages SET state = $1, state_at = $2
			WHERE id = ANY($3) AND state = $4 AND state_at < $5 AND `+noPendingDelivery+` RETURNING id`,
			string(store.Deleted), now, ids, string(store.Quarantined), cut)
		gone, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		set := map[string]int64{}
		for _, id := range gone {
			set[id] = 0
		}
		deleted = inOrder(ids, set)
		for _, id := range deleted {
			if err := insertAudit(ctx, tx, store.Audit{MsgID: id, Actor: r.Actor, Action: "delete", Note: note}, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("store: purge quarantined: %w", err)
	}
	out.Deleted = append(out.Deleted, deleted...)
	return more, nil
}

// contentConds selects the messages whose bytes are past their age:
// delivered and bounced, rejected, and deleted ones whose bytes were left
// behind.
func contentConds(r store.Retention, p *params) string {
	conds := []string{`state = ` + p.add(string(store.Deleted))}
	if cut, ok := cutoff(r, r.Delivered); ok {
		conds = append(conds, `(state IN (`+p.add(string(store.Delivered))+`, `+p.add(string(store.Bounced))+
			`) AND state_at < `+p.add(cut)+`)`)
	}
	if cut, ok := cutoff(r, r.Rejected); ok {
		conds = append(conds, `(state = `+p.add(string(store.Rejected))+` AND state_at < `+p.add(cut)+`)`)
	}
	return `content_purged = false AND (` + strings.Join(conds, ` OR `) + `) AND ` + noPendingDelivery
}

// purgeContent removes the bytes of finished messages past their content
// age. The row stays, marked, with its file index (hunting still finds it).
func (s *DB) purgeContent(ctx context.Context, r store.Retention, out *store.Purged) (bool, error) {
	var p params
	conds := contentConds(r, &p)
	ids, err := s.queryIDs(ctx, `SELECT id FROM messages WHERE `+conds+` ORDER BY state_at, id`+limitClause(r.Limit), p.args...)
	if err != nil {
		return false, fmt.Errorf("store: purge content: %w", err)
	}
	more := r.Limit > 0 && len(ids) == r.Limit
	if r.DryRun {
		// The quarantined messages that would be deleted have content
		// that would go too.
		ids = append(ids, out.Deleted...)
		sizes, err := spoolSizes(ctx, s.pool, ids)
		if err != nil {
			return false, fmt.Errorf("store: purge content: %w", err)
		}
		report(out, ids, sizes)
		return more, nil
	}
	if len(ids) == 0 {
		return more, nil
	}
	var sizes map[string]int64
	err = s.tx(ctx, func(tx pgx.Tx) error {
		locked, err := lockIDs(ctx, tx, conds, p, ids)
		if err != nil {
			return err
		}
		if sizes, err = spoolSizes(ctx, tx, locked); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM spool WHERE msg_id = ANY($1)`, locked); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE messages SET content_purged = true WHERE id = ANY($1)`, locked)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("store: purge content: %w", err)
	}
	// A deleted message whose bytes the operator's delete already
	// removed is not news: report only bytes this purge removes.
	report(out, ids, sizes)
	return more, nil
}

// report adds the messages of ids that had bytes (in sizes) to Content.
func report(out *store.Purged, ids []string, sizes map[string]int64) {
	for _, id := range inOrder(ids, sizes) {
		out.Content = append(out.Content, id)
		out.Bytes += sizes[id]
	}
}

// querier is what pool and transaction have in common.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// spoolSizes returns the stored size of each message of ids that still
// has bytes. octet_length of a TOASTed value is read from its header, not
// by fetching the bytes.
func spoolSizes(ctx context.Context, q querier, ids []string) (map[string]int64, error) {
	rows, _ := q.Query(ctx, `SELECT msg_id, sum(octet_length(data))::bigint FROM spool WHERE msg_id = ANY($1) GROUP BY msg_id`, ids)
	sizes := map[string]int64{}
	var id string
	var n int64
	_, err := pgx.ForEachRow(rows, []any{&id, &n}, func() error {
		sizes[id] = n
		return nil
	})
	return sizes, err
}

// lockIDs locks the rows of ids that still meet conds (with its params p)
// and returns their IDs; rows are locked in ID order, so that two nodes
// purging at once do not deadlock.
func lockIDs(ctx context.Context, tx pgx.Tx, conds string, p params, ids []string) ([]string, error) {
	p.args = slices.Clone(p.args) // the caller's params stay as they were (a retry reuses them)
	arg := p.add(ids)
	rows, _ := tx.Query(ctx, `SELECT id FROM messages WHERE id = ANY(`+arg+`) AND `+conds+
		` ORDER BY id FOR NO KEY UPDATE`, p.args...)
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// purgeRecords removes the rows of finished messages past the record age,
// with their bytes, file index, deliveries and audit trail.
func (s *DB) purgeRecords(ctx context.Context, r store.Retention, out *store.Purged) (bool, error) {
	cut, ok := cutoff(r, r.Records)
	if !ok {
		return false, nil
	}
	var p params
	conds := `state_at < ` + p.add(cut) + ` AND state = ANY(` + p.add(finishedStates) + `) AND ` + noPendingDelivery
	ids, err := s.queryIDs(ctx, `SELECT id FROM messages WHERE `+conds+` ORDER BY state_at, id`+limitClause(r.Limit), p.args...)
	if err != nil {
		return false, fmt.Errorf("store: purge records: %w", err)
	}
	more := r.Limit > 0 && len(ids) == r.Limit
	counted := map[string]bool{} // a dry run measured these bytes already
	for _, id := range out.Content {
		counted[id] = true
	}
	addBytes := func(sizes map[string]int64) {
		for id, n := range sizes {
			if !counted[id] {
				out.Bytes += n
			}
		}
	}
	if r.DryRun || len(ids) == 0 {
		sizes, err := spoolSizes(ctx, s.pool, ids)
		if err != nil {
			return false, fmt.Errorf("store: purge records: %w", err)
		}
		addBytes(sizes)
		out.Records = append(out.Records, ids...)
		return more, nil
	}
	var removed []string
	var sizes map[string]int64
	err = s.tx(ctx, func(tx pgx.Tx) error {
		locked, err := lockIDs(ctx, tx, conds, p, ids)
		if err != nil {
			return err
		}
		if sizes, err = spoolSizes(ctx, tx, locked); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM audit WHERE msg_id = ANY($1)`, locked); err != nil {
			return err
		}
		// Bytes, file index and deliveries go with the row (ON DELETE CASCADE).
		if _, err := tx.Exec(ctx, `DELETE FROM messages WHERE id = ANY($1)`, locked); err != nil {
			return err
		}
		set := map[string]int64{}
		for _, id := range locked {
			set[id] = 0
		}
		removed = inOrder(ids, set)
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("store: purge records: %w", err)
	}
	addBytes(sizes)
	out.Records = append(out.Records, removed...)
	return more, nil
}

// blobUnused is the SQL condition that no held message has the blob's
// content and no sandbox task waits to upload it.
const blobUnused = `NOT EXISTS (SELECT 1 FROM sandbox_tasks t WHERE t.sha256 = blobs.sha256)
	AND NOT EXISTS (SELECT 1 FROM files f JOIN messages m ON m.id = f.msg_id
		WHERE f.sha256 = blobs.sha256 AND m.state = 'held')`

// purgeBlobs removes sandbox blobs nothing refers to any more and that
// were not stored or used within the blob age.
func (s *DB) purgeBlobs(ctx context.Context, r store.Retention, out *store.Purged) (bool, error) {
	if r.Blobs <= 0 {
		return false, nil
	}
	old := r.Now.Add(-r.Blobs)
	rows, _ := s.pool.Query(ctx, `SELECT sha256, size FROM blobs WHERE stored_at < $1 AND `+blobUnused+
		` ORDER BY stored_at, sha256`+limitClause(r.Limit), old)
	var sums []string
	sizes := map[string]int64{}
	var sum string
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&sum, &n}, func() error {
		sums = append(sums, sum)
		sizes[sum] = n
		return nil
	}); err != nil {
		return false, fmt.Errorf("store: purge blobs: %w", err)
	}
	more := r.Limit > 0 && len(sums) == r.Limit
	if !r.DryRun && len(sums) > 0 {
		// Checked again in the statement that deletes: a task queued or a
		// blob used since the selection keeps it.
		rows, _ := s.pool.Query(ctx, `DELETE FROM blobs WHERE sha256 = ANY($1) AND stored_at < $2 AND `+blobUnused+
			` RETURNING sha256`, sums, old)
		gone, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return false, fmt.Errorf("store: purge blobs: %w", err)
		}
		kept := sizes
		sizes = map[string]int64{}
		for _, g := range gone {
			sizes[g] = kept[g]
		}
	}
	for _, sum := range inOrder(sums, sizes) {
		out.Blobs = append(out.Blobs, sum)
		out.Bytes += sizes[sum]
	}
	return more, nil
}

// purgeVerdicts removes expired sandbox verdicts.
func (s *DB) purgeVerdicts(ctx context.Context, r store.Retention, out *store.Purged) (bool, error) {
	if r.Blobs <= 0 {
		return false, nil
	}
	var n int64
	if r.DryRun {
		err := s.pool.QueryRow(ctx, `SELECT count(*) FROM sandbox_verdicts WHERE expires <= $1`, r.Now).Scan(&n)
		out.Verdicts += int(n)
		return false, err
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM sandbox_verdicts WHERE expires <= $1`, r.Now)
	if err != nil {
		return false, fmt.Errorf("store: purge verdicts: %w", err)
	}
	out.Verdicts += int(tag.RowsAffected())
	return false, nil
}

// formatAge prints an age the way policy.hcl writes it ("90d", "36h").
func formatAge(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}
