package gateway

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailguard/mailguard/auth"
	"github.com/mailguard/mailguard/auth/dnstest"
	"github.com/mailguard/mailguard/policy"
	"github.com/mailguard/mailguard/sandbox"
	"github.com/mailguard/mailguard/sandbox/capetest"
	"github.com/mailguard/mailguard/smtp"
	"github.com/mailguard/mailguard/store"
	"github.com/mailguard/mailguard/store/sqlite"
)

// benchFixture is newFixture for benchmarks: a gateway over a fresh SQLite
// store with testPolicy plus extra, and the given resolver (nil: an empty
// in-memory one).
func benchFixture(b *testing.B, extra string, r auth.Resolver) *fixture {
	b.Helper()
	dir := b.TempDir()
	path := filepath.Join(dir, "policy.hcl")
	if err := os.WriteFile(path, []byte(testPolicy+extra), 0o644); err != nil {
		b.Fatal(err)
	}
	p, diags := policy.Load(path)
	if diags.HasErrors() {
		b.Fatal(policy.FormatDiagnostics(diags))
	}
	clk := &clock{t: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)}
	st, err := sqlite.Open(filepath.Join(dir, "var"), sqlite.Options{Now: clk.now})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	if r == nil {
		r = &dnstest.Resolver{}
	}
	g, err := New(Options{Policy: p, Store: st, Sandbox: st.Sandbox(), Resolver: r, Now: clk.now})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { g.Close() })
	return &fixture{g: g, st: st, clk: clk, dir: dir}
}

// fillHeld accepts n messages through Data, 16 at a time (as concurrent
// SMTP sessions would, sharing the store's group commits); msg(i) is the
// i-th message. It returns the IDs and fails unless every one is held.
func fillHeld(b *testing.B, f *fixture, n int, msg func(i int) string) []string {
	b.Helper()
	ids := make([]string, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				ids[i] = fmt.Sprintf("bench%06d", i)
				e := &smtp.Envelope{ID: ids[i], MailFrom: "m@partner.example", Rcpts: []string{"bob@corp.example"},
					Direction: smtp.Inbound, Received: f.clk.now(),
					Conn: smtp.ConnInfo{RemoteIP: netip.MustParseAddr("198.51.100.7"), HELO: "mail.partner.example"}}
				if err := f.g.Data(context.Background(), e, strings.NewReader(msg(i))); err != nil {
					errs <- fmt.Errorf("Data(%s): %w", ids[i], err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	held, err := f.st.InState(context.Background(), store.Held)
	if err != nil || len(held) != n {
		b.Fatalf("%d held after filling (err %v), want %d", len(held), err, n)
	}
	return ids
}

// BenchmarkHoldTick is the hold loop's periodic pass (every holdTick)
// over N held messages of which none is due: its cost per tick, and the
// share of one core it takes at that rate.
func BenchmarkHoldTick(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("held=%d", n), func(b *testing.B) {
			f := benchFixture(b, "", nil)
			fillHeld(b, f, n, func(i int) string {
				return fmt.Sprintf("From: a@partner.example\r\nTo: bob@corp.example\r\nSubject: HOLD ME %d\r\n"+
					"Message-ID: <h%d@partner.example>\r\n\r\nhello\r\n", i, i)
			})
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				f.g.checkHeld(ctx)
			}
			perTick := b.Elapsed() / time.Duration(b.N)
			b.ReportMetric(100*perTick.Seconds()/holdTick.Seconds(), "%core")
		})
	}
}

// BenchmarkVerdictToQueued is the gateway's part of "time from verdict to
// delivery" with 10,000 messages held, each for its own file: a verdict
// arrives (stored, OnVerdict finds the held message among all held ones),
// the hold loop re-inspects the message and queues it for delivery.
// Delivery itself is the queue's (measured end to end by tests/benchhold).
// Run with -benchtime=Nx, N at most 10000.
func BenchmarkVerdictToQueued(b *testing.B) {
	const held = 10000
	emu, err := capetest.Start(capetest.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer emu.Close()
	f := benchFixture(b, fmt.Sprintf("sandbox \"cape\" {\n  url = %q\n  search_first = false\n}\n", emu.URL), nil)
	ids := fillHeld(b, f, held, func(i int) string { return scriptMessage(fmt.Sprintf("// bench file %d", i)) })
	ctx := context.Background()
	sb := f.g.sbStore
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		if i == held {
			b.Fatalf("more than %d iterations: use -benchtime=%dx or less", held, held)
		}
		sum := sha(fmt.Sprintf("// bench file %d", i))
		v := sandbox.Verdict{Key: sum, SHA256: sum, TaskID: sandbox.TaskID(fmt.Sprint(i + 1)), State: sandbox.StateDone,
			Malstatus: "Clean", Signatures: []string{}, Detections: []string{}, At: f.clk.now()}
		if err := sb.PutVerdict(ctx, v, f.clk.now().Add(24*time.Hour)); err != nil {
			b.Fatal(err)
		}
		f.g.onVerdict(sum, v)
		select {
		case id := <-f.g.recheck:
			f.g.redecide(ctx, id)
		default:
			b.Fatalf("verdict for file %d queued no re-decision", i)
		}
		i++
	}
	b.StopTimer()
	for _, id := range ids[:i] {
		if m, err := f.st.Get(ctx, id); err != nil || m.State != store.Queued {
			b.Fatalf("%s after its verdict: %v %v, want queued", id, m, err)
		}
	}
}
