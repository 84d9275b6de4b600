// Package sqlite is the embedded store: SQLite (WAL, synchronous=FULL) for
// metadata and a spool directory for message bytes, under one directory.
// Writes go through one committer goroutine that batches concurrent
// transactions into one SQLite commit and one fsync per touched spool
// directory (group commit), so durability is amortised across sessions
// instead of weakened.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/mailguard/mailguard/store"
)

var _ store.Store = (*DB)(nil)

// Options tunes the store. The zero value is usable.
type Options struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// ReadOnly opens the database for reading only (CLI list/show).
	ReadOnly bool
	// MaxBatch bounds how many transactions one commit may carry; 0 = 256.
	MaxBatch int
	// InlineMax is the largest message kept inside the database instead of
	// a spool file: 0 means DefaultInlineMax, negative keeps every message
	// in a file. Inline messages cost one group-committed WAL fsync to
	// accept, instead of a file fsync, a directory fsync and the commit.
	InlineMax int

	fs     fsys  // tests inject failures
	walMax int64 // tests: WALMax
}

// WALMax is the write-ahead log size above which the committer forces a
// checkpoint that empties the log file. SQLite's automatic checkpoints
// copy pages back but can only restart the log when, at that moment, no
// reader uses it: under a steady mix of commits and reads the log file
// otherwise only grows (10,000 held messages with their sandbox polling
// left a 1 GB log beside a 40 MB database).
const WALMax = 64 << 20

// DB is the SQLite + spool store.
type DB struct {
	dir    string
	w      *sql.DB // one connection, used only by the committer
	r      *sql.DB // readers (WAL allows them beside the writer)
	fs     fsys
	now    func() time.Time
	ops    chan *op
	stop   chan struct{}
	done   chan struct{}
	batch  int
	inline int

	walMax  int64
	walNext time.Time     // no forced checkpoint before this
	walWait time.Duration // the current back-off
}

