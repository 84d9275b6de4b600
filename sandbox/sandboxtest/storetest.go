package sandboxtest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mailguard/mailguard/sandbox"
)

// TestStore runs the sandbox.Store conformance suite. open must return an
// empty store for each call. Times are whole seconds, so stores that keep
// less than nanosecond precision compare equal.
func TestStore(t *testing.T, open func(t *testing.T) sandbox.Store) {
	t.Run("VerdictRoundTrip", func(t *testing.T) { testVerdictRoundTrip(t, open(t)) })
	t.Run("VerdictExpiry", func(t *testing.T) { testVerdictExpiry(t, open(t)) })
	t.Run("TaskAddIsInsertIfAbsent", func(t *testing.T) { testTaskAdd(t, open(t)) })
	t.Run("TaskPutUpdatesOnly", func(t *testing.T) { testTaskPut(t, open(t)) })
	t.Run("DueTasksOrderLimitLease", func(t *testing.T) { testDue(t, open(t)) })
	t.Run("DueTasksConcurrentClaims", func(t *testing.T) { testDueConcurrent(t, open(t)) })
	t.Run("CountAndDelete", func(t *testing.T) { testCount(t, open(t)) })
}

var t0 = time.Date(2026, 8, 22, 10, 0, 0, 0, time.UTC)

func sha(i int) string { return fmt.Sprintf("%064x", i) }

func sampleTask(i int) sandbox.Task {
	return sandbox.Task{
		Key: sha(i), SHA256: sha(i), Name: fmt.Sprintf("請求書-%d.zip", i), Type: "application/zip", Size: int64(1000 + i),
		Options: map[string]string{"password": "Abc,12345", "package": "zip"}, Ref: fmt.Sprintf("msg-%d/1", i),
		Created: t0, NextPoll: t0,
	}
}

