package smtp

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime/debug"
	"sync"
	"time"
)

// Backoff is the retry schedule: Initial·Factor^(attempt-1), capped at Max,
// then spread by ±Jitter (a fraction) so that retries after an outage do not
// arrive together. Zero fields take the defaults (1m, 1h, 2, 0.2); a
// negative Jitter disables it.
type Backoff struct {
	Initial, Max time.Duration
	Factor       float64
	Jitter       float64
}

// Delay returns the wait before attempt number attempt (1 for the first
// retry); rnd is uniform in [0,1).
func (b Backoff) Delay(attempt int, rnd float64) time.Duration {
	if b.Initial <= 0 {
		b.Initial = time.Minute
	}
	if b.Max <= 0 {
		b.Max = time.Hour
	}
	if b.Factor < 1 {
		b.Factor = 2
	}
	if b.Jitter == 0 {
		b.Jitter = 0.2
	}
	if attempt < 1 {
		attempt = 1
	}
	d := float64(b.Initial) * math.Pow(b.Factor, float64(attempt-1))
	if d > float64(b.Max) || math.IsInf(d, 0) || math.IsNaN(d) {
		d = float64(b.Max)
	}
	if b.Jitter > 0 {
		d *= 1 + b.Jitter*(2*rnd-1)
	}
	return time.Duration(d)
}

// Queue runs the delivery workers: it claims due messages from the Outbox,
// delivers each through the Transport of its route, and settles it with
// Done, Retry or Fail. Zero fields take the documented defaults.
type Queue struct {
	Outbox Outbox
	// Transports maps a route to its transport. A message whose route has
	// none is retried (a configuration fix may come) until MaxAge.
	Transports map[Route]Transport
	// Concurrency is the number of messages in flight. Default 8.
	Concurrency int
	// PerTransport limits the messages in flight to one transport (one
	// relay). Default Concurrency.
	PerTransport int
	// Backoff is the retry schedule after 4xx and connection failures.
	Backoff Backoff
	// MaxAge is how long a message may stay queued; then its remaining
	// recipients fail with 4.4.7 and the sender gets a DSN. Default 5 days.
	MaxAge time.Duration
	// PollInterval is how often an idle queue claims. Default 10s; Wake
	// claims at once.
	PollInterval time.Duration
	// Hostname is the Reporting-MTA of DSNs. Required for DSNs.
	Hostname string
	// Now and Rand replace the clock and the jitter source (tests).
	Now  func() time.Time
	Rand func() float64
	// Log receives Debug lines, and an Error line with the stack for a
	// panic in a worker.
	Log *slog.Logger

	once sync.Once
	wake chan struct{}
	mu   sync.Mutex
	sems map[any]chan struct{}
}

// Default queue settings.
const (
	DefaultConcurrency  = 8
	DefaultMaxAge       = 5 * 24 * time.Hour
	DefaultPollInterval = 10 * time.Second
	outboxTimeout       = 30 * time.Second
)

func (q *Queue) init() {
	q.once.Do(func() {
		q.wake = make(chan struct{}, 1)
		q.sems = map[any]chan struct{}{}
		setDefault(&q.Concurrency, DefaultConcurrency)
		setDefault(&q.PerTransport, q.Concurrency)
		setDefault(&q.MaxAge, DefaultMaxAge)
		setDefault(&q.PollInterval, DefaultPollInterval)
		if q.Now == nil {
			q.Now = time.Now
		}
		if q.Rand == nil {
			q.Rand = rand.Float64
		}
		if q.Log == nil {
			q.Log = slog.New(slog.DiscardHandler)
		}
	})
}

