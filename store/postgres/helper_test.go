package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

// The tests need a PostgreSQL server: MAILGUARD_TEST_POSTGRES is the URL
// of a database they may create schemas in, e.g.
//
//	MAILGUARD_TEST_POSTGRES='postgres://postgres@127.0.0.1:5432/mailguard_test?sslmode=disable' \
//	  go test ./store/postgres
//
// scripts/test.sh starts a private server and sets it. Without it the
// tests skip.
const envURL = "MAILGUARD_TEST_POSTGRES"

func testURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(envURL)
	if u == "" {
		t.Skip(envURL + " is not set (see helper_test.go)")
	}
	return u
}

// withParam returns base with the query parameter k set to v.
func withParam(t testing.TB, base, k, v string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", envURL, err)
	}
	q := u.Query()
	q.Set(k, v)
	u.RawQuery = q.Encode()
	return u.String()
}

// freshSchema creates an empty schema for one test (dropped when it ends)
// and returns a URL whose search_path selects it.
func freshSchema(t testing.TB) string {
	t.Helper()
	base := testURL(t)
	ctx := context.Background()
	c, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect %s: %v", envURL, err)
	}
	var b [6]byte
	rand.Read(b[:])
	name := "mgtest_" + hex.EncodeToString(b[:])
	if _, err := c.Exec(ctx, `CREATE SCHEMA `+name); err != nil {
		c.Close(ctx)
		t.Fatal(err)
	}
	c.Close(ctx)
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop schema %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, `DROP SCHEMA `+name+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", name, err)
		}
	})
	return withParam(t, base, "search_path", name)
}

// openURL opens a store on url, closed when the test ends.
func openURL(t testing.TB, url string, opt Options) *DB {
	t.Helper()
	s, err := Open(context.Background(), url, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// openTest opens a store on a fresh schema.
func openTest(t testing.TB, opt Options) *DB {
	t.Helper()
	return openURL(t, freshSchema(t), opt)
}
