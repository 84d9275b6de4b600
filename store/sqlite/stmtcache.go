package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"sync"

	msqlite "modernc.org/sqlite"
)

// The store runs the same few statements for every message. modernc's
// Exec and Query prepare (parse and plan) the SQL text on every call; this
// driver wrapper keeps the prepared statements of each connection and
// reuses them, which the profile of the relay path showed to be about a
// tenth of its CPU. It is transparent to the code above database/sql.

const cachingDriverName = "sqlite-mailguard"

var registerOnce sync.Once

func registerDriver() {
	registerOnce.Do(func() { sql.Register(cachingDriverName, cachingDriver{&msqlite.Driver{}}) })
}

// maxCachedStmts bounds the statements kept per connection.
const maxCachedStmts = 128

type cachingDriver struct{ d driver.Driver }

func (c cachingDriver) Open(name string) (driver.Conn, error) {
	conn, err := c.d.Open(name)
	if err != nil {
		return nil, err
	}
	return &cachingConn{Conn: conn, stmts: map[string]*cachedStmt{}}, nil
}

// cachingConn wraps one modernc connection. database/sql never uses a
// connection from two goroutines at once, so the map needs no lock.
type cachingConn struct {
	driver.Conn
	stmts map[string]*cachedStmt
}

type cachedStmt struct {
	st   driver.Stmt
	busy bool // rows of a query are still open: the statement cannot be reused yet
}

var (
	_ driver.ExecerContext      = (*cachingConn)(nil)
	_ driver.QueryerContext     = (*cachingConn)(nil)
	_ driver.ConnBeginTx        = (*cachingConn)(nil)
	_ driver.ConnPrepareContext = (*cachingConn)(nil)
	_ driver.SessionResetter    = (*cachingConn)(nil)
	_ driver.Validator          = (*cachingConn)(nil)
	_ driver.Pinger             = (*cachingConn)(nil)
)

func (c *cachingConn) stmt(ctx context.Context, query string) (*cachedStmt, error) {
	if cs, ok := c.stmts[query]; ok && !cs.busy {
		return cs, nil
	} else if ok {
		// The cached one is in use by open rows: a one-off statement.
		st, err := c.PrepareContext(ctx, query)
		if err != nil {
			return nil, err
		}
		return &cachedStmt{st: st, busy: true}, nil
	}
	st, err := c.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	cs := &cachedStmt{st: st}
	if len(c.stmts) < maxCachedStmts {
		c.stmts[query] = cs
	} else {
		cs.busy = true // not cached: closed after use
	}
	return cs, nil
}

// oneOff reports whether cs is not in the cache (closed after use).
func (c *cachingConn) oneOff(query string, cs *cachedStmt) bool { return c.stmts[query] != cs }

func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	cs, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	res, err := cs.st.(driver.StmtExecContext).ExecContext(ctx, args)
	if c.oneOff(query, cs) {
		cs.st.Close()
	}
	return res, err
}

func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	cs, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	rows, err := cs.st.(driver.StmtQueryContext).QueryContext(ctx, args)
	oneOff := c.oneOff(query, cs)
	if err != nil {
		if oneOff {
			cs.st.Close()
		}
		return nil, err
	}
	if !oneOff {
		cs.busy = true
	}
	return &cachedRows{Rows: rows, cs: cs, oneOff: oneOff}, nil
}

// cachedRows releases (or closes) its statement when closed.
type cachedRows struct {
	driver.Rows
	cs     *cachedStmt
	oneOff bool
	closed bool
}

func (r *cachedRows) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	err := r.Rows.Close()
	if r.oneOff {
		return errors.Join(err, r.cs.st.Close())
	}
	r.cs.busy = false
	return err
}

// Next is forwarded explicitly so that io.EOF keeps its identity.
func (r *cachedRows) Next(dest []driver.Value) error {
	err := r.Rows.Next(dest)
	if err == io.EOF {
		return io.EOF
	}
	return err
}

func (c *cachingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, query)
}

func (c *cachingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
}

func (c *cachingConn) ResetSession(ctx context.Context) error {
	return c.Conn.(driver.SessionResetter).ResetSession(ctx)
}

func (c *cachingConn) IsValid() bool { return c.Conn.(driver.Validator).IsValid() }

func (c *cachingConn) Ping(ctx context.Context) error { return c.Conn.(driver.Pinger).Ping(ctx) }

func (c *cachingConn) Close() error {
	var errs []error
	for q, cs := range c.stmts {
		errs = append(errs, cs.st.Close())
		delete(c.stmts, q)
	}
	return errors.Join(append(errs, c.Conn.Close())...)
}