// Wake makes Run claim now (call it after queueing a message).
func (q *Queue) Wake() {
	q.init()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx is cancelled, then waits for the attempts in
// flight (their transports see the cancelled context) and returns nil.
func (q *Queue) Run(ctx context.Context) error {
	q.init()
	var wg sync.WaitGroup
	defer wg.Wait()
	inflight := make(chan struct{}, q.Concurrency)
	finished := make(chan struct{}, q.Concurrency)
	for {
		wait := q.PollInterval
		if free := q.Concurrency - len(inflight); free > 0 {
			items, err := q.Outbox.Claim(ctx, free)
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				q.Log.Debug("outbox claim failed", "err", err)
			}
			for _, m := range items {
				inflight <- struct{}{}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer func() {
						<-inflight
						select { // wake the loop; never block on it
						case finished <- struct{}{}:
						default:
						}
					}()
					q.process(ctx, m)
				}()
			}
			if err == nil && len(items) == free {
				wait = 0 // there may be more due
			}
		}
		if wait == 0 && len(inflight) < q.Concurrency {
			continue
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-q.wake:
		case <-finished:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// RunOnce claims up to Concurrency messages, delivers them and returns how
// many it handled (for tests and one-shot tools).
func (q *Queue) RunOnce(ctx context.Context) (int, error) {
	q.init()
	items, err := q.Outbox.Claim(ctx, q.Concurrency)
	if err != nil {
		return 0, err
	}
	var wg sync.WaitGroup
	for _, m := range items {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q.process(ctx, m)
		}()
	}
	wg.Wait()
	return len(items), nil
}

// process makes one attempt and settles the message. A panic is recovered,
// logged and counted, and the message is retried later.
func (q *Queue) process(ctx context.Context, m Outgoing) {
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			metricPanics.WithLabelValues("worker").Inc()
			q.Log.Error("delivery worker panic", "msg_id", m.ID, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			res := allResults(m.Rcpts, tempResult("", 451, [3]int{4, 3, 0}, "internal error during delivery", fmt.Sprint(p)))
			q.settle(ctx, m, res, false)
		}
	}()
	results, attempted := q.attempt(ctx, m)
	if !attempted {
		return // cancelled before anything was tried: the lease expires
	}
	metricDeliveryDuration.WithLabelValues(string(m.Route)).Observe(time.Since(start).Seconds())
	q.settle(ctx, m, results, ctx.Err() != nil)
}

// attempt delivers m once; attempted is false when ctx ended while waiting
// for a transport slot.
func (q *Queue) attempt(ctx context.Context, m Outgoing) (results []RcptResult, attempted bool) {
	tr := q.Transports[m.Route]
	if tr == nil {
		return allResults(m.Rcpts, tempResult("", 451, [3]int{4, 3, 5}, "no transport configured for route "+string(m.Route), "")), true
	}
	sem := q.semaphore(m.Route, tr)
	select {
	case sem <- struct{}{}:
		defer func() { <-sem }()
	case <-ctx.Done():
		return nil, false
	}
	rc, err := m.Open()
	if err != nil {
		return allResults(m.Rcpts, tempResult("", 451, [3]int{4, 3, 0}, "message unavailable", err.Error())), true
	}
	defer rc.Close()
	return normalizeResults(m.Rcpts, tr.Deliver(ctx, m, rc)), true
}

