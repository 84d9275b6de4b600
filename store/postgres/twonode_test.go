package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mailguard/mailguard/sandbox"
	"github.com/mailguard/mailguard/store"
	"github.com/mailguard/mailguard/store/storetest"
)

// Two nodes are two stores (two connection pools, so two sets of
// sessions, as two processes have) on one database schema.

// queueN accepts and queues n messages through s, one delivery each, and
// returns their IDs.
func queueN(t *testing.T, s *DB, prefix string, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		id := fmt.Sprintf("%s%04d", prefix, i)
		storetest.Accept(t, s, id, "Subject: "+id+"\r\n\r\nbody\r\n", "u@corp.example")
		err := s.Decide(ctx, id, []store.State{store.Received}, store.Decided{State: store.Queued, Action: "deliver",
			Deliveries: []store.Delivery{{Route: "inbound", MailFrom: "a@sender.example", Rcpts: []string{"u@corp.example"}}}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// TestTwoNodesClaimOnce: workers of two nodes claim the same due
// deliveries at once; each is claimed by exactly one worker, all are
// claimed, and every message ends delivered.
func TestTwoNodesClaimOnce(t *testing.T) {
	u := freshSchema(t)
	a, b := openURL(t, u, Options{}), openURL(t, u, Options{})
	ids := queueN(t, a, "q", 200)
	var mu sync.Mutex
	claims := map[int64][]string{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := range 8 {
		node, s := "node-a", a
		if w%2 == 1 {
			node, s = "node-b", b
		}
		owner := fmt.Sprintf("%s/%d", node, w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for {
				ds, err := s.Claim(ctx, owner, time.Minute, 7)
				if err != nil {
					t.Error(err)
					return
				}
				if len(ds) == 0 {
					return
				}
				for _, d := range ds {
					mu.Lock()
					claims[d.ID] = append(claims[d.ID], owner)
					mu.Unlock()
					if err := s.DeliveryDone(ctx, d.ID, []store.RcptResult{{Rcpt: "u@corp.example", Code: 250}}, nil, nil); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	if len(claims) != len(ids) {
		t.Errorf("%d deliveries claimed, want %d", len(claims), len(ids))
	}
	owners := map[string]int{}
	for id, by := range claims {
		if len(by) != 1 {
			t.Errorf("delivery %d claimed %d times: %v", id, len(by), by)
		}
		owners[by[0][:6]]++
	}
	if owners["node-a"] == 0 || owners["node-b"] == 0 {
		t.Errorf("one node did all the work: %v", owners)
	}
	t.Logf("claims per node: %v", owners)
	if n, _ := b.PendingDeliveries(ctx); n != 0 {
		t.Errorf("%d deliveries pending", n)
	}
	if left, _ := b.InState(ctx, store.Queued); len(left) != 0 {
		t.Errorf("%d messages still queued", len(left))
	}
}

// TestDeadNodeLeases: a node dies holding leases (deliveries and sandbox
// tasks); the other node gets nothing until the leases expire, then
// everything. A node that restarts takes its own leases back at once.
func TestDeadNodeLeases(t *testing.T) {
	u := freshSchema(t)
	clk := &testClock{t: time.Now()}
	a := openURL(t, u, Options{Now: clk.now})
	b := openURL(t, u, Options{Now: clk.now})
	queueN(t, a, "d", 5)
	held, err := a.Claim(ctx, "node-a", time.Minute, 10)
	if err != nil || len(held) != 5 {
		t.Fatalf("node a claimed %d, %v", len(held), err)
	}
	sb := a.Sandbox()
	for i := range 3 {
		task := sandbox.Task{Key: fmt.Sprintf("%064x", i), SHA256: fmt.Sprintf("%064x", i), Name: "x.zip",
			Created: clk.now(), NextPoll: clk.now()}
		if _, _, err := sb.AddTask(ctx, task); err != nil {
			t.Fatal(err)
		}
	}
	if ts, err := sb.DueTasks(ctx, clk.now(), clk.now().Add(time.Minute), 10); err != nil || len(ts) != 3 {
		t.Fatalf("node a took %d tasks, %v", len(ts), err)
	}
	a.Close() // dies: no ReleaseLeases, no DeliveryDone

	for _, after := range []time.Duration{0, 30 * time.Second, 59 * time.Second} {
		now := clk.now().Add(after)
		c := &testClock{t: now}
		bb := openURL(t, u, Options{Now: c.now})
		if ds, _ := bb.Claim(ctx, "node-b", time.Minute, 10); len(ds) != 0 {
			t.Errorf("%s after the claim, node b took %d deliveries still leased", after, len(ds))
		}
		if ts, _ := bb.Sandbox().DueTasks(ctx, now, now.Add(time.Minute), 10); len(ts) != 0 {
			t.Errorf("%s after the claim, node b took %d tasks still leased", after, len(ts))
		}
	}
	clk.set(clk.now().Add(61 * time.Second))
	got, err := b.Claim(ctx, "node-b", time.Minute, 10)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(deliveryIDs(held), deliveryIDs(got)); diff != "" {
		t.Errorf("node b reclaimed (-held by a +got):\n%s", diff)
	}
	if ts, _ := b.Sandbox().DueTasks(ctx, clk.now(), clk.now().Add(time.Minute), 10); len(ts) != 3 {
		t.Errorf("node b reclaimed %d tasks, want 3", len(ts))
	}
	for _, d := range got {
		if err := b.DeliveryDone(ctx, d.ID, []store.RcptResult{{Rcpt: d.Rcpts[0], Code: 250}}, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if left, _ := b.InState(ctx, store.Delivered); len(left) != 5 {
		t.Errorf("%d delivered, want 5", len(left))
	}

	// Node b restarts while holding leases: it takes its own back at once,
	// and only its own.
	queueN(t, b, "r", 2)
	if ds, _ := b.Claim(ctx, "node-b", time.Hour, 1); len(ds) != 1 {
		t.Fatal("node b claimed nothing")
	}
	if ds, _ := b.Claim(ctx, "node-c", time.Hour, 1); len(ds) != 1 {
		t.Fatal("node c claimed nothing")
	}
	b.Close()
	b2 := openURL(t, u, Options{Now: clk.now})
	if n, err := b2.ReleaseLeases(ctx, "node-b"); n != 1 || err != nil {
		t.Errorf("ReleaseLeases(node-b) = %d, %v", n, err)
	}
	if ds, _ := b2.Claim(ctx, "node-b", time.Hour, 10); len(ds) != 1 {
		t.Errorf("after the restart node b claimed %d, want its own 1 (node c's stays leased)", len(ds))
	}
}

func deliveryIDs(ds []store.Delivery) []int64 {
	var out []int64
	for _, d := range ds {
		out = append(out, d.ID)
	}
	return out
}

// race runs fn on both nodes at the same moment and returns their errors.
func race(a, b *DB, fn func(s *DB) error) [2]error {
	var errs [2]error
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, s := range []*DB{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = fn(s)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

// onceOf checks that exactly one of two racing transitions won and the
// other was told ErrState.
func onceOf(t *testing.T, what string, errs [2]error) {
	t.Helper()
	ok, lost := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, store.ErrState):
			lost++
		default:
			t.Errorf("%s: %v", what, err)
		}
	}
	if ok != 1 || lost != 1 {
		t.Errorf("%s: %d won, %d got ErrState (%v); want 1 and 1", what, ok, lost, errs)
	}
}

// TestTwoNodesTransitionOnce: an operator on each node releases the same
// held message, or both nodes decide the same received message, at the
// same moment: one wins, the other gets ErrState, one delivery exists.
func TestTwoNodesTransitionOnce(t *testing.T) {
	u := freshSchema(t)
	a, b := openURL(t, u, Options{}), openURL(t, u, Options{})
	for i := range 10 {
		id := fmt.Sprintf("h%02d", i)
		storetest.Accept(t, a, id, "x", "u@corp.example")
		errs := race(a, b, func(s *DB) error {
			return s.Decide(ctx, id, []store.State{store.Received}, store.Decided{State: store.Held, Action: "hold"})
		})
		onceOf(t, "decide "+id, errs)
		errs = race(a, b, func(s *DB) error {
			return s.Transition(ctx, id, []store.State{store.Held, store.Quarantined}, store.Released,
				[]store.Delivery{{Route: "inbound", Rcpts: []string{"u@corp.example"}}},
				&store.Audit{MsgID: id, Actor: "op", Action: "release"})
		})
		onceOf(t, "release "+id, errs)
	}
	if n, _ := a.PendingDeliveries(ctx); n != 10 {
		t.Errorf("%d deliveries, want 10 (one per release)", n)
	}
	var audits int
	a.pool.QueryRow(ctx, `SELECT count(*) FROM audit`).Scan(&audits)
	if audits != 10 {
		t.Errorf("%d audit entries, want 10", audits)
	}
}

// TestTwoNodesFinishLastDeliveries: the last two deliveries of a message
// finish on two nodes at the same moment; the message must still end
// delivered (neither may count the other's as pending forever).
func TestTwoNodesFinishLastDeliveries(t *testing.T) {
	u := freshSchema(t)
	a, b := openURL(t, u, Options{}), openURL(t, u, Options{})
	for i := range 15 {
		id := fmt.Sprintf("f%02d", i)
		storetest.Accept(t, a, id, "x", "u@corp.example", "v@corp.example")
		err := a.Decide(ctx, id, nil, store.Decided{State: store.Queued, Deliveries: []store.Delivery{
			{Route: "inbound", Rcpts: []string{"u@corp.example"}}, {Route: "inbound", Rcpts: []string{"v@corp.example"}}}})
		if err != nil {
			t.Fatal(err)
		}
		da, _ := a.Claim(ctx, "node-a", time.Minute, 1)
		db, _ := b.Claim(ctx, "node-b", time.Minute, 1)
		if len(da) != 1 || len(db) != 1 {
			t.Fatalf("claims %d %d", len(da), len(db))
		}
		mine := map[*DB]store.Delivery{a: da[0], b: db[0]}
		errs := race(a, b, func(s *DB) error {
			d := mine[s]
			return s.DeliveryDone(ctx, d.ID, []store.RcptResult{{Rcpt: d.Rcpts[0], Code: 250}}, nil, nil)
		})
		if errs[0] != nil || errs[1] != nil {
			t.Fatal(errs)
		}
		if m, _ := a.Get(ctx, id); m.State != store.Delivered {
			t.Errorf("%s is %s after its last deliveries finished on two nodes", id, m.State)
		}
	}
}

// TestConcurrentMigrations: nodes starting together on an empty schema
// all come up, and each migration is applied once.
func TestConcurrentMigrations(t *testing.T) {
	u := freshSchema(t)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			s, err := Open(ctx, u, Options{})
			if err != nil {
				t.Error(err)
				return
			}
			s.Close()
		}()
	}
	close(start)
	wg.Wait()
	checkMigrated(t, u)
}

func checkMigrated(t *testing.T, u string) {
	t.Helper()
	s := openURL(t, u, Options{})
	var rows, names int
	s.pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT name) FROM schema_migrations`).Scan(&rows, &names)
	if rows != len(migrations) || names != len(migrations) {
		t.Errorf("schema_migrations has %d rows, %d names; want %d", rows, names, len(migrations))
	}
}

// TestMigrationsTwoProcesses: two processes (this test binary, run again)
// migrate the same empty schema at the same time.
func TestMigrationsTwoProcesses(t *testing.T) {
	u := freshSchema(t)
	var cmds []*exec.Cmd
	for range 2 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestMigrateHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), "MAILGUARD_PG_MIGRATE_URL="+u)
		cmds = append(cmds, cmd)
	}
	outs := make([][]byte, len(cmds))
	var wg sync.WaitGroup
	for i, cmd := range cmds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if outs[i], err = cmd.CombinedOutput(); err != nil {
				t.Errorf("process %d: %v\n%s", i, err, outs[i])
			}
		}()
	}
	wg.Wait()
	checkMigrated(t, u)
}

// TestMigrateHelperProcess is the child of TestMigrationsTwoProcesses.
func TestMigrateHelperProcess(t *testing.T) {
	u := os.Getenv("MAILGUARD_PG_MIGRATE_URL")
	if u == "" {
		t.Skip("run by TestMigrationsTwoProcesses")
	}
	s, err := Open(context.Background(), u, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}
