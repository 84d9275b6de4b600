package sqlite

import (
	"strings"
	"testing"

	"github.com/mailguard/mailguard/thread"
	"github.com/mailguard/mailguard/thread/threadtest"
)

func TestThreadConformance(t *testing.T) {
	threadtest.Run(t, func(t *testing.T) thread.Store { return openTemp(t, Options{}).Thread() })
}

// TestThreadQueriesUseIndexes: every per-message query of the thread store
// is an index search, never a scan (lookups must stay fast with millions
// of messages).
func TestThreadQueriesUseIndexes(t *testing.T) {
	s := openTemp(t, Options{})
	for _, q := range []string{
		`SELECT ` + threadCols + ` FROM thread_messages WHERE id = 'x'`,
		`SELECT ` + threadCols + ` FROM thread_messages WHERE message_id IN ('a','b') ORDER BY at DESC LIMIT 100`,
		`SELECT ` + threadCols + ` FROM thread_messages WHERE thread = 'a' ORDER BY at DESC LIMIT 200`,
		`SELECT ` + threadCols + ` FROM thread_messages WHERE sender = 'a' AND at >= 0 ORDER BY at DESC LIMIT 200`,
		`SELECT ` + threadCols + ` FROM thread_messages WHERE thread = 'a' AND at >= 0 ORDER BY at DESC LIMIT 200`,
		`SELECT ext FROM thread_pairs WHERE ext = 'a' AND internal IN ('b','c') ORDER BY internal`,
		`SELECT domain FROM thread_domains WHERE domain = 'a'`,
		`SELECT addr FROM thread_flags WHERE addr IN ('a','b')`,
		`SELECT addr, name FROM thread_names WHERE key = 'k' ORDER BY addr LIMIT 100`,
		`SELECT msg_id, value, at FROM thread_secrets WHERE msg_id IN ('a') AND expires > 0 ORDER BY at DESC, rowid`,
		`DELETE FROM thread_messages WHERE at < 5`,
		`DELETE FROM thread_secrets WHERE expires <= 5`,
	} {
		rows, err := s.r.Query(`EXPLAIN QUERY PLAN ` + q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(detail, "SCAN ") && !strings.Contains(detail, "USING") {
				t.Errorf("%s\n  plan: %s", q, detail)
			}
		}
		rows.Close()
	}
}
