package gateway

import (
	"context"
	"time"

	"github.com/mailguard/mailguard/store"
)

// holdTick is how often held messages are checked for their deadline.
const holdTick = 2 * time.Second

// holdLoop re-decides held messages: when their deadline passes, and when
// something they wait for arrives (a sandbox verdict, a password mail),
// signalled through g.recheck.
func (g *Gateway) holdLoop(ctx context.Context) {
	t := time.NewTicker(holdTick)
	defer t.Stop()
	sweep := time.NewTicker(15 * time.Second)
	defer sweep.Stop()
	g.checkHeld(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-g.recheck:
			g.redecide(ctx, id)
		case <-sweep.C:
			// Undecided messages left by a crash (of this or another node)
			// once no session can still be working on them.
			if err := g.resumeUndecided(ctx); err != nil {
				g.log.Error("resume undecided messages", "err", err)
			}
		case <-t.C:
			g.checkHeld(ctx)
		case <-g.wakeHold:
			g.checkHeld(ctx)
		}
	}
}

// Recheck asks the hold loop to re-decide a held message (a verdict or a
// password may have arrived). It never blocks; a full queue is caught up by
// the periodic check.
func (g *Gateway) Recheck(id string) {
	select {
	case g.recheck <- id:
	default:
	}
}

func (g *Gateway) checkHeld(ctx context.Context) {
	held, err := g.st.List(ctx, store.Filter{States: []store.State{store.Held}})
	if err != nil {
		g.log.Error("list held", "err", err)
		return
	}
	metricHeld.Set(float64(len(held)))
	now := g.now()
	for _, m := range held {
		if ctx.Err() != nil {
			return
		}
		if !m.HoldUntil.IsZero() && !now.Before(m.HoldUntil) {
			g.redecideMessage(ctx, m)
		}
	}
}

func (g *Gateway) redecide(ctx context.Context, id string) {
	m, err := g.st.Get(ctx, id)
	if err != nil {
		g.log.Error("recheck", "msg_id", id, "err", err)
		return
	}
	if m.State == store.Held {
		g.redecideMessage(ctx, m)
	}
}

// redecideMessage inspects a held message again (verdicts and passwords
// that arrived since are picked up by the stages) and applies the result.
func (g *Gateway) redecideMessage(ctx context.Context, m *store.Message) {
	g.process(ctx, m, InspectOptions{HoldUntil: m.HoldUntil}, []store.State{store.Held})
	if after, err := g.st.Get(ctx, m.ID); err == nil && after.State != store.Held {
		metricHoldSeconds.Observe(g.now().Sub(m.StateAt).Seconds())
	}
}
