package sandbox

import (
	"context"
	"time"
)

// Task is one piece of content waiting for a verdict: queued for upload
// (ID empty) or submitted and being polled. It is the row the Store keeps so
// that polling resumes after a restart without resubmitting, and so that the
// same content in two messages is submitted once.
//
// Every field is a plain column; Options is small and can be stored as JSON.
type Task struct {
	Key     string            // primary key: File.Key()
	SHA256  string            // content hash
	Name    string            // file name for the upload
	Type    string            // type hint
	Size    int64             // content length
	Options map[string]string // sandbox options (may hold a password)
	Ref     string            // caller's durable handle, passed to Reopen

	ID        TaskID    // sandbox task; empty while queued
	Created   time.Time // first scheduled (for the verdict latency)
	Submitted time.Time // last submission or adoption of ID
	Attempts  int       // uploads made so far
	Searched  bool      // the sandbox was already searched for this content
	Polls     int       // status polls since Submitted (drives the poll backoff)
	Failures  int       // consecutive failed requests (drives the retry backoff)
	NextPoll  time.Time // not before this time; also the claim lease
	LastError string    // last error, for operators
}

// TaskCounts is a summary of the task table.
type TaskCounts struct {
	Queued    int // tasks with no sandbox ID yet
	Submitted int // tasks with a sandbox ID (in flight at the sandbox)
}

// Store persists verdicts and tasks. The store package implements it on
// SQLite and PostgreSQL so that the cache survives restarts and is shared by
// several nodes; sandbox/sandboxtest has an in-memory implementation and a
// conformance suite (sandboxtest.TestStore) for the real ones.
//
// Times are passed in by the caller (the Scheduler's clock), never read from
// the store's own clock, so that TTLs and leases are testable and nodes agree.
//
// A schema that fits (PostgreSQL spelling):
//
//	CREATE TABLE sandbox_verdicts (
//	  key text PRIMARY KEY, verdict jsonb NOT NULL, expires_at timestamptz NOT NULL);
//	CREATE TABLE sandbox_tasks (
//	  key text PRIMARY KEY, sha256 text NOT NULL, name text NOT NULL, type text NOT NULL,
//	  size bigint NOT NULL, options jsonb NOT NULL, ref text NOT NULL,
//	  task_id text NOT NULL DEFAULT '', created timestamptz NOT NULL, submitted timestamptz,
//	  attempts int NOT NULL, searched bool NOT NULL, polls int NOT NULL, failures int NOT NULL,
//	  next_poll timestamptz NOT NULL, last_error text NOT NULL);
//	CREATE INDEX ON sandbox_tasks (next_poll, key);
//
//	-- DueTasks($1 now, $2 leaseUntil, $3 max)
//	UPDATE sandbox_tasks SET next_poll = $2 WHERE key IN (
//	  SELECT key FROM sandbox_tasks WHERE next_poll <= $1
//	  ORDER BY next_poll, key LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING *;
//
// (SQLite: the same SELECT and UPDATE inside one BEGIN IMMEDIATE
// transaction.) Expired verdicts may be deleted whenever convenient.
type Store interface {
	// GetVerdict returns the verdict stored under key if it expires after
	// now.
	GetVerdict(ctx context.Context, key string, now time.Time) (Verdict, bool, error)
	// PutVerdict stores v under v.Key until expires, replacing any verdict
	// for that key.
	PutVerdict(ctx context.Context, v Verdict, expires time.Time) error

	// GetTask returns the task stored under key.
	GetTask(ctx context.Context, key string) (Task, bool, error)
	// AddTask inserts t unless a task with t.Key exists (INSERT … ON
	// CONFLICT DO NOTHING). It returns the stored task and whether t was
	// inserted; when another node got there first, the existing task.
	AddTask(ctx context.Context, t Task) (Task, bool, error)
	// PutTask replaces the task stored under t.Key. When none exists it does
	// nothing (a task finalised elsewhere must not come back).
	PutTask(ctx context.Context, t Task) error
	// DeleteTask removes the task stored under key, if any.
	DeleteTask(ctx context.Context, key string) error
	// DueTasks claims up to max tasks whose NextPoll is at or before now,
	// oldest NextPoll first, by setting their NextPoll to leaseUntil in the
	// same transaction (SQL: FOR UPDATE SKIP LOCKED), and returns them
	// with NextPoll = leaseUntil. A claimed task is not returned again
	// until its lease passes, so pollers on several nodes do not work on
	// the same task; the poller writes the real NextPoll with PutTask.
	DueTasks(ctx context.Context, now, leaseUntil time.Time, max int) ([]Task, error)
	// CountTasks counts queued and submitted tasks.
	CountTasks(ctx context.Context) (TaskCounts, error)
}
