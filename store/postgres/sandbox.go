package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailguard/mailguard/sandbox"
)

// Sandbox returns the sandbox.Store view of the database: the verdict
// cache and the in-flight task table, shared by every node.
func (s *DB) Sandbox() sandbox.Store { return sandboxStore{s} }

type sandboxStore struct{ s *DB }

var _ sandbox.Store = sandboxStore{}

// GetVerdict implements sandbox.Store.
func (x sandboxStore) GetVerdict(ctx context.Context, key string, now time.Time) (sandbox.Verdict, bool, error) {
	var b []byte
	err := x.s.pool.QueryRow(ctx, `SELECT verdict FROM sandbox_verdicts WHERE key = $1 AND expires > $2`,
		clean(key), now).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return sandbox.Verdict{}, false, nil
	}
	if err != nil {
		return sandbox.Verdict{}, false, fmt.Errorf("store: verdict %s: %w", key, err)
	}
	var v sandbox.Verdict
	if err := json.Unmarshal(b, &v); err != nil {
		return sandbox.Verdict{}, false, fmt.Errorf("store: verdict %s: %w", key, err)
	}
	return v, true, nil
}

// PutVerdict implements sandbox.Store.
func (x sandboxStore) PutVerdict(ctx context.Context, v sandbox.Verdict, expires time.Time) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	key := v.Key
	if key == "" {
		key = v.SHA256
	}
	_, err = x.s.pool.Exec(ctx, `INSERT INTO sandbox_verdicts (key, sha256, verdict, expires) VALUES ($1,$2,$3,$4)
		ON CONFLICT (key) DO UPDATE SET sha256 = excluded.sha256, verdict = excluded.verdict,
		expires = excluded.expires`, clean(key), clean(v.SHA256), b, expires)
	if err != nil {
		return fmt.Errorf("store: verdict %s: %w", key, err)
	}
	return nil
}

const taskCols = `key, sha256, name, type, size, options, ref, task_id, created, submitted, attempts,
	searched, polls, failures, next_poll, last_error`

func scanTask(row pgx.Row) (sandbox.Task, error) {
	var t sandbox.Task
	var opts []byte
	var id string
	var created, submitted, next *time.Time
	err := row.Scan(&t.Key, &t.SHA256, &t.Name, &t.Type, &t.Size, &opts, &t.Ref, &id, &created,
		&submitted, &t.Attempts, &t.Searched, &t.Polls, &t.Failures, &next, &t.LastError)
	if err != nil {
		return t, err
	}
	t.ID = sandbox.TaskID(id)
	t.Created, t.Submitted, t.NextPoll = utc(created), utc(submitted), utc(next)
	if len(opts) > 0 && string(opts) != "null" {
		if err := json.Unmarshal(opts, &t.Options); err != nil {
			return t, err
		}
	}
	return t, nil
}

// taskArgs are the columns of taskCols, in order. The options may hold an
// archive password: they are JSON in a bytea column, never reinterpreted.
func taskArgs(t sandbox.Task) []any {
	opts, _ := json.Marshal(t.Options)
	return []any{clean(t.Key), clean(t.SHA256), clean(t.Name), clean(t.Type), t.Size, opts, clean(t.Ref),
		clean(string(t.ID)), tz(t.Created), tz(t.Submitted), t.Attempts, t.Searched, t.Polls, t.Failures,
		t.NextPoll, clean(t.LastError)}
}

// GetTask implements sandbox.Store.
func (x sandboxStore) GetTask(ctx context.Context, key string) (sandbox.Task, bool, error) {
	t, err := scanTask(x.s.pool.QueryRow(ctx, `SELECT `+taskCols+` FROM sandbox_tasks WHERE key = $1`, clean(key)))
	if errors.Is(err, pgx.ErrNoRows) {
		return t, false, nil
	}
	if err != nil {
		return t, false, fmt.Errorf("store: task %s: %w", key, err)
	}
	return t, true, nil
}