// Open opens (creating if needed) the store under dir.
func Open(dir string, opt Options) (*DB, error) {
	for _, d := range []string{"spool/tmp", "spool/msg", "spool/orphan", "blob"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o750); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	path := filepath.Join(dir, "mailguard.db")
	dsn := "file:" + path + "?_txlock=immediate" +
		"&_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)" +
		"&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)"
	s := &DB{dir: dir, fs: opt.fs, now: opt.Now, batch: opt.MaxBatch, walMax: opt.walMax,
		ops: make(chan *op, 1024), stop: make(chan struct{}), done: make(chan struct{})}
	if s.walMax <= 0 {
		s.walMax = WALMax
	}
	if s.fs == nil {
		s.fs = osFS{}
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.batch <= 0 {
		s.batch = 256
	}
	switch {
	case opt.InlineMax == 0:
		s.inline = DefaultInlineMax
	case opt.InlineMax > 0:
		s.inline = opt.InlineMax
	}
	registerDriver()
	var err error
	// The writer keeps its statement journals in memory: each operation of
	// a group commit runs in a savepoint, whose journal otherwise spills to
	// a temporary file once it passes 64 KiB (an open, writes and a close
	// per transaction; 4-5 % of the relay's CPU). It holds only pages the
	// transaction changed; durability is the WAL's, not this journal's.
	wdsn := dsn + fmt.Sprintf("&_pragma=cache_size(-32768)&_pragma=journal_size_limit(%d)&_pragma=temp_store(MEMORY)", s.walMax)
	if s.w, err = sql.Open(cachingDriverName, wdsn); err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s.w.SetMaxOpenConns(1)
	if err := migrate(s.w); err != nil {
		s.w.Close()
		return nil, fmt.Errorf("store: schema %s: %w", path, err)
	}
	// Readers keep more of the database in their page cache: conversation
	// lookups with millions of messages read index pages that stay hot.
	// (No memory map: a mapped page is rebuilt on every fetch, and lookups
	// were 3.5-5x slower with one.)
	rdsn := dsn + "&_pragma=cache_size(-65536)"
	if s.r, err = sql.Open(cachingDriverName, rdsn); err != nil {
		s.w.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	// Keep every reader open: a new SQLite connection starts with an empty
	// page cache, and database/sql would otherwise close all but two idle
	// ones and reopen them under load.
	s.r.SetMaxOpenConns(readers)
	s.r.SetMaxIdleConns(readers)
	s.r.SetConnMaxLifetime(0)
	go s.commitLoop()
	return s, nil
}

// Dir is the directory the store lives in.
func (s *DB) Dir() string { return s.dir }

// Close stops the committer and closes the database. Transactions already
// handed to the committer finish first.
func (s *DB) Close() error {
	close(s.stop)
	<-s.done
	return errors.Join(s.r.Close(), s.w.Close())
}

// readers is the size of the reader connection pool.
const readers = 8

// DefaultInlineMax: messages up to this size live in the database (most
// mail; larger ones, usually with big attachments, in spool files).
const DefaultInlineMax = 128 << 10

// migrations are the schema changes, applied once each in name order and
// recorded by name in schema_migrations. Files that own tables register
// theirs with registerMigration from an init function, so that features
// developed in parallel never fight over a version number.
var migrations = map[string]string{}

func registerMigration(name, sql string) {
	if _, dup := migrations[name]; dup {
		panic("sqlite: migration registered twice: " + name)
	}
	migrations[name] = sql
}

func init() {
	registerMigration("0001_core", `CREATE TABLE messages (
		id          TEXT PRIMARY KEY,
		received_at INTEGER NOT NULL,
		state       TEXT NOT NULL,
		state_at    INTEGER NOT NULL,
		direction   TEXT NOT NULL DEFAULT '',
		client_ip   TEXT NOT NULL DEFAULT '',
		helo        TEXT NOT NULL DEFAULT '',
		proto       TEXT NOT NULL DEFAULT '',
		smtputf8    INTEGER NOT NULL DEFAULT 0,
		eightbit    INTEGER NOT NULL DEFAULT 0,
		mail_from   TEXT NOT NULL DEFAULT '',
		rcpts       TEXT NOT NULL DEFAULT '[]',
		size        INTEGER NOT NULL DEFAULT 0,
		message_id  TEXT NOT NULL DEFAULT '',
		hdr_from    TEXT NOT NULL DEFAULT '',
		subject     TEXT NOT NULL DEFAULT '',
		action      TEXT NOT NULL DEFAULT '',
		reasons     TEXT NOT NULL DEFAULT '[]',
		score       REAL NOT NULL DEFAULT 0,
		decision    BLOB,
		prepend     BLOB,
		subject_prefix TEXT NOT NULL DEFAULT '',
		strip_ar    INTEGER NOT NULL DEFAULT 0,
		hold_until  INTEGER NOT NULL DEFAULT 0
	);
	CREATE INDEX messages_state ON messages(state, received_at);
	CREATE INDEX messages_received ON messages(received_at);
	CREATE INDEX messages_msgid ON messages(message_id);
	CREATE TABLE deliveries (
		id          INTEGER PRIMARY KEY AUTOINCREMENT,
		msg_id      TEXT NOT NULL REFERENCES messages(id),
		route       TEXT NOT NULL,
		mail_from   TEXT NOT NULL,
		rcpts       TEXT NOT NULL,
		attempts    INTEGER NOT NULL DEFAULT 0,
		next_at     INTEGER NOT NULL,
		created_at  INTEGER NOT NULL,
		lease_until INTEGER NOT NULL DEFAULT 0,
		lease_owner TEXT NOT NULL DEFAULT '',
		extra       BLOB,
		results     TEXT NOT NULL DEFAULT '[]',
		last_error  TEXT NOT NULL DEFAULT '',
		done_at     INTEGER NOT NULL DEFAULT 0
	);
	CREATE INDEX deliveries_due ON deliveries(done_at, next_at);
	CREATE INDEX deliveries_msg ON deliveries(msg_id);
	CREATE TABLE files (
		msg_id TEXT NOT NULL REFERENCES messages(id),
		sha256 TEXT NOT NULL,
		path   TEXT NOT NULL,
		name   TEXT NOT NULL,
		type   TEXT NOT NULL,
		size   INTEGER NOT NULL
	);
	CREATE INDEX files_sha ON files(sha256);
	CREATE INDEX files_msg ON files(msg_id);
	CREATE TABLE audit (
		msg_id TEXT NOT NULL,
		at     INTEGER NOT NULL,
		actor  TEXT NOT NULL,
		action TEXT NOT NULL,
		note   TEXT NOT NULL DEFAULT '',
		detail TEXT NOT NULL DEFAULT ''
	);
	CREATE INDEX audit_msg ON audit(msg_id, at);`)
	registerMigration("0005_any_delivered", `ALTER TABLE deliveries ADD COLUMN any_delivered INTEGER NOT NULL DEFAULT 0;`)
	registerMigration("0004_inline_spool", `CREATE TABLE spool_inline (
		id   TEXT PRIMARY KEY,
		data BLOB NOT NULL
	) WITHOUT ROWID;`)
	// A rowid table: SQLite advises against WITHOUT ROWID for rows larger
	// than a twentieth of a page, and inline messages are up to 128 KiB.
	registerMigration("0006_inline_rowid", `CREATE TABLE spool_inline_rowid (
		id   TEXT PRIMARY KEY,
		data BLOB NOT NULL
	);
	INSERT INTO spool_inline_rowid (id, data) SELECT id, data FROM spool_inline;
	DROP TABLE spool_inline;
	ALTER TABLE spool_inline_rowid RENAME TO spool_inline;`)
	registerMigration("0002_sandbox", `CREATE TABLE sandbox_verdicts (
		key     TEXT PRIMARY KEY,
		sha256  TEXT NOT NULL,
		verdict BLOB NOT NULL,
		expires INTEGER NOT NULL
	);
	CREATE TABLE sandbox_tasks (
		key        TEXT PRIMARY KEY,
		sha256     TEXT NOT NULL,
		name       TEXT NOT NULL,
		type       TEXT NOT NULL,
		size       INTEGER NOT NULL,
		options    TEXT NOT NULL,
		ref        TEXT NOT NULL,
		task_id    TEXT NOT NULL,
		created    INTEGER NOT NULL,
		submitted  INTEGER NOT NULL,
		attempts   INTEGER NOT NULL,
		searched   INTEGER NOT NULL,
		polls      INTEGER NOT NULL,
		failures   INTEGER NOT NULL,
		next_poll  INTEGER NOT NULL,
		last_error TEXT NOT NULL
	);
	CREATE INDEX sandbox_tasks_due ON sandbox_tasks(next_poll);`)
}

func migrate(db *sql.DB) error {
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
		name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return err
	}
	names := make([]string, 0, len(migrations))
	for n := range migrations {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		tx, err := db.Begin()
		if err != nil {
			return err
		}
		var done int
		if err := tx.QueryRow(`SELECT count(*) FROM schema_migrations WHERE name = ?`, name).Scan(&done); err != nil {
			tx.Rollback()
			return err
		}
		if done > 0 {
			tx.Rollback()
			continue
		}
		if _, err := tx.Exec(migrations[name]); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %s: %w", name, err)
		}
		if _, err := tx.Exec(`INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)`, name, time.Now().Unix()); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return nil
}

// op is one transaction handed to the committer.
type op struct {
	fn   func(tx *sql.Tx) error
	dirs []string // directories to fsync before the commit
	done chan error
}

// write runs fn in a transaction of the committer and waits until it is
// durable. Concurrent writes share one commit (group commit); each runs in
// its own savepoint, so one failing does not undo the others.
func (s *DB) write(ctx context.Context, dirs []string, fn func(tx *sql.Tx) error) error {
	o := &op{fn: fn, dirs: dirs, done: make(chan error, 1)}
	select {
	case s.ops <- o:
	case <-s.stop:
		return errors.New("store: closed")
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once handed over, wait for the outcome even if ctx ends: the caller
	// must know whether it is durable.
	return <-o.done
}

func (s *DB) commitLoop() {
	defer close(s.done)
	for {
		var first *op
		select {
		case first = <-s.ops:
		case <-s.stop:
			// Drain what was handed over before Close.
			for {
				select {
				case o := <-s.ops:
					s.commit([]*op{o})
				default:
					return
				}
			}
		}
		batch := []*op{first}
	drain:
		for len(batch) < s.batch {
			select {
			case o := <-s.ops:
				batch = append(batch, o)
			default:
				break drain
			}
		}
		s.commit(batch)
	}
}

func (s *DB) commit(batch []*op) {
	start := time.Now()
	defer func() {
		metricCommitSeconds.Observe(time.Since(start).Seconds())
		metricCommitBatch.Observe(float64(len(batch)))
	}()
	fail := func(err error) {
		for _, o := range batch {
			o.done <- err
		}
	}
	seen := map[string]bool{}
	for _, o := range batch {
		for _, d := range o.dirs {
			if seen[d] {
				continue
			}
			seen[d] = true
			if err := s.fs.SyncDir(d); err != nil {
				fail(fmt.Errorf("store: fsync %s: %w", d, err))
				return
			}
		}
	}
	tx, err := s.w.Begin()
	if err != nil {
		fail(fmt.Errorf("store: begin: %w", err))
		return
	}
	errs := make([]error, len(batch))
	for i, o := range batch {
		errs[i] = runSavepoint(tx, o.fn)
	}
	if err := tx.Commit(); err != nil {
		fail(fmt.Errorf("store: commit: %w", err))
		return
	}
	for i, o := range batch {
		o.done <- errs[i]
	}
	s.boundWAL()
}

// boundWAL truncates the write-ahead log when it has grown past walMax:
// a TRUNCATE checkpoint copies the log back, waits up to 50 ms for
// the readers still using it, and empties the file. While a long reader
// (a quarantine listing, a hunt) keeps it from finishing, the attempts
// back off, so that commits are not slowed. Looking costs a stat per
// commit.
func (s *DB) boundWAL() {
	now := time.Now()
	if now.Before(s.walNext) {
		return
	}
	st, err := os.Stat(filepath.Join(s.dir, "mailguard.db-wal"))
	if err != nil || st.Size() <= s.walMax {
		return
	}
	if s.truncateWAL() {
		s.walWait = 0
		return
	}
	s.walWait = min(max(2*s.walWait, walRetry), walRetryMax)
	s.walNext = now.Add(s.walWait)
}

// truncateWAL runs one TRUNCATE checkpoint and reports whether it emptied
// the log.
func (s *DB) truncateWAL() bool {
	ctx := context.Background()
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return false
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `PRAGMA busy_timeout = 50`); err != nil {
		return false
	}
	defer conn.ExecContext(ctx, `PRAGMA busy_timeout = 10000`)
	var busy, frames, copied int
	err = conn.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &frames, &copied)
	return err == nil && busy == 0
}

// walRetry and walRetryMax bound the back-off of checkpoints that could
// not empty the log.
const (
	walRetry    = 50 * time.Millisecond
	walRetryMax = time.Second
)

func runSavepoint(tx *sql.Tx, fn func(*sql.Tx) error) (err error) {
	if _, err := tx.Exec(`SAVEPOINT op`); err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("store: panic in transaction: %v", r)
		}
		if err != nil {
			if _, rerr := tx.Exec(`ROLLBACK TO op`); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
		if _, rerr := tx.Exec(`RELEASE op`); rerr != nil && err == nil {
			err = rerr
		}
	}()
	return fn(tx)
}
