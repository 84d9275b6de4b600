// Package postgres is the store for several nodes: every table of the
// embedded store (messages, deliveries, file index, audit trail, sandbox
// verdicts and tasks, conversation memory) and the message bytes
// themselves live in one PostgreSQL database, so that any node can
// inspect, deliver, release or export any message. Work is claimed with
// row locks (SELECT … FOR UPDATE SKIP LOCKED) and a lease expiry column,
// never by a coordinator of our own: a dead node's deliveries come back
// when their leases pass.
//
// Message bytes and sandbox blobs are stored as bytea chunks (tables spool
// and blob_chunks), written in the same transaction as their row: a row
// never points at missing bytes, a commit makes both durable, and deleting
// the row deletes the bytes. Large objects were not chosen because they
// live outside the tables (a deleted row leaves its object behind unless
// unlinked), need a transaction for every read, and are not covered by
// row-level permissions or logical replication.
//
// It owns the SQL and the schema; it must not know policy (decisions are
// opaque JSON) nor the pipeline.
//
// Its tests run the store, sandbox and thread conformance suites and the
// two-node tests against a real server, each test in a schema of its own:
//
//	MAILGUARD_TEST_POSTGRES='postgres://postgres@127.0.0.1:5432/mailguard_test?sslmode=disable' \
//	  go test ./store/postgres
//
// (scripts/test.sh starts a private server and sets the variable; without
// it those tests skip).
package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mailguard/mailguard/store"
)

var _ store.Store = (*DB)(nil)

// Options tunes the store. The zero value is usable.
type Options struct {
	// Now is the clock; nil means time.Now. Leases and retention ages are
	// read from it, so the clocks of the nodes sharing a database must be
	// synchronised (NTP); a skew of seconds is harmless next to minute-long
	// leases.
	Now func() time.Time
	// TempDir holds the unlinked temporary files through which messages
	// larger than one chunk stream in and out; "" means os.TempDir().
	TempDir string

	chunk int // bytes per bytea chunk; tests make it small
}

// defaultChunk is the size of one bytea chunk of message or blob content,
// and the most a message in transit holds in memory: bigger content goes
// through an unlinked temporary file.
const defaultChunk = 256 << 10

// DB is the PostgreSQL store.
type DB struct {
	pool  *pgxpool.Pool
	now   func() time.Time
	tmp   string
	chunk int
}

// Open connects to the database at url (postgres://user@host/db?…; the
// pool size is the URL's pool_max_conns, default max(4, CPUs)) and applies
// the schema migrations that are missing, under an advisory lock so that
// nodes starting together do not race. The tables are created in the
// first schema of the search_path (public unless the URL sets
// search_path).
func Open(ctx context.Context, url string, opt Options) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("store: postgres url: %w", err)
	}
	if v, ok := cfg.ConnConfig.RuntimeParams["synchronous_commit"]; ok && strings.EqualFold(v, "off") {
		return nil, errors.New("store: postgres url: synchronous_commit=off would acknowledge mail before it is durable")
	}
	cfg.AfterConnect = requireSyncCommit
	for k, v := range sessionDefaults {
		if _, set := cfg.ConnConfig.RuntimeParams[k]; !set {
			cfg.ConnConfig.RuntimeParams[k] = v
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: postgres: %w", err)
	}
	s := &DB{pool: pool, now: opt.Now, tmp: opt.TempDir, chunk: opt.chunk}
	if s.now == nil {
		s.now = time.Now
	}
	if s.tmp == "" {
		s.tmp = os.TempDir()
	}
	if s.chunk <= 0 {
		s.chunk = defaultChunk
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: postgres: %w", err)
	}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: postgres schema: %w", err)
	}
	return s, nil
}

// sessionDefaults are session settings sent at connection start unless
// the URL sets them. A node frozen inside a transaction (stopped, swapped
// out) must not hold row locks that the other nodes wait for: none of our
// transactions waits for anything but the database, so a minute idle in
// one means its node is gone.
var sessionDefaults = map[string]string{
	"application_name":                    "mailguard",
	"idle_in_transaction_session_timeout": "60s",
}

// requireSyncCommit turns synchronous_commit back on for a session whose
// server, database or role default has it off: Accept must return only
// once the bytes are on disk. Stronger settings (remote_apply…) are kept.
func requireSyncCommit(ctx context.Context, c *pgx.Conn) error {
	var v string
	if err := c.QueryRow(ctx, `SELECT current_setting('synchronous_commit')`).Scan(&v); err != nil {
		return err
	}
	if v == "off" {
		_, err := c.Exec(ctx, `SET synchronous_commit TO on`)
		return err
	}
	return nil
}

// Close releases the connections.
func (s *DB) Close() error {
	s.pool.Close()
	return nil
}

// migrations are the schema changes, applied once each in name order and
// recorded by name in schema_migrations (as in store/sqlite, so that
// features developed in parallel never fight over a version number).
var migrations = map[string]string{}

