package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Config configures a Scheduler. Zero values are documented defaults.
type Config struct {
	// Client talks to the sandbox (required). When it is also a Searcher
	// and Search is set, content is looked up before it is uploaded.
	Client Client
	// Store keeps verdicts and tasks (required).
	Store Store
	// OnVerdict is called once per verdict, after it is stored, with the
	// key the caller got from Schedule. It runs on a worker goroutine and
	// should return quickly (queue the re-decision, do not make it).
	OnVerdict func(key string, v Verdict)
	// Reopen returns the content of a task whose File.Open is not in this
	// process's memory: after a restart, or on another node. Without it,
	// a queued task waits ReattachGrace after New for Schedule to be called
	// again with its file (as the gateway does for held messages when it
	// resumes), then ends in an error verdict.
	Reopen func(ctx context.Context, t Task) (io.ReadCloser, error)
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Log receives Debug lines; default discards.
	Log *slog.Logger

	// Search looks content up on the sandbox before uploading it.
	Search bool
	// VerdictTTL is how long a verdict is reused; default 24h.
	VerdictTTL time.Duration
	// ErrorTTL is how long an error or timeout verdict is reused before
	// the content is tried again; default 15m.
	ErrorTTL time.Duration
	// MaxSubmissions bounds uploads of one content when analyses fail
	// (failed_analysis, failed_processing, …); then the verdict is an
	// error. Default 3.
	MaxSubmissions int
	// MaxWait is how long a submitted task may stay unfinished, as seen by
	// successful polls, before its verdict is a timeout; default 30m. Time
	// during which the sandbox cannot be reached does not end a task: it
	// stays pending until the sandbox answers.
	MaxWait time.Duration
	// MaxInFlight caps tasks submitted and not finished at the sandbox
	// (all nodes together, as counted by the Store); more content waits in
	// the queue. Default 50; negative means no cap.
	MaxInFlight int
	// RequestsPerSecond is the poller's budget of task operations (a
	// submission, or a poll: a status request, plus the report download
	// once per task); default 5. The cape client's RequestsPerMinute is the
	// hard limit on the wire.
	RequestsPerSecond float64
	// Burst is the budget's burst; default 10.
	Burst int
	// Batch caps the tasks claimed per cycle; default 100.
	Batch int
	// Workers is how many tasks a cycle works on at once; default 4.
	Workers int
	// Lease is how long a claimed task is kept from other pollers; default
	// 5m (longer than a slow upload).
	Lease time.Duration
	// Interval is the time between poll cycles in Run; default 1s.
	Interval time.Duration
	// ReattachGrace is how long after New a queued task whose content is
	// not reachable waits to be re-attached by Schedule; default 2m.
	ReattachGrace time.Duration
	// Backoff shapes poll and retry delays.
	Backoff Backoff
}

// Backoff shapes delays. Zero values are defaults.
type Backoff struct {
	// FirstPoll is the wait after an upload before the first poll;
	// default 60s (an analysis takes minutes).
	FirstPoll time.Duration
	// Poll is the first interval between polls, growing by half each poll
	// up to PollMax; defaults 15s and 2m.
	Poll, PollMax time.Duration
	// Retry is the first delay after a failed request, doubling up to
	// RetryMax; defaults 10s and 10m. A Retry-After from the sandbox is
	// honoured when longer.
	Retry, RetryMax time.Duration
	// Jitter spreads delays by up to this fraction; default 0.1, negative
	// for none.
	Jitter float64
}

// Result is the outcome of scheduling one file.
type Result struct {
	// Key identifies the content and options; OnVerdict reports it.
	Key    string
	SHA256 string
	// Cached is set when Verdict holds a cached verdict. Otherwise the
	// verdict will come through OnVerdict(Key, …).
	Cached  bool
	Verdict Verdict
	// TaskID is the sandbox task, once submitted.
	TaskID TaskID
	// Joined is set when the content was already in flight (for another
	// message, or scheduled twice).
	Joined bool
}

// Scheduler decides which files go to the sandbox and follows them until
// they have a verdict. Schedule never talks to the sandbox: it answers from
// the Store and queues the rest; Run (or Cycle) uploads and polls.
type Scheduler struct {
	cfg    Config
	now    func() time.Time
	log    *slog.Logger
	budget *rate.Limiter
	wake   chan struct{}
	start  time.Time

	mu    sync.Mutex
	files map[string]File // key → file with Open, kept until its verdict
}

