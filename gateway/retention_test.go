package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailguard/mailguard/store"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

const retentionPolicy = `
log { events = "var/events.jsonl" }
retention {
  quarantined = "90d"
  delivered   = "30d"
  interval    = "1s"
}
`

// TestPurgeDeletesAndReports: quarantined messages past their age are
// deleted with a deleted event (actor retention) after the commit; held
// mail is untouched; a dry run changes nothing and lists what would go.
func TestPurgeDeletesAndReports(t *testing.T) {
	f := newFixture(t, retentionPolicy)
	q, _ := f.data(t, "QUARANTINE ME", "")
	h, _ := f.data(t, "HOLD ME", "")
	ctx := context.Background()
	var logBuf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logBuf, nil))
	p := f.g.Policy()
	later := f.clk.now().Add(91 * 24 * time.Hour)

	var listed []string
	rep, err := Purge(ctx, f.st, p, f.g.events, log, PurgeOptions{Now: later, DryRun: true,
		Each: func(b store.Purged) { listed = append(listed, b.Deleted...) }})
	if err != nil || rep.Deleted != 1 || len(listed) != 1 || listed[0] != q {
		t.Fatalf("dry run = %+v %v, listed %v", rep, err, listed)
	}
	if f.state(t, q).State != store.Quarantined {
		t.Fatal("dry run deleted")
	}

	deleted0 := metricValue(metricRetentionRemoved.WithLabelValues("deleted"))
	runs0 := metricValue(metricRetentionRuns.WithLabelValues("ok"))
	rep, err = Purge(ctx, f.st, p, f.g.events, log, PurgeOptions{Now: later})
	if err != nil || rep.Deleted != 1 || rep.Content != 1 {
		t.Fatalf("purge = %+v %v", rep, err)
	}
	if d := metricValue(metricRetentionRemoved.WithLabelValues("deleted")) - deleted0; d != 1 {
		t.Errorf("retention_removed_total{kind=deleted} grew by %v, want 1 (the dry run counts nothing)", d)
	}
	if d := metricValue(metricRetentionRuns.WithLabelValues("ok")) - runs0; d != 1 {
		t.Errorf("retention_runs_total{result=ok} grew by %v, want 1", d)
	}
	if ts := metricValue(metricRetentionLast); time.Since(time.Unix(int64(ts), 0)) > time.Minute {
		t.Errorf("retention_last_success_timestamp_seconds = %v", ts)
	}
	if st := f.state(t, q).State; st != store.Deleted {
		t.Errorf("quarantined message is %s after purge", st)
	}
	if st := f.state(t, h).State; st != store.Held {
		t.Errorf("held message is %s after purge", st)
	}
	if !strings.Contains(logBuf.String(), `"msg":"retention purge"`) || !strings.Contains(logBuf.String(), `"deleted":1`) {
		t.Errorf("no summary log line:\n%s", logBuf.String())
	}
	ev := lastEvent(t, filepath.Join(f.dir, "var", "events.jsonl"), q)
	if ev.Event != "deleted" || ev.Actor != RetentionActor || !strings.Contains(ev.Detail, "90d") {
		t.Errorf("last event of %s = %+v", q, ev)
	}
}

// TestRetentionLoop: serve's loop purges on its interval with the
// gateway's clock and stops with its context.
func TestRetentionLoop(t *testing.T) {
	f := newFixture(t, retentionPolicy)
	q, _ := f.data(t, "QUARANTINE ME", "")
	f.clk.add(91 * 24 * time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.g.retentionLoop(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for f.state(t, q).State != store.Deleted {
		if time.Now().After(deadline) {
			t.Fatal("the loop did not purge within 10s at interval 1s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the loop did not stop with its context")
	}
}

func lastEvent(t *testing.T, path, id string) Event {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var last Event
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var e Event
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("event line %q: %v", l, err)
		}
		if e.MsgID == id {
			last = e
		}
	}
	return last
}

// metricValue reads a counter or gauge.
func metricValue(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		panic(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}
