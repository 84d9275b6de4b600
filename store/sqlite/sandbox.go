package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mailguard/mailguard/sandbox"
)

// Sandbox returns the sandbox.Store view of the database: the verdict cache
// and the in-flight task table, shared by every process on this store.
func (s *DB) Sandbox() sandbox.Store { return sandboxStore{s} }

type sandboxStore struct{ s *DB }

var _ sandbox.Store = sandboxStore{}

// GetVerdict implements sandbox.Store.
func (x sandboxStore) GetVerdict(ctx context.Context, key string, now time.Time) (sandbox.Verdict, bool, error) {
	var b []byte
	err := x.s.r.QueryRowContext(ctx, `SELECT verdict FROM sandbox_verdicts WHERE key = ? AND expires > ?`,
		key, us(now)).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
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
	return x.s.write(ctx, nil, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO sandbox_verdicts (key, sha256, verdict, expires) VALUES (?,?,?,?)
			ON CONFLICT(key) DO UPDATE SET sha256 = excluded.sha256, verdict = excluded.verdict,
			expires = excluded.expires`, key, v.SHA256, b, us(expires))
		return err
	})
}

const taskCols = `key, sha256, name, type, size, options, ref, task_id, created, submitted, attempts,
	searched, polls, failures, next_poll, last_error`

func scanTask(row interface{ Scan(...any) error }) (sandbox.Task, error) {
	var t sandbox.Task
	var opts string
	var id string
	var created, submitted, next int64
	var searched int
	err := row.Scan(&t.Key, &t.SHA256, &t.Name, &t.Type, &t.Size, &opts, &t.Ref, &id, &created,
		&submitted, &t.Attempts, &searched, &t.Polls, &t.Failures, &next, &t.LastError)
	if err != nil {
		return t, err
	}
	t.ID = sandbox.TaskID(id)
	t.Created, t.Submitted, t.NextPoll = fromUS(created), fromUS(submitted), fromUS(next)
	t.Searched = searched != 0
	if opts != "" && opts != "null" {
		if err := json.Unmarshal([]byte(opts), &t.Options); err != nil {
			return t, err
		}
	}
	return t, nil
}

func taskArgs(t sandbox.Task) []any {
	opts, _ := json.Marshal(t.Options)
	searched := 0
	if t.Searched {
		searched = 1
	}
	return []any{t.Key, t.SHA256, t.Name, t.Type, t.Size, string(opts), t.Ref, string(t.ID), us(t.Created),
		us(t.Submitted), t.Attempts, searched, t.Polls, t.Failures, us(t.NextPoll), t.LastError}
}

// GetTask implements sandbox.Store.
func (x sandboxStore) GetTask(ctx context.Context, key string) (sandbox.Task, bool, error) {
	t, err := scanTask(x.s.r.QueryRowContext(ctx, `SELECT `+taskCols+` FROM sandbox_tasks WHERE key = ?`, key))
	if errors.Is(err, sql.ErrNoRows) {
		return t, false, nil
	}
	if err != nil {
		return t, false, fmt.Errorf("store: task %s: %w", key, err)
	}
	return t, true, nil
}

// AddTask implements sandbox.Store.
func (x sandboxStore) AddTask(ctx context.Context, t sandbox.Task) (sandbox.Task, bool, error) {
	var out sandbox.Task
	var inserted bool
	err := x.s.write(ctx, nil, func(tx *sql.Tx) error {
		res, err := tx.Exec(`INSERT INTO sandbox_tasks (`+taskCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
			ON CONFLICT(key) DO NOTHING`, taskArgs(t)...)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		inserted = n == 1
		out, err = scanTask(tx.QueryRow(`SELECT `+taskCols+` FROM sandbox_tasks WHERE key = ?`, t.Key))
		return err
	})
	if err != nil {
		return out, false, fmt.Errorf("store: add task %s: %w", t.Key, err)
	}
	return out, inserted, nil
}

// PutTask implements sandbox.Store.
func (x sandboxStore) PutTask(ctx context.Context, t sandbox.Task) error {
	return x.s.write(ctx, nil, func(tx *sql.Tx) error {
		a := taskArgs(t)
		_, err := tx.Exec(`UPDATE sandbox_tasks SET sha256 = ?, name = ?, type = ?, size = ?, options = ?,
			ref = ?, task_id = ?, created = ?, submitted = ?, attempts = ?, searched = ?, polls = ?,
			failures = ?, next_poll = ?, last_error = ? WHERE key = ?`, append(a[1:], a[0])...)
		return err
	})
}

// DeleteTask implements sandbox.Store.
func (x sandboxStore) DeleteTask(ctx context.Context, key string) error {
	return x.s.write(ctx, nil, func(tx *sql.Tx) error {
		_, err := tx.Exec(`DELETE FROM sandbox_tasks WHERE key = ?`, key)
		return err
	})
}

// DueTasks implements sandbox.Store: the claim is one write transaction
// (SQLite serialises writers, which is what SKIP LOCKED buys on Postgres).
func (x sandboxStore) DueTasks(ctx context.Context, now, leaseUntil time.Time, max int) ([]sandbox.Task, error) {
	var out []sandbox.Task
	err := x.s.write(ctx, nil, func(tx *sql.Tx) error {
		out = out[:0]
		rows, err := tx.Query(`SELECT `+taskCols+` FROM sandbox_tasks WHERE next_poll <= ?
			ORDER BY next_poll LIMIT ?`, us(now), max)
		if err != nil {
			return err
		}
		for rows.Next() {
			t, err := scanTask(rows)
			if err != nil {
				rows.Close()
				return err
			}
			out = append(out, t)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for i := range out {
			if _, err := tx.Exec(`UPDATE sandbox_tasks SET next_poll = ? WHERE key = ?`, us(leaseUntil), out[i].Key); err != nil {
				return err
			}
			out[i].NextPoll = leaseUntil
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: due tasks: %w", err)
	}
	return out, nil
}

// CountTasks implements sandbox.Store.
func (x sandboxStore) CountTasks(ctx context.Context) (sandbox.TaskCounts, error) {
	var c sandbox.TaskCounts
	err := x.s.r.QueryRowContext(ctx, `SELECT
		coalesce(sum(CASE WHEN task_id = '' THEN 1 ELSE 0 END), 0),
		coalesce(sum(CASE WHEN task_id != '' THEN 1 ELSE 0 END), 0) FROM sandbox_tasks`).Scan(&c.Queued, &c.Submitted)
	if err != nil {
		return c, fmt.Errorf("store: count tasks: %w", err)
	}
	return c, nil
}
