package sandbox_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/mailguard/mailguard/sandbox"
	"github.com/mailguard/mailguard/sandbox/cape"
	"github.com/mailguard/mailguard/sandbox/capetest"
	"github.com/mailguard/mailguard/sandbox/sandboxtest"
)

// BenchmarkPolling10k measures what polling 10,000 pending tasks costs: a
// restart finds 10,000 submitted tasks in the Store (their analyses never
// finish), and the poller runs one cycle per simulated second for 20
// simulated minutes against the emulator. Reported: HTTP requests per
// minute in the last 10 minutes (steady state), Store operations per cycle,
// and the mean interval between two polls of one task.
//
//	go test -run XXX -bench Polling10k -benchtime 1x ./sandbox/
func BenchmarkPolling10k(b *testing.B) {
	for _, budget := range []float64{5, 50, 100} {
		b.Run(fmt.Sprintf("budget=%g/s", budget), func(b *testing.B) {
			for b.Loop() {
				pollingRun(b, 10000, budget, 20*time.Minute)
			}
		})
	}
}

func pollingRun(b *testing.B, n int, budget float64, window time.Duration) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 8, 22, 10, 0, 0, 0, time.UTC)}
	emu, err := capetest.Start(capetest.Config{Now: clk.Now, Default: capetest.Verdict{NeverFinish: true}})
	if err != nil {
		b.Fatal(err)
	}
	defer emu.Close()
	client, err := cape.New(cape.Config{URL: emu.URL, Now: clk.Now})
	if err != nil {
		b.Fatal(err)
	}
	store := sandboxtest.NewMemStore()
	// 10,000 tasks submitted over the last minute, as a restart finds them.
	for i := range n {
		f := mkfile("sample "+strconv.Itoa(i), nil)
		id, err := client.Submit(ctx, f)
		if err != nil {
			b.Fatal(err)
		}
		at := clk.Now().Add(-time.Minute + time.Duration(i)*time.Minute/time.Duration(n))
		store.AddTask(ctx, sandbox.Task{Key: f.SHA256, SHA256: f.SHA256, Name: f.Name, Size: f.Size, ID: id,
			Created: at, Submitted: at, Attempts: 1, NextPoll: at.Add(time.Minute)})
	}
	s, err := sandbox.New(sandbox.Config{Client: client, Store: store, Now: clk.Now,
		RequestsPerSecond: budget, Burst: int(budget), MaxWait: 24 * time.Hour, Batch: 1000})
	if err != nil {
		b.Fatal(err)
	}
	emu.ResetCounters()
	store.ResetOps()
	cycles, steadyFrom := 0, window/2
	var steadyReq int
	for el := time.Duration(0); el < window; el += time.Second {
		if el == steadyFrom {
			steadyReq = emu.Requests("")
		}
		clk.Advance(time.Second)
		if _, err := s.Cycle(ctx); err != nil {
			b.Fatal(err)
		}
		cycles++
	}
	total := emu.Requests("")
	perMin := float64(total-steadyReq) / (window - steadyFrom).Minutes()
	ops := 0
	for _, c := range store.Ops() {
		ops += c
	}
	polls := emu.Requests("tasks/status")
	b.ReportMetric(perMin, "req/min")
	b.ReportMetric(float64(ops)/float64(cycles), "storeops/cycle")
	b.ReportMetric(window.Seconds()*float64(n)/float64(max(polls, 1)), "s/poll-interval")
	b.Logf("budget %g/s: %d requests in %v (%d status polls), %.0f req/min steady, store ops %v over %d cycles",
		budget, total, window, polls, perMin, store.Ops(), cycles)
}