func testVerdictRoundTrip(t *testing.T, s sandbox.Store) {
	ctx := context.Background()
	v := sandbox.Verdict{Key: sha(1) + "+0123456789abcdef", SHA256: sha(1), TaskID: "12,13", State: sandbox.StateDone,
		Malscore: 8.5, Malstatus: "Malicious", Signatures: []string{"injection_runpe", "persistence_autorun"},
		Detections: []string{"Emotet"}, Family: "Emotet", Error: "", At: t0}
	if err := s.PutVerdict(ctx, v, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.GetVerdict(ctx, v.Key, t0)
	if err != nil || !ok {
		t.Fatalf("GetVerdict = %v, %v", ok, err)
	}
	if d := cmp.Diff(v, got, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); d != "" {
		t.Errorf("verdict (-put +got):\n%s", d)
	}
	if _, ok, _ := s.GetVerdict(ctx, sha(1), t0); ok {
		t.Error("verdict found under the bare sha256; keys must be kept apart")
	}
	v2 := sandbox.Verdict{Key: v.Key, SHA256: sha(1), State: sandbox.StateError, Error: "failed", Signatures: []string{}, Detections: []string{}, At: t0}
	if err := s.PutVerdict(ctx, v2, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := s.GetVerdict(ctx, v.Key, t0); got.State != sandbox.StateError || got.Error != "failed" {
		t.Errorf("PutVerdict did not replace: %+v", got)
	}
}

func testVerdictExpiry(t *testing.T, s sandbox.Store) {
	ctx := context.Background()
	v := sandbox.Verdict{Key: sha(2), SHA256: sha(2), State: sandbox.StateDone, Signatures: []string{}, Detections: []string{}, At: t0}
	if err := s.PutVerdict(ctx, v, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		at   time.Time
		want bool
	}{{t0, true}, {t0.Add(59 * time.Minute), true}, {t0.Add(time.Hour), false}, {t0.Add(2 * time.Hour), false}} {
		if _, ok, err := s.GetVerdict(ctx, v.Key, c.at); ok != c.want || err != nil {
			t.Errorf("GetVerdict at +%v = %v, %v; want %v", c.at.Sub(t0), ok, err, c.want)
		}
	}
	if _, ok, err := s.GetVerdict(ctx, sha(99), t0); ok || err != nil {
		t.Errorf("missing verdict: %v, %v", ok, err)
	}
}

func testTaskAdd(t *testing.T, s sandbox.Store) {
	ctx := context.Background()
	a := sampleTask(3)
	got, inserted, err := s.AddTask(ctx, a)
	if err != nil || !inserted {
		t.Fatalf("AddTask = %v, %v", inserted, err)
	}
	if d := cmp.Diff(a, got); d != "" {
		t.Errorf("AddTask returned (-want +got):\n%s", d)
	}
	b := a
	b.Name, b.ID = "other", "77"
	got, inserted, err = s.AddTask(ctx, b)
	if err != nil || inserted || got.Name != a.Name || got.ID != "" {
		t.Errorf("second AddTask = %+v, %v, %v; want the first task, not inserted", got, inserted, err)
	}
	stored, ok, err := s.GetTask(ctx, a.Key)
	if err != nil || !ok {
		t.Fatalf("GetTask = %v, %v", ok, err)
	}
	if d := cmp.Diff(a, stored); d != "" {
		t.Errorf("stored task (-want +got):\n%s", d)
	}
	if _, ok, err := s.GetTask(ctx, sha(98)); ok || err != nil {
		t.Errorf("missing task: %v, %v", ok, err)
	}
}

func testTaskPut(t *testing.T, s sandbox.Store) {
	ctx := context.Background()
	a := sampleTask(4)
	if _, _, err := s.AddTask(ctx, a); err != nil {
		t.Fatal(err)
	}
	a.ID, a.Attempts, a.Polls, a.Failures, a.Searched = "1234", 2, 5, 1, true
	a.Submitted, a.NextPoll, a.LastError = t0.Add(time.Minute), t0.Add(3*time.Minute), "sandbox: status: unavailable"
	if err := s.PutTask(ctx, a); err != nil {
		t.Fatal(err)
	}
	got, _, _ := s.GetTask(ctx, a.Key)
	if d := cmp.Diff(a, got, cmp.Comparer(func(x, y time.Time) bool { return x.Equal(y) })); d != "" {
		t.Errorf("PutTask (-want +got):\n%s", d)
	}
	ghost := sampleTask(5)
	if err := s.PutTask(ctx, ghost); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.GetTask(ctx, ghost.Key); ok {
		t.Error("PutTask created a task that did not exist")
	}
}

func testDue(t *testing.T, s sandbox.Store) {
	ctx := context.Background()
	for i, delay := range []time.Duration{3, 1, 2, 10} {
		task := sampleTask(10 + i)
		task.NextPoll = t0.Add(delay * time.Second)
		if _, _, err := s.AddTask(ctx, task); err != nil {
			t.Fatal(err)
		}
	}
	now, lease := t0.Add(5*time.Second), t0.Add(time.Minute)
	due, err := s.DueTasks(ctx, now, lease, 2)
	if err != nil {
		t.Fatal(err)
	}
	keys := func(ts []sandbox.Task) []string {
		var k []string
		for _, x := range ts {
			k = append(k, x.Key)
		}
		return k
	}
	if d := cmp.Diff([]string{sha(11), sha(12)}, keys(due)); d != "" {
		t.Errorf("first claim, oldest NextPoll first (-want +got):\n%s", d)
	}
	for _, x := range due {
		if !x.NextPoll.Equal(lease) || x.Options["password"] != "Abc,12345" {
			t.Errorf("claimed task %s: NextPoll %v options %v", x.Key, x.NextPoll, x.Options)
		}
	}
	due, _ = s.DueTasks(ctx, now, lease, 10)
	if d := cmp.Diff([]string{sha(10)}, keys(due)); d != "" {
		t.Errorf("second claim skips leased tasks (-want +got):\n%s", d)
	}
	due, _ = s.DueTasks(ctx, lease, lease.Add(time.Minute), 10)
	if d := cmp.Diff([]string{sha(13), sha(10), sha(11), sha(12)}, keys(due)); d != "" {
		t.Errorf("after the lease every task is due again (-want +got):\n%s", d)
	}
}

func testDueConcurrent(t *testing.T, s sandbox.Store) {
	ctx := context.Background()
	const n = 40
	for i := 0; i < n; i++ {
		if _, _, err := s.AddTask(ctx, sampleTask(100+i)); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				due, err := s.DueTasks(ctx, t0, t0.Add(time.Minute), 3)
				if err != nil {
					t.Error(err)
					return
				}
				if len(due) == 0 {
					return
				}
				mu.Lock()
				for _, x := range due {
					seen[x.Key]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != n {
		t.Errorf("%d tasks claimed, want %d", len(seen), n)
	}
	for k, c := range seen {
		if c != 1 {
			t.Errorf("task %s claimed %d times", k, c)
		}
	}
}

func testCount(t *testing.T, s sandbox.Store) {
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		task := sampleTask(200 + i)
		if i > 0 {
			task.ID = sandbox.TaskID(fmt.Sprint(i))
		}
		if _, _, err := s.AddTask(ctx, task); err != nil {
			t.Fatal(err)
		}
	}
	if c, err := s.CountTasks(ctx); err != nil || c != (sandbox.TaskCounts{Queued: 1, Submitted: 2}) {
		t.Errorf("CountTasks = %+v, %v", c, err)
	}
	if err := s.DeleteTask(ctx, sha(201)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteTask(ctx, sha(999)); err != nil {
		t.Errorf("deleting a missing task: %v", err)
	}
	if c, _ := s.CountTasks(ctx); c != (sandbox.TaskCounts{Queued: 1, Submitted: 1}) {
		t.Errorf("after delete: %+v", c)
	}
}
