package sqlite

import (
	"context"
	"testing"
)

// TestStmtCacheNested: the same query run again while its rows are still
// open gets a statement of its own, not the busy cached one.
func TestStmtCacheNested(t *testing.T) {
	s := openTemp(t, Options{})
	ctx := context.Background()
	for _, id := range []string{"n1", "n2", "n3"} {
		if _, err := s.w.ExecContext(ctx, `INSERT INTO audit (msg_id, at, actor, action) VALUES (?, 1, 'a', 'x')`, id); err != nil {
			t.Fatal(err)
		}
	}
	const q = `SELECT msg_id FROM audit ORDER BY msg_id`
	conn, err := s.r.Conn(ctx) // one connection: both queries share its cache
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	outer, err := conn.QueryContext(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	defer outer.Close()
	n := 0
	for outer.Next() {
		n++
		inner, err := conn.QueryContext(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		m := 0
		for inner.Next() {
			m++
		}
		inner.Close()
		if m != 3 {
			t.Errorf("inner query saw %d rows, want 3", m)
		}
	}
	if n != 3 {
		t.Errorf("outer query saw %d rows, want 3", n)
	}
	// The same statement works again after both closed.
	var c int
	if err := conn.QueryRowContext(ctx, q+` LIMIT 1`).Scan(new(string)); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM audit`).Scan(&c); err != nil || c != 3 {
		t.Errorf("count = %d, %v", c, err)
	}
}
