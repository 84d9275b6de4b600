package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/mailguard/mailguard/policy"
	"github.com/mailguard/mailguard/store"
)

// purgeBatch bounds the messages one store call purges per step, so that a
// large backlog (the first purge after an upgrade) is removed in short
// transactions and bounded memory.
const purgeBatch = 1000

// RetentionActor is the audit actor of what retention deletes.
const RetentionActor = "retention"

// PurgeOptions adjust one retention run.
type PurgeOptions struct {
	// Now is the moment the ages count back from; zero means time.Now.
	Now time.Time
	// DryRun reports what would be removed and changes nothing.
	DryRun bool
	// Actor is the audit actor of deletions; "" means RetentionActor.
	Actor string
	// Each, when set, is called with every batch the run removed (or
	// would remove): the CLI lists them.
	Each func(store.Purged)
}

// PurgeReport totals one retention run.
type PurgeReport struct {
	Deleted  int   `json:"deleted"`  // quarantined messages deleted
	Content  int   `json:"content"`  // messages whose spool bytes were removed
	Records  int   `json:"records"`  // message records removed
	Blobs    int   `json:"blobs"`    // sandbox blobs removed
	Verdicts int   `json:"verdicts"` // expired sandbox verdicts removed
	Bytes    int64 `json:"bytes"`    // file bytes freed
}

func (r *PurgeReport) add(p store.Purged) {
	r.Deleted += len(p.Deleted)
	r.Content += len(p.Content)
	r.Records += len(p.Records)
	r.Blobs += len(p.Blobs)
	r.Verdicts += p.Verdicts
	r.Bytes += p.Bytes
}

// RetentionOf turns the policy's retention block into the store's terms.
// Blobs kept for the sandbox live as long as its verdict cache.
func RetentionOf(p *policy.Policy) store.Retention {
	r := p.Retention
	blobs := policy.DefaultSandboxCacheTTL
	if s := p.Sandbox(); s != nil {
		blobs = s.TTL
	}
	return store.Retention{Delivered: r.KeepDelivered, Quarantined: r.KeepQuarantined, Rejected: r.KeepRejected,
		Records: r.KeepRecords, Blobs: blobs, Actor: RetentionActor}
}

// Purge applies the policy's retention block once: in batches until nothing
// is due (a dry run looks once, unbounded). Each quarantined message it
// deletes gets a deleted event, written after the store committed; the
// totals are logged in one line. serve runs it every retention.interval,
// `mailguard purge` by hand.
func Purge(ctx context.Context, st store.Store, p *policy.Policy, ev *EventLog, log *slog.Logger, opt PurgeOptions) (PurgeReport, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	start := time.Now()
	r := RetentionOf(p)
	r.Now, r.DryRun = opt.Now, opt.DryRun
	if r.Now.IsZero() {
		r.Now = time.Now()
	}
	if opt.Actor != "" {
		r.Actor = opt.Actor
	}
	if !r.DryRun {
		r.Limit = purgeBatch
	}
	detail := fmt.Sprintf("quarantined for more than %s", ageString(r.Quarantined))
	var rep PurgeReport
	for {
		got, err := st.Purge(ctx, r)
		rep.add(got)
		if !r.DryRun {
			countPurged(got)
			for _, id := range got.Deleted {
				ev.Write(Event{Event: "deleted", MsgID: id, Actor: r.Actor, Detail: detail})
				log.Info("quarantined message deleted by retention", "msg_id", id, "detail", detail)
			}
		}
		if opt.Each != nil && !got.Empty() {
			opt.Each(got)
		}
		if err != nil {
			if !r.DryRun {
				metricRetentionRuns.WithLabelValues("error").Inc()
			}
			log.Error("retention purge failed", "err", err, "removed", rep)
			return rep, err
		}
		if !got.More || r.DryRun {
			break
		}
	}
	if !r.DryRun {
		metricRetentionRuns.WithLabelValues("ok").Inc()
		metricRetentionLast.SetToCurrentTime()
	}
	lvl := slog.LevelInfo
	if rep == (PurgeReport{}) {
		lvl = slog.LevelDebug
	}
	log.Log(ctx, lvl, "retention purge", "dry_run", r.DryRun, "deleted", rep.Deleted, "content", rep.Content,
		"records", rep.Records, "blobs", rep.Blobs, "verdicts", rep.Verdicts, "bytes", rep.Bytes,
		"took_ms", time.Since(start).Milliseconds())
	return rep, nil
}

// countPurged adds one batch of a retention run to the metrics.
func countPurged(p store.Purged) {
	for kind, n := range map[string]int{"deleted": len(p.Deleted), "content": len(p.Content),
		"records": len(p.Records), "blobs": len(p.Blobs), "verdicts": p.Verdicts} {
		metricRetentionRemoved.WithLabelValues(kind).Add(float64(n))
	}
	metricRetentionBytes.Add(float64(p.Bytes))
}

// ageString prints an age as policy.hcl writes it ("90d", "36h0m0s").
func ageString(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// retentionFirst is how soon after start serve purges for the first time:
// soon, but not in the middle of resuming and opening listeners.
const retentionFirst = time.Minute

// retentionLoop purges every retention.interval of the policy in force
// (a reload changes the next wait). Several nodes may purge the same
// store: every step is conditional and idempotent.
func (g *Gateway) retentionLoop(ctx context.Context) {
	wait := min(retentionFirst, g.Policy().Retention.Every)
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		p := g.Policy()
		Purge(ctx, g.st, p, g.events, g.log, PurgeOptions{Now: g.now()})
		wait = p.Retention.Every
	}
}
