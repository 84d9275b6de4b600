package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/mailguard/mailguard/thread"
)

// BenchmarkThread1M measures the conversation stage's store work per
// message (Lookup + Analyze + Record, as the gateway does it) with a
// million messages already stored, and the store's growth per message.
// The fill goes straight through prepared statements in large
// transactions; set MAILGUARD_THREAD_BENCH_N to change its size.
//
//	go test ./store/sqlite -run '^$' -bench Thread1M -benchtime 5000x
func BenchmarkThread1M(b *testing.B) {
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("MAILGUARD_THREAD_BENCH_N")); err == nil && v > 0 {
		n = v
	}
	dir := b.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	cfg := thread.Config{LocalDomains: []string{"corp.example"}, YoungDays: 14, YoungExchanges: 5,
		ReviveAfter: 90 * 24 * time.Hour, Window: 30 * time.Minute, VIPNames: []string{"山田 太郎", "Taro Yamada"}}
	gen := newSynth(n)
	start := time.Now()
	if err := fillThread(s, &cfg, gen, n); err != nil {
		b.Fatal(err)
	}
	fill := time.Since(start)
	if _, err := s.w.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		b.Fatal(err)
	}
	size := dbSize(dir)
	b.Logf("filled %d messages in %s (%.0f/s); database %d bytes, %.0f bytes per message",
		n, fill.Round(time.Millisecond), float64(n)/fill.Seconds(), size, float64(size)/float64(n))
	b.Run("lookup+record", func(b *testing.B) {
		st := s.Thread()
		ctx := context.Background()
		lat := make([]time.Duration, 0, b.N)
		look := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			m := gen.message(n+i, true)
			t := time.Now()
			h, err := st.Lookup(ctx, cfg.Query(&m))
			if err != nil {
				b.Fatal(err)
			}
			cfg.Analyze(&m, h, nil)
			look = append(look, time.Since(t))
			r := cfg.Record(&m, h.Parents)
			r.Outcome = thread.OutcomeDelivered
			if err := st.Record(ctx, r); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t))
		}
		b.StopTimer()
		slices.Sort(lat)
		slices.Sort(look)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		b.ReportMetric(float64(look[len(look)/2].Microseconds()), "lookup-p50-µs")
		b.ReportMetric(float64(look[len(look)*99/100].Microseconds()), "lookup-p99-µs")
		b.ReportMetric(float64(size)/float64(n), "fill-bytes/msg")
	})
}

func dbSize(dir string) int64 {
	var total int64
	for _, f := range []string{"mailguard.db", "mailguard.db-wal"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err == nil {
			total += st.Size()
		}
	}
	return total
}

// synth makes a plausible population: 20 000 partner domains, ten
// correspondents each, 2 000 users; conversations of a few messages
// both ways, replies referring to their thread.
type synth struct {
	rnd   *rand.Rand
	users int
	doms  int
	t0    time.Time
	span  time.Duration
	n     int
}

func newSynth(n int) *synth {
	return &synth{rnd: rand.New(rand.NewPCG(1, 2)), users: 2000, doms: 20000, n: n,
		t0: time.Date(2025, 11, 1, 0, 0, 0, 0, time.UTC), span: 365 * 24 * time.Hour}
}

func (g *synth) message(i int, inbound bool) thread.Message {
	dom := g.rnd.IntN(g.doms)
	ext := fmt.Sprintf("person%d@partner%d.example", g.rnd.IntN(10), dom)
	user := fmt.Sprintf("user%d@corp.example", g.rnd.IntN(g.users))
	at := g.t0.Add(time.Duration(int64(g.span) * int64(min(i, g.n)) / int64(g.n)))
	m := thread.Message{ID: fmt.Sprintf("mg%09d", i), At: at, MessageID: fmt.Sprintf("%d.%x@mail.example", i, g.rnd.Uint64()),
		Subject: fmt.Sprintf("Re: order %d", g.rnd.IntN(100000))}
	if i > 0 && g.rnd.IntN(3) > 0 {
		parent := fmt.Sprintf("%d.", g.rnd.IntN(i))
		m.InReplyTo = []string{parent + "x@mail.example"}
		m.References = []string{parent + "root@mail.example", parent + "x@mail.example"}
	}
	if inbound {
		m.Direction, m.From, m.MailFrom, m.Rcpts = thread.Inbound, thread.Address{Addr: ext, Name: "Partner Person"}, ext, []string{user}
		m.To = []thread.Address{{Addr: user}}
		if g.rnd.IntN(4) == 0 {
			m.Flags = thread.FlagAttachment
		}
	} else {
		m.Direction, m.From, m.MailFrom, m.Rcpts = thread.Outbound, thread.Address{Addr: user, Name: "User Name"}, user, []string{ext}
		m.To = []thread.Address{{Addr: ext}}
	}
	return m
}

// fillThread records n synthetic messages through prepared statements,
// 100 000 per transaction.
func fillThread(s *DB, cfg *thread.Config, g *synth, n int) error {
	const per = 100_000
	for done := 0; done < n; {
		tx, err := s.w.Begin()
		if err != nil {
			return err
		}
		stmts := map[string]*sql.Stmt{}
		exec := func(q string, args ...any) (sql.Result, error) {
			st := stmts[q]
			if st == nil {
				if st, err = tx.Prepare(q); err != nil {
					return nil, err
				}
				stmts[q] = st
			}
			return st.Exec(args...)
		}
		for end := min(n, done+per); done < end; done++ {
			m := g.message(done, g.rnd.IntN(5) < 3)
			r := cfg.Record(&m, nil)
			r.Outcome = thread.OutcomeDelivered
			if err := recordThread(exec, r); err != nil {
				tx.Rollback()
				return err
			}
		}
		for _, st := range stmts {
			st.Close()
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return nil
}