func registerMigration(name, sql string) {
	if _, dup := migrations[name]; dup {
		panic("postgres: migration registered twice: " + name)
	}
	migrations[name] = sql
}

// migrateLockKey is the advisory lock key of schema migrations in schema
// (nodes using different schemas of one database do not wait for each
// other).
func migrateLockKey(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("mailguard schema migrations\x00" + schema))
	return int64(h.Sum64())
}

// migrate applies the missing migrations in one transaction holding a
// transaction-level advisory lock: a second node waits, then finds them
// applied. DDL is transactional in PostgreSQL, so a failed migration
// leaves nothing half-done.
func (s *DB) migrate(ctx context.Context) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var schema *string
		if err := tx.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
			return err
		}
		if schema == nil {
			return errors.New("no schema to create the tables in (check search_path)")
		}
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrateLockKey(*schema)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			name text PRIMARY KEY, applied_at timestamptz NOT NULL)`); err != nil {
			return err
		}
		done := map[string]bool{}
		rows, _ := tx.Query(ctx, `SELECT name FROM schema_migrations`)
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, n := range names {
			done[n] = true
		}
		todo := make([]string, 0, len(migrations))
		for n := range migrations {
			if !done[n] {
				todo = append(todo, n)
			}
		}
		sort.Strings(todo)
		for _, name := range todo {
			if _, err := tx.Exec(ctx, migrations[name]); err != nil {
				return fmt.Errorf("migration %s: %w", name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (name, applied_at) VALUES ($1, $2)`,
				name, time.Now()); err != nil {
				return err
			}
		}
		return nil
	})
}

// Migrations returns the names of the applied schema migrations.
func (s *DB) Migrations(ctx context.Context) ([]string, error) {
	rows, _ := s.pool.Query(ctx, `SELECT name FROM schema_migrations ORDER BY name`)
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// tx runs fn in a transaction and commits it. A deadlock or serialization
// failure (another node touched the same rows in another order) rolls
// back and runs fn again, a few times: fn must only read what it writes
// through tx.
func (s *DB) tx(ctx context.Context, fn func(pgx.Tx) error) error {
	var err error
	for attempt := 0; attempt < 4; attempt++ {
		err = pgx.BeginFunc(ctx, s.pool, fn)
		if !retryable(err) {
			return err
		}
	}
	return err
}

// batch sends the statements queue adds in one round trip, as one
// implicit transaction: all or nothing, committed (durably) when it
// returns. read consumes the results in order; statements after a failed
// one do not run. Deadlocks are retried like in tx.
func (s *DB) batch(ctx context.Context, queue func(*pgx.Batch), read func(pgx.BatchResults) error) error {
	var err error
	for attempt := 0; attempt < 4; attempt++ {
		var b pgx.Batch
		queue(&b)
		br := s.pool.SendBatch(ctx, &b)
		err = read(br)
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		if !retryable(err) {
			return err
		}
	}
	return err
}

// batchTx is batch for statements whose outcome decides whether to
// commit: BEGIN and the statements go in one round trip, read inspects
// the results, and the transaction is committed (a second round trip)
// only if read and every statement succeeded; else it is rolled back and
// the error returned.
func (s *DB) batchTx(ctx context.Context, queue func(*pgx.Batch), read func(pgx.BatchResults) error) error {
	var err error
	for attempt := 0; attempt < 4; attempt++ {
		var b pgx.Batch
		b.BeginTx(pgx.TxOptions{})
		queue(&b)
		br := s.pool.SendBatch(ctx, &b)
		tx := br.Tx()
		if _, err = br.Exec(); err == nil { // BEGIN
			err = read(br)
		}
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = tx.Commit(ctx)
		} else {
			tx.Rollback(ctx)
		}
		if !retryable(err) {
			return err
		}
	}
	return err
}

// retryable reports a transaction that failed only because of other
// transactions running at the same time.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// clean makes s storable in a text column: PostgreSQL refuses NUL and
// invalid UTF-8, which hostile mail carries in headers, file names and
// envelope strings. Valid text is returned unchanged; each offending byte
// becomes a visible \xNN escape, so that distinct values stay distinct and
// an operator sees what was there. Queries clean their arguments the same
// way, so lookups of such values still match.
func clean(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == 0 || r == utf8.RuneError && n <= 1 {
			fmt.Fprintf(&b, `\x%02x`, s[i])
			i++
			continue
		}
		b.WriteString(s[i : i+n])
		i += n
	}
	return b.String()
}

// cleanAll cleans every element; the result is never nil, so that an
// empty list is stored as '{}', not NULL.
func cleanAll(l []string) []string {
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = clean(s)
	}
	return out
}

// tz is a time for a nullable timestamptz column: NULL for the zero time.
func tz(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// utc reads a nullable timestamptz: the zero time for NULL, else the
// instant in UTC (as the SQLite store returns it).
func utc(t *time.Time) time.Time {
	if t == nil || t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

// nonNil returns l, or an empty list for nil.
func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}
