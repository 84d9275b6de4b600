package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/mailguard/mailguard/policy"
	"github.com/mailguard/mailguard/sandbox"
	"github.com/mailguard/mailguard/store"
	"github.com/mailguard/mailguard/store/postgres"
	"github.com/mailguard/mailguard/store/sqlite"
	"github.com/mailguard/mailguard/thread"
)

// backend is an opened store with its sandbox and conversation views,
// whichever implementation the policy names.
type backend interface {
	store.Store
	Sandbox() sandbox.Store
	Thread() thread.Store
}

var (
	_ backend = (*sqlite.DB)(nil)
	_ backend = (*postgres.DB)(nil)
)

// storeOpenTimeout bounds connecting to PostgreSQL and migrating its
// schema, so that serve or a CLI command does not hang on an unreachable
// database.
const storeOpenTimeout = 30 * time.Second

// openBackend opens the store the policy names: PostgreSQL, shared by
// several nodes, when store.postgres is set; else SQLite under store.path.
// With PostgreSQL, store.path is still this node's own directory
// (temporary files, the default maildir, the event log).
func openBackend(p *policy.Policy) (backend, error) {
	if p.Store.Postgres == "" {
		st, err := sqlite.Open(p.Store.Path, sqlite.Options{})
		if err != nil {
			return nil, err
		}
		return st, nil
	}
	tmp := filepath.Join(p.Store.Path, "tmp")
	if err := os.MkdirAll(tmp, 0o750); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeOpenTimeout)
	defer cancel()
	st, err := postgres.Open(ctx, p.Store.Postgres, postgres.Options{TempDir: tmp})
	if err != nil {
		return nil, fmt.Errorf("%w (store.postgres %s)", err, storeName(p))
	}
	return st, nil
}

// storeExists reports whether the policy's store has been created: the
// SQLite database file, or a configured PostgreSQL (created on first use).
func storeExists(p *policy.Policy) bool {
	if p.Store.Postgres != "" {
		return true
	}
	_, err := os.Stat(filepath.Join(p.Store.Path, "mailguard.db"))
	return err == nil
}

// storeName names the store for logs and errors, without a password.
func storeName(p *policy.Policy) string {
	if p.Store.Postgres == "" {
		return p.Store.Path
	}
	u, err := url.Parse(p.Store.Postgres)
	if err != nil {
		return "postgres://…"
	}
	return u.Redacted()
}

// openStore loads the policy and opens its store, for the CLI. A SQLite
// store must exist already (serve creates it).
func openStore(cfg string, stderr io.Writer) (*policy.Policy, backend, error) {
	p, diags := policy.Load(cfg)
	if diags.HasErrors() {
		fmt.Fprint(stderr, policy.FormatDiagnostics(diags))
		return nil, nil, exitError(1)
	}
	if p.Store.Postgres == "" {
		if _, err := os.Stat(p.Store.Path); err != nil {
			return nil, nil, fmt.Errorf("store %s: %w (has serve run with this policy?)", p.Store.Path, err)
		}
	}
	st, err := openBackend(p)
	return p, st, err
}