// AddTask implements sandbox.Store: INSERT … ON CONFLICT DO NOTHING, then
// the stored row. A node adding the same task at the same moment makes
// the insert wait for its commit; the loser reads the winner's task.
func (x sandboxStore) AddTask(ctx context.Context, t sandbox.Task) (sandbox.Task, bool, error) {
	var out sandbox.Task
	var inserted bool
	err := x.s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO sandbox_tasks (`+taskCols+`)
			VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16)
			ON CONFLICT (key) DO NOTHING`, taskArgs(t)...)
		if err != nil {
			return err
		}
		inserted = tag.RowsAffected() == 1
		out, err = scanTask(tx.QueryRow(ctx, `SELECT `+taskCols+` FROM sandbox_tasks WHERE key = $1`, clean(t.Key)))
		return err
	})
	if err != nil {
		return out, false, fmt.Errorf("store: add task %s: %w", t.Key, err)
	}
	return out, inserted, nil
}

// PutTask implements sandbox.Store.
func (x sandboxStore) PutTask(ctx context.Context, t sandbox.Task) error {
	_, err := x.s.pool.Exec(ctx, `UPDATE sandbox_tasks SET sha256 = $2, name = $3, type = $4, size = $5,
		options = $6, ref = $7, task_id = $8, created = $9, submitted = $10, attempts = $11, searched = $12,
		polls = $13, failures = $14, next_poll = $15, last_error = $16 WHERE key = $1`, taskArgs(t)...)
	if err != nil {
		return fmt.Errorf("store: put task %s: %w", t.Key, err)
	}
	return nil
}

// DeleteTask implements sandbox.Store.
func (x sandboxStore) DeleteTask(ctx context.Context, key string) error {
	if _, err := x.s.pool.Exec(ctx, `DELETE FROM sandbox_tasks WHERE key = $1`, clean(key)); err != nil {
		return fmt.Errorf("store: delete task %s: %w", key, err)
	}
	return nil
}

// DueTasks implements sandbox.Store: the claim is one statement, FOR
// UPDATE SKIP LOCKED, so pollers on several nodes never get the same task
// and never wait for each other.
func (x sandboxStore) DueTasks(ctx context.Context, now, leaseUntil time.Time, max int) ([]sandbox.Task, error) {
	if max <= 0 {
		return nil, nil
	}
	rows, _ := x.s.pool.Query(ctx, `WITH due AS (
			SELECT key, next_poll FROM sandbox_tasks WHERE next_poll <= $1
			ORDER BY next_poll, key LIMIT $3 FOR UPDATE SKIP LOCKED)
		UPDATE sandbox_tasks t SET next_poll = $2 FROM due WHERE t.key = due.key
		RETURNING t.key, t.sha256, t.name, t.type, t.size, t.options, t.ref, t.task_id, t.created,
			t.submitted, t.attempts, t.searched, t.polls, t.failures, t.next_poll, t.last_error, due.next_poll`,
		now, leaseUntil, max)
	type claimed struct {
		t   sandbox.Task
		was time.Time
	}
	var out []claimed
	for rows.Next() {
		var c claimed
		var was *time.Time
		t, err := scanTask(rowWithTail{rows, []any{&was}})
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: due tasks: %w", err)
		}
		c.t, c.was = t, utc(was)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: due tasks: %w", err)
	}
	// RETURNING has no order: oldest NextPoll first, as claimed.
	slices.SortFunc(out, func(a, b claimed) int {
		if c := a.was.Compare(b.was); c != 0 {
			return c
		}
		return strings.Compare(a.t.Key, b.t.Key)
	})
	tasks := make([]sandbox.Task, len(out))
	for i, c := range out {
		tasks[i] = c.t
	}
	return tasks, nil
}

// rowWithTail scans a row that has extra columns after those the caller
// scans, into tail.
type rowWithTail struct {
	row  pgx.Row
	tail []any
}

// Scan implements pgx.Row.
func (r rowWithTail) Scan(dest ...any) error { return r.row.Scan(append(dest, r.tail...)...) }

// CountTasks implements sandbox.Store.
func (x sandboxStore) CountTasks(ctx context.Context) (sandbox.TaskCounts, error) {
	var c sandbox.TaskCounts
	err := x.s.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE task_id = ''), count(*) FILTER (WHERE task_id <> '')
		FROM sandbox_tasks`).Scan(&c.Queued, &c.Submitted)
	if err != nil {
		return c, fmt.Errorf("store: count tasks: %w", err)
	}
	return c, nil
}
