package sandbox

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// CycleStats says what one poll cycle did.
type CycleStats struct {
	Claimed   int // tasks claimed from the Store
	Submitted int // uploads (or adoptions of a task found by search)
	Polled    int // status polls
	Verdicts  int // verdicts reached
	Retried   int // tasks put back after a failed request
	Pending   int // tasks waiting (queued or submitted) at the start
}

func (st *CycleStats) add(mu *sync.Mutex, f func(*CycleStats)) {
	mu.Lock()
	defer mu.Unlock()
	f(st)
}

// Run polls until ctx is done: a cycle every Interval, or at once after
// Schedule queued new content. Errors (a Store or the sandbox down) are
// counted and retried on the next cycle; Run returns only when ctx ends.
func (s *Scheduler) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		if _, err := s.Cycle(ctx); err != nil && ctx.Err() == nil {
			s.log.Debug("sandbox poll cycle", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-s.wake:
		}
	}
}

// Cycle runs one poll cycle: it claims as many due tasks as the request
// budget allows (at most Batch) and uploads or polls each. It costs the
// Store one count, one claim, and one or two writes per task.
func (s *Scheduler) Cycle(ctx context.Context) (CycleStats, error) {
	var st CycleStats
	now := s.now()
	counts, err := s.cfg.Store.CountTasks(ctx)
	if err != nil {
		metricErrors.WithLabelValues("store", string(KindInternal)).Inc()
		return st, fmt.Errorf("sandbox: count tasks: %w", err)
	}
	st.Pending = counts.Queued + counts.Submitted
	metricPending.Set(float64(st.Pending))
	n := min(s.cfg.Batch, int(s.budget.TokensAt(now)))
	if n <= 0 || st.Pending == 0 {
		return st, nil
	}
	tasks, err := s.cfg.Store.DueTasks(ctx, now, now.Add(s.cfg.Lease), n)
	if err != nil {
		metricErrors.WithLabelValues("store", string(KindInternal)).Inc()
		return st, fmt.Errorf("sandbox: claim tasks: %w", err)
	}
	st.Claimed = len(tasks)
	var inflight atomic.Int64
	inflight.Store(int64(counts.Submitted))
	var mu sync.Mutex
	jobs := make(chan Task)
	var wg sync.WaitGroup
	for range min(s.cfg.Workers, len(tasks)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range jobs {
				s.runTask(ctx, t, now, &inflight, &st, &mu)
			}
		}()
	}
	for _, t := range tasks {
		jobs <- t
	}
	close(jobs)
	wg.Wait()
	return st, nil
}

// runTask works on one claimed task. A panic is contained here: it is
// counted, and the task is put back for later.
func (s *Scheduler) runTask(ctx context.Context, t Task, now time.Time, inflight *atomic.Int64, st *CycleStats, mu *sync.Mutex) {
	defer func() {
		if p := recover(); p != nil {
			metricErrors.WithLabelValues("worker", "panic").Inc()
			s.log.Debug("sandbox worker panic", "sha256", t.SHA256, "err", p, "stack", string(debug.Stack()))
			t.LastError = fmt.Sprint("panic: ", p)
			t.NextPoll = now.Add(s.cfg.Backoff.RetryMax)
			s.put(ctx, t)
		}
	}()
	if !s.budget.AllowN(now, 1) {
		t.NextPoll = now // not worked on: give the claim back
		s.put(ctx, t)
		return
	}
	var r outcome
	if t.ID == "" {
		r = s.submit(ctx, t, now, inflight)
	} else {
		r = s.poll(ctx, t, now)
	}
	st.add(mu, func(st *CycleStats) {
		switch r {
		case submitted:
			st.Submitted++
		case polled:
			st.Polled++
		case decided:
			st.Verdicts++
		case retried:
			st.Retried++
		}
	})
}

type outcome int

const (
	waiting outcome = iota
	submitted
	polled
	decided
	retried
)

// submit uploads a queued task, after a hash search when enabled, if a
// slot under MaxInFlight is free.
func (s *Scheduler) submit(ctx context.Context, t Task, now time.Time, inflight *atomic.Int64) outcome {
	if !reserve(inflight, s.cfg.MaxInFlight) {
		t.NextPoll = now.Add(s.cfg.Backoff.Poll)
		s.put(ctx, t)
		return waiting
	}
	r := s.submitReserved(ctx, t, now)
	if r != submitted {
		inflight.Add(-1)
	}
	return r
}

