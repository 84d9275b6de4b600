package gateway

import (
	"context"
	"time"

	"github.com/mailguard/mailguard/store"
)

// staleAfter is how old an undecided message must be before this node
// inspects it again: past the inspection budget, no session (of this or
// another node sharing the store) is still working on it.
func (g *Gateway) staleAfter() time.Duration {
	return g.Policy().Limits.Inspect + 10*time.Second
}

// Resume picks up what was in flight when mailguard last stopped. It runs
// before the listeners open: spool files without a row are moved aside,
// rows without a spool file are marked error, messages received but not
// decided are inspected again. Held messages are re-armed by the hold loop
// and queued deliveries by the queue (their leases expire), so nothing
// acknowledged with 250 is lost.
func (g *Gateway) Resume(ctx context.Context) error {
	rec, err := g.st.Recover(ctx)
	if err != nil {
		return err
	}
	for _, id := range rec.Orphans {
		g.log.Warn("spool file without a row moved to spool/orphan", "msg_id", id)
		metricSpoolErrors.WithLabelValues("orphan").Inc()
	}
	for _, id := range rec.MissingSpool {
		g.log.Error("message row without spool file: marked error", "msg_id", id)
		metricSpoolErrors.WithLabelValues("missing_spool").Inc()
	}
	if n, err := g.st.ReleaseLeases(ctx, g.node); err != nil {
		return err
	} else if n > 0 {
		g.log.Info("deliveries interrupted by the last stop are due again", "count", n)
	}
	if err := g.resumeUndecided(ctx); err != nil {
		return err
	}
	for _, st := range []store.State{store.Held, store.Queued, store.Released} {
		ids, err := g.st.InState(ctx, st)
		if err != nil {
			return err
		}
		if len(ids) > 0 {
			metricResumed.WithLabelValues(string(st)).Add(float64(len(ids)))
			g.log.Info("in flight at start", "state", st, "count", len(ids))
		}
	}
	return nil
}

// resumeUndecided inspects again the messages received (durable, maybe
// acknowledged) but never decided, once they are older than staleAfter.
// Younger ones may still be in the hands of a session of another node
// sharing the store; the sweep in the hold loop takes them when they age.
func (g *Gateway) resumeUndecided(ctx context.Context) error {
	ids, err := g.st.InState(ctx, store.Received, store.Inspected)
	if err != nil {
		return err
	}
	cut := g.now().Add(-g.staleAfter())
	for _, id := range ids {
		m, err := g.st.Get(ctx, id)
		if err != nil {
			return err
		}
		if m.ReceivedAt.After(cut) {
			continue
		}
		metricResumed.WithLabelValues(string(m.State)).Inc()
		g.log.Info("resuming message", "msg_id", id, "state", m.State)
		g.process(ctx, m, InspectOptions{}, []store.State{store.Received, store.Inspected})
	}
	return nil
}