// semaphore returns the concurrency limit of a transport, shared by the
// routes that use the same one.
func (q *Queue) semaphore(route Route, tr Transport) chan struct{} {
	var key any = route
	if t := reflect.TypeOf(tr); t.Comparable() {
		key = tr
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	s, ok := q.sems[key]
	if !ok {
		s = make(chan struct{}, q.PerTransport)
		q.sems[key] = s
	}
	return s
}

// normalizeResults returns exactly one sane result per recipient, in order.
func normalizeResults(rcpts []string, got []RcptResult) []RcptResult {
	by := make(map[string]RcptResult, len(got))
	for _, r := range got {
		if _, dup := by[r.Rcpt]; !dup {
			by[r.Rcpt] = r
		}
	}
	out := make([]RcptResult, len(rcpts))
	for i, rcpt := range rcpts {
		r, ok := by[rcpt]
		switch {
		case !ok:
			r = tempResult(rcpt, 451, [3]int{4, 3, 0}, "no result from the transport", "")
		case r.Code >= 200 && r.Code < 300:
			r.Perm = false
		case r.Code >= 500 && r.Code < 600:
			r.Perm = true
		case r.Code >= 400 && r.Code < 500:
		default:
			r = tempResult(rcpt, 451, [3]int{4, 3, 0}, "invalid result from the transport", fmt.Sprintf("code %d", r.Code))
		}
		out[i] = r
	}
	return out
}

// settle reports the attempt to the Outbox: Done when every recipient is
// delivered, Fail when the rest failed permanently (or expired), Retry
// otherwise. interrupted attempts (shutdown) are retried at once.
func (q *Queue) settle(ctx context.Context, m Outgoing, results []RcptResult, interrupted bool) {
	now := q.Now()
	// A zero Received is a caller bug; never bounce because of it.
	expired := !m.Received.IsZero() && now.Sub(m.Received) >= q.MaxAge
	var failed []RcptResult
	temp := 0
	for i := range results {
		r := &results[i]
		switch {
		case r.Delivered():
		case r.Perm:
			failed = append(failed, *r)
		case expired:
			r.Perm = true
			r.Enhanced = [3]int{4, 4, 7} // RFC 3463: delivery time expired
			r.Text = oneLine(fmt.Sprintf("delivery time expired after %s; last error: %s", q.MaxAge, diagnosticText(*r)), 800)
			r.Remote = ""
			failed = append(failed, *r)
		default:
			temp++
		}
	}
	var dsn []byte
	if len(failed) > 0 {
		dsn = q.dsn(m, failed, now)
	}
	octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), outboxTimeout)
	defer cancel()
	var err error
	var outcome string
	switch {
	case temp > 0:
		at := now
		if !interrupted {
			at = q.nextAttempt(m, now)
		}
		outcome = "deferred"
		err = q.Outbox.Retry(octx, m.ID, at, results, dsn)
		metricQueueRetries.Inc()
	case len(failed) > 0:
		outcome = "bounced"
		err = q.Outbox.Fail(octx, m.ID, results, dsn)
	default:
		outcome = "delivered"
		err = q.Outbox.Done(octx, m.ID, results)
	}
	metricDeliveryAttempts.WithLabelValues(outcome).Inc()
	if err != nil {
		metricDeliveryAttempts.WithLabelValues("error").Inc()
		q.Log.Debug("outbox update failed; the lease will expire and the message come back", "msg_id", m.ID, "err", err)
		return
	}
	q.Log.Debug("delivery attempt", "msg_id", m.ID, "outcome", outcome, "attempt", m.Attempts+1)
}

// nextAttempt is now plus the backoff, but never past the expiry time, so
// that the last attempt happens at MaxAge.
func (q *Queue) nextAttempt(m Outgoing, now time.Time) time.Time {
	at := now.Add(q.Backoff.Delay(m.Attempts+1, q.Rand()))
	if limit := m.Received.Add(q.MaxAge); !m.Received.IsZero() && at.After(limit) {
		at = limit
	}
	if at.Before(now) {
		at = now
	}
	return at
}

// dsn builds the DSN for failed recipients; nil for the null sender.
func (q *Queue) dsn(m Outgoing, failed []RcptResult, now time.Time) []byte {
	if m.MailFrom == "" {
		return nil
	}
	var headers []byte
	if rc, err := m.Open(); err == nil {
		headers, _ = ReadHeaders(rc) // a partial header block is still useful
		_ = rc.Close()
	}
	return BuildDSN(DSN{
		ReportingMTA: q.Hostname,
		Sender:       m.MailFrom,
		ID:           m.ID,
		Arrival:      m.Received,
		Date:         now,
		Results:      failed,
		Headers:      headers,
	})
}