// reserve takes one of max slots (max <= 0: no cap).
func reserve(inflight *atomic.Int64, max int) bool {
	for {
		n := inflight.Load()
		if max > 0 && n >= int64(max) {
			return false
		}
		if inflight.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (s *Scheduler) submitReserved(ctx context.Context, t Task, now time.Time) outcome {
	searcher, canSearch := s.cfg.Client.(Searcher)
	if canSearch && s.cfg.Search && !t.Searched {
		id, found, err := searcher.SearchSHA256(ctx, t.SHA256, t.Options)
		if err != nil {
			s.countErr("search", err)
			if IsTemporary(err) {
				return s.retry(ctx, t, now, err)
			}
			// Search switched off or refused: upload instead.
		}
		t.Searched = true
		if found {
			return s.adopt(ctx, t, id, now)
		}
	}
	f, ok := s.fileFor(ctx, t)
	if !ok {
		if now.Before(s.start.Add(s.cfg.ReattachGrace)) {
			// Just restarted: the caller may yet call Schedule again
			// with this file.
			t.NextPoll = now.Add(s.cfg.Backoff.Poll)
			s.put(ctx, t)
			return waiting
		}
		return s.finalize(ctx, t, errorVerdict("content no longer available to upload (no Reopen hook)"), now)
	}
	id, err := s.cfg.Client.Submit(ctx, f)
	if err != nil {
		metricSubmissions.WithLabelValues("error").Inc()
		s.countErr("submit", err)
		return s.submitFailed(ctx, t, now, err)
	}
	metricSubmissions.WithLabelValues("ok").Inc()
	s.log.Debug("sandbox submitted", "sha256", t.SHA256, "task_id", id)
	t.ID, t.Submitted, t.Attempts = id, now, t.Attempts+1
	t.Polls, t.Failures, t.LastError = 0, 0, ""
	t.NextPoll = now.Add(s.jitter(s.cfg.Backoff.FirstPoll, false))
	s.put(ctx, t)
	return submitted
}

// submitFailed decides what a failed upload means: the file refused (an
// error verdict), already there (adopt the existing task), or the sandbox
// not able to take it now (try again later, never dropped).
func (s *Scheduler) submitFailed(ctx context.Context, t Task, now time.Time, err error) outcome {
	switch KindOf(err) {
	case KindRejected:
		return s.finalize(ctx, t, errorVerdict("sandbox refused the file: "+err.Error()), now)
	case KindDuplicate:
		// CAPE refuses content it has seen recently (uniq_submission):
		// find the task it has instead.
		if searcher, ok := s.cfg.Client.(Searcher); ok {
			id, found, serr := searcher.SearchSHA256(ctx, t.SHA256, t.Options)
			if serr == nil && found {
				return s.adopt(ctx, t, id, now)
			}
			if serr != nil && IsTemporary(serr) {
				return s.retry(ctx, t, now, serr)
			}
		}
		return s.finalize(ctx, t, errorVerdict("sandbox refuses duplicates and has no usable task: "+err.Error()), now)
	case KindInternal:
		if !IsTemporary(err) {
			return s.finalize(ctx, t, errorVerdict("content could not be uploaded: "+err.Error()), now)
		}
	}
	return s.retry(ctx, t, now, err)
}

// adopt follows a task found on the sandbox instead of uploading.
func (s *Scheduler) adopt(ctx context.Context, t Task, id TaskID, now time.Time) outcome {
	metricSearchHits.Inc()
	s.log.Debug("sandbox task found by search", "sha256", t.SHA256, "task_id", id)
	t.ID, t.Submitted = id, now
	t.Polls, t.Failures, t.LastError = 0, 0, ""
	t.NextPoll = now
	s.put(ctx, t)
	return submitted
}

// poll asks for a submitted task's verdict.
func (s *Scheduler) poll(ctx context.Context, t Task, now time.Time) outcome {
	v, err := s.cfg.Client.Status(ctx, t.ID)
	switch {
	case err == nil:
		metricPolls.WithLabelValues("reported").Inc()
		return s.finalize(ctx, t, v, now)
	case errors.Is(err, ErrPending):
		metricPolls.WithLabelValues("pending").Inc()
		t.Polls++
		t.Failures, t.LastError = 0, ""
		if now.Sub(t.Submitted) >= s.cfg.MaxWait {
			return s.finalize(ctx, t, Verdict{State: StateTimeout,
				Error: fmt.Sprintf("no report %s after submission: %v", now.Sub(t.Submitted).Round(time.Second), err)}, now)
		}
		t.NextPoll = now.Add(s.pollDelay(t.Polls))
		s.put(ctx, t)
		return polled
	case KindOf(err) == KindTaskFailed || KindOf(err) == KindNotFound:
		metricPolls.WithLabelValues("failed").Inc()
		s.countErr("status", err)
		if t.Attempts >= s.cfg.MaxSubmissions {
			return s.finalize(ctx, t, errorVerdict(fmt.Sprintf("analysis failed after %d submissions: %v", t.Attempts, err)), now)
		}
		s.log.Debug("sandbox analysis failed; resubmitting", "sha256", t.SHA256, "task_id", t.ID, "err", err)
		t.ID, t.NextPoll, t.LastError = "", now, err.Error()
		s.put(ctx, t)
		return retried
	}
	metricPolls.WithLabelValues("error").Inc()
	s.countErr("status", err)
	return s.retry(ctx, t, now, err)
}

// retry puts a task back after a failed request, with backoff. When the
// request failed because ctx ended (shutdown), the task is put back as it
// was: due at once after a restart, not counted as a failure.
func (s *Scheduler) retry(ctx context.Context, t Task, now time.Time, err error) outcome {
	if ctx.Err() != nil {
		t.NextPoll = now
		s.put(ctx, t)
		return waiting
	}
	t.Failures++
	t.LastError = err.Error()
	t.NextPoll = now.Add(s.retryDelay(t.Failures, RetryAfter(err)))
	s.log.Debug("sandbox request failed", "sha256", t.SHA256, "task_id", t.ID, "err", err)
	s.put(ctx, t)
	return retried
}

func errorVerdict(msg string) Verdict { return Verdict{State: StateError, Error: msg} }

// finalize stores the verdict, drops the task and tells the caller.
func (s *Scheduler) finalize(ctx context.Context, t Task, v Verdict, now time.Time) outcome {
	v.Key, v.SHA256, v.At = t.Key, t.SHA256, now
	if v.TaskID == "" {
		v.TaskID = t.ID
	}
	if v.Signatures == nil {
		v.Signatures = []string{}
	}
	if v.Detections == nil {
		v.Detections = []string{}
	}
	ttl := s.cfg.VerdictTTL
	if v.State != StateDone {
		ttl = s.cfg.ErrorTTL
	}
	sctx, cancel := storeContext(ctx)
	defer cancel()
	if err := s.cfg.Store.PutVerdict(sctx, v, now.Add(ttl)); err != nil {
		metricErrors.WithLabelValues("store", string(KindInternal)).Inc()
		return s.retry(ctx, t, now, fmt.Errorf("storing the verdict: %w", err))
	}
	if err := s.cfg.Store.DeleteTask(sctx, t.Key); err != nil {
		// The verdict is stored; the task will be polled again and the
		// verdict reached again, which is harmless.
		metricErrors.WithLabelValues("store", string(KindInternal)).Inc()
	}
	s.forget(t.Key)
	metricVerdicts.WithLabelValues(v.State).Inc()
	metricLatency.WithLabelValues(v.State).Observe(now.Sub(t.Created).Seconds())
	s.log.Debug("sandbox verdict", "sha256", t.SHA256, "task_id", v.TaskID, "state", v.State, "malscore", v.Malscore)
	if s.cfg.OnVerdict != nil {
		s.cfg.OnVerdict(t.Key, v)
	}
	return decided
}

// storeContext lets the writes that end a piece of work happen even when
// ctx was cancelled by a shutdown, within a bound.
func storeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
}

// put writes a task back; a Store error leaves the claim to expire.
func (s *Scheduler) put(ctx context.Context, t Task) {
	ctx, cancel := storeContext(ctx)
	defer cancel()
	if err := s.cfg.Store.PutTask(ctx, t); err != nil {
		metricErrors.WithLabelValues("store", string(KindInternal)).Inc()
		s.log.Debug("sandbox store", "sha256", t.SHA256, "err", err)
	}
}

func (s *Scheduler) countErr(op string, err error) {
	metricErrors.WithLabelValues(op, string(KindOf(err))).Inc()
}