// New returns a Scheduler.
func New(cfg Config) (*Scheduler, error) {
	if cfg.Client == nil || cfg.Store == nil {
		return nil, errors.New("sandbox: scheduler needs a Client and a Store")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.VerdictTTL, 24*time.Hour)
	def(&cfg.ErrorTTL, 15*time.Minute)
	def(&cfg.MaxWait, 30*time.Minute)
	def(&cfg.Lease, 5*time.Minute)
	def(&cfg.Interval, time.Second)
	def(&cfg.ReattachGrace, 2*time.Minute)
	b := &cfg.Backoff
	def(&b.FirstPoll, time.Minute)
	def(&b.Poll, 15*time.Second)
	def(&b.PollMax, 2*time.Minute)
	def(&b.Retry, 10*time.Second)
	def(&b.RetryMax, 10*time.Minute)
	if b.Jitter == 0 {
		b.Jitter = 0.1
	}
	b.Jitter = min(b.Jitter, 0.5)
	if cfg.MaxSubmissions <= 0 {
		cfg.MaxSubmissions = 3
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = 50
	}
	if cfg.RequestsPerSecond <= 0 {
		cfg.RequestsPerSecond = 5
	}
	if cfg.Burst <= 0 {
		cfg.Burst = 10
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 100
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	s := &Scheduler{cfg: cfg, now: cfg.Now, log: cfg.Log, wake: make(chan struct{}, 1), files: map[string]File{}}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	// The budget is only ever consulted with times from s.now, so it runs
	// on the injected clock like everything else.
	s.budget = rate.NewLimiter(rate.Limit(cfg.RequestsPerSecond), cfg.Burst)
	s.start = s.now()
	return s, nil
}

// Schedule returns, for each file, a cached verdict or the promise of one
// through OnVerdict. New content is queued in the Store for Run to upload;
// content already in flight is joined, never submitted twice. Schedule is
// idempotent: calling it again for a held message after a restart returns
// verdicts that arrived meanwhile and re-attaches the files' Open. Errors
// are Store errors.
func (s *Scheduler) Schedule(ctx context.Context, files []File) ([]Result, error) {
	now := s.now()
	out := make([]Result, 0, len(files))
	first := map[string]int{}
	queued := false
	for _, f := range files {
		if !ValidSHA256(f.SHA256) {
			return nil, fmt.Errorf("sandbox: schedule %q: bad sha256 %q", f.Name, f.SHA256)
		}
		key := f.Key()
		if i, ok := first[key]; ok {
			r := out[i]
			r.Joined = r.Joined || !r.Cached
			out = append(out, r)
			continue
		}
		r, isNew, err := s.scheduleOne(ctx, f, key, now)
		if err != nil {
			return nil, err
		}
		queued = queued || isNew
		first[key] = len(out)
		out = append(out, r)
	}
	if queued {
		s.Wake()
	}
	return out, nil
}

func (s *Scheduler) scheduleOne(ctx context.Context, f File, key string, now time.Time) (Result, bool, error) {
	r := Result{Key: key, SHA256: f.SHA256}
	v, ok, err := s.cfg.Store.GetVerdict(ctx, key, now)
	if err != nil {
		metricErrors.WithLabelValues("store", string(KindInternal)).Inc()
		return r, false, fmt.Errorf("sandbox: verdict cache: %w", err)
	}
	if ok {
		metricCacheHits.Inc()
		r.Cached, r.Verdict = true, v
		return r, false, nil
	}
	s.remember(key, f)
	t := Task{Key: key, SHA256: f.SHA256, Name: f.Name, Type: f.Type, Size: f.Size,
		Options: maps.Clone(f.Options), Ref: f.Ref, Created: now, NextPoll: now}
	stored, inserted, err := s.cfg.Store.AddTask(ctx, t)
	if err != nil {
		metricErrors.WithLabelValues("store", string(KindInternal)).Inc()
		return r, false, fmt.Errorf("sandbox: task table: %w", err)
	}
	r.TaskID, r.Joined = stored.ID, !inserted
	if r.Joined {
		metricDeduped.Inc()
	}
	return r, inserted, nil
}

// Wake makes Run start a cycle now rather than at its next tick.
func (s *Scheduler) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Scheduler) remember(key string, f File) {
	if f.Open == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.files[key]; !ok {
		s.files[key] = f
	}
}

func (s *Scheduler) forget(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.files, key)
}

// fileFor returns the task's content: the File given to Schedule in this
// process, or one read through Reopen.
func (s *Scheduler) fileFor(ctx context.Context, t Task) (File, bool) {
	s.mu.Lock()
	f, ok := s.files[t.Key]
	s.mu.Unlock()
	if ok {
		return f, true
	}
	if s.cfg.Reopen == nil {
		return File{}, false
	}
	return File{SHA256: t.SHA256, Name: t.Name, Type: t.Type, Size: t.Size, Options: t.Options, Ref: t.Ref,
		Open: func() (io.ReadCloser, error) { return s.cfg.Reopen(ctx, t) }}, true
}

// pollDelay is the wait before poll number n+1: Poll growing by half per
// poll, capped at PollMax, jittered.
func (s *Scheduler) pollDelay(polls int) time.Duration {
	b := s.cfg.Backoff
	d := float64(b.Poll) * math.Pow(1.5, float64(max(polls-1, 0)))
	return s.jitter(time.Duration(min(d, float64(b.PollMax))), false)
}

// retryDelay is the wait after the n-th consecutive failure: Retry doubling,
// capped at RetryMax, never shorter than the sandbox's Retry-After.
func (s *Scheduler) retryDelay(failures int, retryAfter time.Duration) time.Duration {
	b := s.cfg.Backoff
	d := float64(b.Retry) * math.Pow(2, float64(max(failures-1, 0)))
	return s.jitter(max(time.Duration(min(d, float64(b.RetryMax))), retryAfter), true)
}

// jitter spreads d by ±Jitter, or by +Jitter only when up is set.
func (s *Scheduler) jitter(d time.Duration, up bool) time.Duration {
	j := s.cfg.Backoff.Jitter
	if j <= 0 {
		return d
	}
	f := 2*rand.Float64() - 1
	if up {
		f = rand.Float64()
	}
	return time.Duration(float64(d) * (1 + j*f))
}
