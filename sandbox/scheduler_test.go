package sandbox_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailguard/mailguard/sandbox"
	"github.com/mailguard/mailguard/sandbox/cape"
	"github.com/mailguard/mailguard/sandbox/capetest"
	"github.com/mailguard/mailguard/sandbox/sandboxtest"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// harness is a scheduler, the real CAPE client and the emulator on one
// fake clock.
type harness struct {
	t      *testing.T
	clk    *clock
	emu    *capetest.Server
	store  *sandboxtest.MemStore
	client *cape.Client
	cfg    sandbox.Config
	sched  *sandbox.Scheduler

	mu       sync.Mutex
	verdicts map[string][]sandbox.Verdict
}

func newHarness(t *testing.T, ec capetest.Config, cfg sandbox.Config) *harness {
	t.Helper()
	h := &harness{t: t, clk: &clock{t: time.Date(2026, 8, 22, 10, 0, 0, 0, time.UTC)},
		store: sandboxtest.NewMemStore(), verdicts: map[string][]sandbox.Verdict{}}
	ec.Now = h.clk.Now
	emu, err := capetest.Start(ec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	h.emu = emu
	h.client, err = cape.New(cape.Config{URL: emu.URL, Now: h.clk.Now, Token: firstOr(ec.Tokens, ""), RequestTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Client, cfg.Store, cfg.Now = h.client, h.store, h.clk.Now
	cfg.OnVerdict = h.onVerdict
	cfg.Backoff.Jitter = -1
	h.cfg = cfg
	h.restart()
	return h
}

func firstOr(xs []string, def string) string {
	if len(xs) > 0 {
		return xs[0]
	}
	return def
}

// restart replaces the scheduler by a new one over the same Store, as a
// process restart does: the files' Open funcs are gone.
func (h *harness) restart() {
	h.t.Helper()
	s, err := sandbox.New(h.cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	h.sched = s
}

func (h *harness) onVerdict(key string, v sandbox.Verdict) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.verdicts[key] = append(h.verdicts[key], v)
}

func (h *harness) got(key string) []sandbox.Verdict {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]sandbox.Verdict(nil), h.verdicts[key]...)
}

func (h *harness) schedule(files ...sandbox.File) []sandbox.Result {
	h.t.Helper()
	rs, err := h.sched.Schedule(context.Background(), files)
	if err != nil {
		h.t.Fatal(err)
	}
	return rs
}

func (h *harness) cycle() sandbox.CycleStats {
	h.t.Helper()
	st, err := h.sched.Cycle(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return st
}

// runFor advances the clock by step and runs a cycle, until d has passed.
func (h *harness) runFor(d, step time.Duration) {
	h.t.Helper()
	for end := h.clk.Now().Add(d); h.clk.Now().Before(end); {
		h.clk.Advance(step)
		h.cycle()
	}
}

// until runs cycles every step until key has a verdict or max has passed.
func (h *harness) until(key string, max, step time.Duration) sandbox.Verdict {
	h.t.Helper()
	for end := h.clk.Now().Add(max); h.clk.Now().Before(end); {
		h.cycle()
		if vs := h.got(key); len(vs) > 0 {
			return vs[0]
		}
		h.clk.Advance(step)
	}
	h.t.Fatalf("no verdict for %s within %v; tasks %+v", key, max, h.store.Tasks())
	return sandbox.Verdict{}
}

func mkfile(content string, opts map[string]string) sandbox.File {
	sum := sha256.Sum256([]byte(content))
	return sandbox.File{SHA256: hex.EncodeToString(sum[:]), Name: "invoice.doc", Size: int64(len(content)), Options: opts,
		Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(content)), nil }}
}

func score(f float64) *float64 { return &f }

func TestSameContentTwoMessagesOneSubmission(t *testing.T) {
	f := mkfile("same attachment", nil)
	h := newHarness(t, capetest.Config{Delay: 3 * time.Minute, Verdicts: map[string]capetest.Verdict{
		f.SHA256: {Profile: "malicious"}}}, sandbox.Config{})
	r1 := h.schedule(f)    // message 1
	r2 := h.schedule(f, f) // message 2 has it twice
	if r1[0].Joined || r1[0].Cached || !r2[0].Joined || !r2[1].Joined || r2[0].Key != f.SHA256 {
		t.Fatalf("results %+v %+v", r1, r2)
	}
	v := h.until(f.SHA256, 30*time.Minute, 10*time.Second)
	if v.State != sandbox.StateDone || v.Malscore != 8.5 || v.SHA256 != f.SHA256 || v.TaskID != "1" {
		t.Errorf("verdict %+v", v)
	}
	h.runFor(5*time.Minute, 30*time.Second)
	if n := h.emu.Submissions(f.SHA256); n != 1 {
		t.Errorf("%d submissions, want 1", n)
	}
	if n := len(h.got(f.SHA256)); n != 1 {
		t.Errorf("OnVerdict called %d times, want 1", n)
	}
	if len(h.store.Tasks()) != 0 {
		t.Errorf("tasks left: %+v", h.store.Tasks())
	}
	polls := h.emu.Requests("tasks/status")
	if polls > 10 {
		t.Errorf("%d status polls for a 3 minute analysis", polls)
	}
}

func TestCacheHitAndTTL(t *testing.T) {
	f := mkfile("cached", nil)
	h := newHarness(t, capetest.Config{}, sandbox.Config{VerdictTTL: time.Hour})
	h.schedule(f)
	h.until(f.SHA256, 10*time.Minute, 10*time.Second)
	h.clk.Advance(30 * time.Minute)
	r := h.schedule(f)
	if !r[0].Cached || r[0].Verdict.State != sandbox.StateDone || r[0].Verdict.Key != f.SHA256 {
		t.Fatalf("second message: %+v, want a cached verdict", r[0])
	}
	if h.emu.Submissions(f.SHA256) != 1 || len(h.store.Tasks()) != 0 {
		t.Errorf("a cache hit submitted or queued: %d submissions, tasks %+v", h.emu.Submissions(f.SHA256), h.store.Tasks())
	}
	h.clk.Advance(31 * time.Minute) // past the TTL
	r = h.schedule(f)
	if r[0].Cached {
		t.Fatalf("expired verdict still served: %+v", r[0])
	}
	h.mu.Lock()
	h.verdicts = map[string][]sandbox.Verdict{}
	h.mu.Unlock()
	h.until(f.SHA256, 10*time.Minute, 10*time.Second)
	if n := h.emu.Submissions(f.SHA256); n != 2 {
		t.Errorf("%d submissions after expiry, want 2", n)
	}
}

func TestOutageKeepsTasksPendingAndRecovers(t *testing.T) {
	early, late := mkfile("submitted during the outage", nil), mkfile("submitted before the outage", nil)
	h := newHarness(t, capetest.Config{Delay: 2 * time.Minute}, sandbox.Config{})
	h.schedule(late)
	h.cycle() // uploaded
	if h.emu.Submissions(late.SHA256) != 1 {
		t.Fatal("not submitted")
	}
	if err := h.emu.SetDown(capetest.Refuse); err != nil {
		t.Fatal(err)
	}
	h.schedule(early)
	h.runFor(20*time.Minute, 5*time.Second)
	tasks := h.store.Tasks()
	if len(tasks) != 2 || len(h.got(early.SHA256))+len(h.got(late.SHA256)) != 0 {
		t.Fatalf("during the outage: tasks %+v, verdicts %v", tasks, h.verdicts)
	}
	for _, task := range tasks {
		// 20 minutes of retries from 10s doubling to 10m: 6 or 7 tries.
		if task.Failures < 5 || task.Failures > 7 || !strings.Contains(task.LastError, "unavailable") {
			t.Errorf("task %s: failures %d, last error %q", task.Key, task.Failures, task.LastError)
		}
	}
	// Half-way up: 503 from the proxy is still an outage.
	h.emu.SetDown(capetest.Unavailable)
	h.runFor(5*time.Minute, 10*time.Second)
	if len(h.store.Tasks()) != 2 {
		t.Fatal("a task was dropped during a 503 outage")
	}
	h.emu.SetDown(capetest.Up)
	for _, f := range []sandbox.File{early, late} {
		if v := h.until(f.SHA256, 30*time.Minute, 10*time.Second); v.State != sandbox.StateDone {
			t.Errorf("%s after the outage: %+v", f.SHA256, v)
		}
		if n := h.emu.Submissions(f.SHA256); n != 1 {
			t.Errorf("%s: %d submissions, want 1", f.SHA256, n)
		}
	}
}

func TestRestartResumesPollingWithoutResubmitting(t *testing.T) {
	f := mkfile("held over a restart", nil)
	queued := mkfile("queued at the restart", nil)
	h := newHarness(t, capetest.Config{Delay: 5 * time.Minute}, sandbox.Config{})
	h.schedule(f)
	h.cycle()
	if h.emu.Submissions(f.SHA256) != 1 {
		t.Fatal("not submitted before the restart")
	}
	h.emu.SetDown(capetest.Refuse)
	h.schedule(queued)
	h.cycle() // cannot upload: stays queued
	h.emu.SetDown(capetest.Up)

	var reopened []string
	h.cfg.Reopen = func(_ context.Context, t sandbox.Task) (io.ReadCloser, error) {
		reopened = append(reopened, t.Ref+":"+t.SHA256)
		if t.SHA256 != queued.SHA256 {
			return nil, fs.ErrNotExist
		}
		return io.NopCloser(strings.NewReader("queued at the restart")), nil
	}
	h.restart()
	if v := h.until(f.SHA256, 30*time.Minute, 15*time.Second); v.State != sandbox.StateDone || v.TaskID != "1" {
		t.Errorf("verdict after restart: %+v", v)
	}
	if v := h.until(queued.SHA256, 30*time.Minute, 15*time.Second); v.State != sandbox.StateDone {
		t.Errorf("queued file after restart: %+v", v)
	}
	if h.emu.Submissions(f.SHA256) != 1 || h.emu.Submissions(queued.SHA256) != 1 {
		t.Errorf("submissions %d and %d, want 1 each", h.emu.Submissions(f.SHA256), h.emu.Submissions(queued.SHA256))
	}
	if len(reopened) != 1 {
		t.Errorf("Reopen calls %v, want only the queued file", reopened)
	}
}

func TestRestartWithoutReopenEndsQueuedTasksInError(t *testing.T) {
	f := mkfile("lost bytes", nil)
	h := newHarness(t, capetest.Config{}, sandbox.Config{})
	h.emu.SetDown(capetest.Refuse)
	h.schedule(f)
	h.cycle()
	h.emu.SetDown(capetest.Up)
	h.restart()
	restarted := h.clk.Now()
	v := h.until(f.SHA256, 10*time.Minute, 10*time.Second)
	if v.State != sandbox.StateError || !strings.Contains(v.Error, "no longer available") {
		t.Errorf("verdict %+v", v)
	}
	if waited := v.At.Sub(restarted); waited < 2*time.Minute {
		t.Errorf("error verdict %v after the restart, before the re-attach grace", waited)
	}
	// Rescheduling after the error TTL brings the bytes back.
	h.clk.Advance(16 * time.Minute)
	if r := h.schedule(f); r[0].Cached {
		t.Errorf("error verdict outlived ErrorTTL: %+v", r[0])
	}
}

func TestRestartThenRescheduleReattachesContent(t *testing.T) {
	f := mkfile("re-attached", nil)
	h := newHarness(t, capetest.Config{}, sandbox.Config{})
	h.emu.SetDown(capetest.Refuse)
	h.schedule(f)
	h.cycle()
	h.emu.SetDown(capetest.Up)
	h.restart()
	h.cycle() // before the gateway resumes: must wait, not fail
	h.clk.Advance(30 * time.Second)
	if r := h.schedule(f); r[0].Cached || !r[0].Joined {
		t.Fatalf("re-attach: %+v", r[0])
	}
	if v := h.until(f.SHA256, 10*time.Minute, 10*time.Second); v.State != sandbox.StateDone {
		t.Errorf("verdict %+v", v)
	}
	if n := h.emu.Submissions(f.SHA256); n != 1 {
		t.Errorf("%d submissions", n)
	}
}

func TestFailedAnalysisIsResubmittedAtMostN(t *testing.T) {
	always, once := mkfile("always fails", nil), mkfile("fails once", nil)
	h := newHarness(t, capetest.Config{Delay: time.Minute, Verdicts: map[string]capetest.Verdict{
		always.SHA256: {Fail: "failed_analysis"},
		once.SHA256:   {Fail: "failed_processing", FailTimes: 1, Profile: "suspicious"},
	}}, sandbox.Config{MaxSubmissions: 3})
	h.schedule(always, once)
	va := h.until(always.SHA256, time.Hour, 15*time.Second)
	vo := h.until(once.SHA256, time.Hour, 15*time.Second)
	if va.State != sandbox.StateError || !strings.Contains(va.Error, "failed after 3 submissions") {
		t.Errorf("always failing: %+v", va)
	}
	if n := h.emu.Submissions(always.SHA256); n != 3 {
		t.Errorf("always failing: %d submissions, want 3", n)
	}
	if vo.State != sandbox.StateDone || vo.Malscore != 4.8 || h.emu.Submissions(once.SHA256) != 2 {
		t.Errorf("failing once: %+v after %d submissions", vo, h.emu.Submissions(once.SHA256))
	}
	h.runFor(time.Hour, time.Minute)
	if n := h.emu.Submissions(always.SHA256); n != 3 {
		t.Errorf("resubmitted after the error verdict: %d", n)
	}
}

func TestNeverFinishingTaskTimesOut(t *testing.T) {
	f := mkfile("stuck", nil)
	h := newHarness(t, capetest.Config{Verdicts: map[string]capetest.Verdict{f.SHA256: {NeverFinish: true}}},
		sandbox.Config{MaxWait: 20 * time.Minute, ErrorTTL: 10 * time.Minute})
	h.schedule(f)
	v := h.until(f.SHA256, time.Hour, 30*time.Second)
	if v.State != sandbox.StateTimeout || !strings.Contains(v.Error, "running") {
		t.Errorf("verdict %+v", v)
	}
	if r := h.schedule(f); !r[0].Cached || r[0].Verdict.State != sandbox.StateTimeout {
		t.Errorf("timeout not cached: %+v", r[0])
	}
	h.clk.Advance(11 * time.Minute)
	if r := h.schedule(f); r[0].Cached {
		t.Errorf("timeout cached past ErrorTTL: %+v", r[0])
	}
}

func TestRefusedFileGetsErrorVerdictWithoutRetrying(t *testing.T) {
	big := mkfile(strings.Repeat("A", 200), nil)
	comma := mkfile("ppap", map[string]string{"password": "a,b"})
	h := newHarness(t, capetest.Config{MaxSampleSize: 100}, sandbox.Config{})
	h.schedule(big, comma)
	h.cycle()
	for _, f := range []sandbox.File{big, comma} {
		vs := h.got(f.Key())
		if len(vs) != 1 || vs[0].State != sandbox.StateError || !strings.Contains(vs[0].Error, "refused") {
			t.Errorf("%s: %+v", f.Key(), vs)
		}
	}
	if n := h.emu.Requests("tasks/create/file"); n != 1 {
		t.Errorf("%d upload requests, want 1 (the oversized file; the comma is refused locally)", n)
	}
}

func TestSearchAdoptsExistingAnalysis(t *testing.T) {
	f := mkfile("seen before", map[string]string{"password": "pw"})
	other := mkfile("new", nil)
	h := newHarness(t, capetest.Config{Verdicts: map[string]capetest.Verdict{f.SHA256: {Profile: "family"}}},
		sandbox.Config{Search: true})
	if _, err := h.client.Submit(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	h.schedule(f, other)
	v := h.until(f.Key(), 10*time.Minute, 5*time.Second)
	if v.Family != "Emotet" || v.TaskID != "1" || v.Key != f.Key() || v.Key == f.SHA256 {
		t.Errorf("verdict %+v", v)
	}
	h.until(other.SHA256, 10*time.Minute, 5*time.Second)
	if h.emu.Submissions(f.SHA256) != 1 || h.emu.Submissions(other.SHA256) != 1 {
		t.Errorf("submissions %d and %d, want 1 each", h.emu.Submissions(f.SHA256), h.emu.Submissions(other.SHA256))
	}
	if n := h.emu.Requests("tasks/search"); n != 1 {
		t.Errorf("%d tasks/search requests, want 1 (files/view answers for unknown content)", n)
	}
}

func TestSearchDisabledFallsBackToUpload(t *testing.T) {
	f := mkfile("x", nil)
	h := newHarness(t, capetest.Config{}, sandbox.Config{Search: true})
	h.emu.SetDisabled("files/view", true)
	h.schedule(f)
	if v := h.until(f.SHA256, 10*time.Minute, 5*time.Second); v.State != sandbox.StateDone || h.emu.Submissions(f.SHA256) != 1 {
		t.Errorf("verdict %+v", v)
	}
}

func TestDuplicateRefusalAdoptsTheExistingTask(t *testing.T) {
	f := mkfile("dup", nil)
	h := newHarness(t, capetest.Config{Unique: true, Verdicts: map[string]capetest.Verdict{f.SHA256: {Profile: "malicious"}}}, sandbox.Config{})
	if _, err := h.client.Submit(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	h.schedule(f)
	if v := h.until(f.SHA256, 10*time.Minute, 5*time.Second); v.Malscore != 8.5 || v.TaskID != "1" {
		t.Errorf("verdict %+v", v)
	}
}

func TestPasswordIsPartOfTheKey(t *testing.T) {
	zipped := mkfile("PK\x03\x04 encrypted", nil)
	withPW := zipped
	withPW.Options = map[string]string{"password": "Abc12345"}
	h := newHarness(t, capetest.Config{Verdicts: map[string]capetest.Verdict{
		zipped.SHA256: {Profile: "malicious", Password: "Abc12345"}}}, sandbox.Config{})
	h.schedule(zipped)
	v0 := h.until(zipped.Key(), 10*time.Minute, 5*time.Second)
	r := h.schedule(withPW) // the password arrived in a second mail
	if r[0].Cached || r[0].Key == zipped.Key() {
		t.Fatalf("password variant served from the no-password cache: %+v", r[0])
	}
	v1 := h.until(withPW.Key(), 10*time.Minute, 5*time.Second)
	if v0.Malscore != 0 || v1.Malscore != 8.5 || h.emu.Submissions(zipped.SHA256) != 2 {
		t.Errorf("without password %v, with %v, submissions %d", v0.Malscore, v1.Malscore, h.emu.Submissions(zipped.SHA256))
	}
}

func TestMaxInFlightCapsSubmittedTasks(t *testing.T) {
	h := newHarness(t, capetest.Config{Delay: 10 * time.Minute}, sandbox.Config{MaxInFlight: 2})
	var files []sandbox.File
	for i := range 5 {
		files = append(files, mkfile(strings.Repeat("f", i+1), nil))
	}
	h.schedule(files...)
	h.runFor(5*time.Minute, 10*time.Second)
	if n := h.emu.TotalSubmissions(); n != 2 {
		t.Errorf("%d tasks submitted with MaxInFlight 2", n)
	}
	for _, f := range files {
		h.until(f.SHA256, 2*time.Hour, 30*time.Second)
	}
	if n := h.emu.TotalSubmissions(); n != 5 {
		t.Errorf("%d submissions in the end, want 5", n)
	}
}

func TestThrottledSandboxIsBackedOffAccordingToRetryAfter(t *testing.T) {
	f := mkfile("throttled", nil)
	h := newHarness(t, capetest.Config{Tokens: []string{"u"}, Throttle: "3/m", Delay: 30 * time.Second},
		sandbox.Config{Backoff: sandbox.Backoff{FirstPoll: 5 * time.Second, Poll: 5 * time.Second}})
	h.schedule(f)
	v := h.until(f.SHA256, 30*time.Minute, 5*time.Second)
	if v.State != sandbox.StateDone {
		t.Errorf("verdict %+v", v)
	}
	if n := h.emu.Throttled(); n > 2 {
		t.Errorf("the sandbox throttled %d requests: Retry-After not honoured", n)
	}
}

func TestBudgetLimitsRequestsPerCycle(t *testing.T) {
	h := newHarness(t, capetest.Config{Delay: time.Hour}, sandbox.Config{RequestsPerSecond: 2, Burst: 4, MaxInFlight: -1})
	for i := range 20 {
		h.schedule(mkfile(strings.Repeat("b", i+1), nil))
	}
	if st := h.cycle(); st.Claimed != 4 || st.Submitted != 4 {
		t.Errorf("first cycle %+v, want the burst of 4", st)
	}
	if st := h.cycle(); st.Claimed != 0 {
		t.Errorf("second cycle at the same instant %+v, want nothing", st)
	}
	h.clk.Advance(time.Second)
	if st := h.cycle(); st.Claimed != 2 {
		t.Errorf("a second later %+v, want 2", st)
	}
}

type failingStore struct {
	*sandboxtest.MemStore
	fail bool
}

var errStore = errors.New("disk full")

func (f *failingStore) GetVerdict(ctx context.Context, key string, now time.Time) (sandbox.Verdict, bool, error) {
	if f.fail {
		return sandbox.Verdict{}, false, errStore
	}
	return f.MemStore.GetVerdict(ctx, key, now)
}

func (f *failingStore) CountTasks(ctx context.Context) (sandbox.TaskCounts, error) {
	if f.fail {
		return sandbox.TaskCounts{}, errStore
	}
	return f.MemStore.CountTasks(ctx)
}

func TestStoreErrorsAreReturned(t *testing.T) {
	st := &failingStore{MemStore: sandboxtest.NewMemStore(), fail: true}
	s, err := sandbox.New(sandbox.Config{Client: &cape.Client{}, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Schedule(context.Background(), []sandbox.File{mkfile("x", nil)}); !errors.Is(err, errStore) {
		t.Errorf("Schedule: %v", err)
	}
	if _, err := s.Cycle(context.Background()); !errors.Is(err, errStore) {
		t.Errorf("Cycle: %v", err)
	}
	if _, err := s.Schedule(context.Background(), []sandbox.File{{SHA256: "nope"}}); err == nil {
		t.Error("bad sha256 accepted")
	}
	if _, err := sandbox.New(sandbox.Config{}); err == nil {
		t.Error("New without Client and Store")
	}
}

func TestRunDeliversVerdicts(t *testing.T) {
	emu, err := capetest.Start(capetest.Config{Default: capetest.Verdict{Profile: "suspicious"}})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	c, err := cape.New(cape.Config{URL: emu.URL})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan sandbox.Verdict, 1)
	s, err := sandbox.New(sandbox.Config{Client: c, Store: sandboxtest.NewMemStore(), Interval: 20 * time.Millisecond,
		Backoff:   sandbox.Backoff{FirstPoll: 10 * time.Millisecond, Poll: 10 * time.Millisecond},
		OnVerdict: func(_ string, v sandbox.Verdict) { got <- v }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	if _, err := s.Schedule(ctx, []sandbox.File{mkfile("real time", nil)}); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-got:
		if v.Malscore != 4.8 {
			t.Errorf("verdict %+v", v)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no verdict from Run")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
}

func TestShutdownDuringARequestPutsTheTaskBack(t *testing.T) {
	f := mkfile("interrupted", nil)
	h := newHarness(t, capetest.Config{}, sandbox.Config{})
	h.emu.SetLatency(2 * time.Second)
	h.schedule(f)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	if _, err := h.sched.Cycle(ctx); err != nil {
		t.Fatal(err)
	}
	tasks := h.store.Tasks()
	if len(tasks) != 1 || tasks[0].Failures != 0 || tasks[0].NextPoll.After(h.clk.Now()) || tasks[0].ID != "" {
		t.Errorf("after shutdown: %+v", tasks)
	}
	h.emu.SetLatency(0)
	h.restart()
	h.schedule(f) // the gateway resumes its held message
	if v := h.until(f.SHA256, 5*time.Minute, 5*time.Second); v.State != sandbox.StateDone {
		t.Errorf("verdict %+v", v)
	}
}

// metricValue reads a counter, gauge or histogram count from the default
// registry, where promauto registered the package's metrics.
func metricValue(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return 0
}

func TestMetrics(t *testing.T) {
	f := mkfile("counted", nil)
	h := newHarness(t, capetest.Config{Delay: 2 * time.Minute}, sandbox.Config{})
	ok := map[string]string{"result": "ok"}
	done := map[string]string{"state": "done"}
	before := map[string]float64{
		"submissions": metricValue(t, "mailguard_sandbox_submissions_total", ok),
		"hits":        metricValue(t, "mailguard_sandbox_cache_hits_total", nil),
		"polls":       metricValue(t, "mailguard_sandbox_polls_total", map[string]string{"result": "pending"}),
		"verdicts":    metricValue(t, "mailguard_sandbox_verdicts_total", done),
		"latency":     metricValue(t, "mailguard_sandbox_verdict_latency_seconds", done),
	}
	h.schedule(f)
	h.cycle()
	if g := metricValue(t, "mailguard_sandbox_pending_tasks", nil); g != 1 {
		t.Errorf("pending tasks gauge %v, want 1", g)
	}
	h.until(f.SHA256, 10*time.Minute, 20*time.Second)
	h.schedule(f)
	for name, m := range map[string]struct {
		metric string
		labels map[string]string
	}{
		"submissions": {"mailguard_sandbox_submissions_total", ok},
		"hits":        {"mailguard_sandbox_cache_hits_total", nil},
		"polls":       {"mailguard_sandbox_polls_total", map[string]string{"result": "pending"}},
		"verdicts":    {"mailguard_sandbox_verdicts_total", done},
		"latency":     {"mailguard_sandbox_verdict_latency_seconds", done},
	} {
		if got := metricValue(t, m.metric, m.labels); got <= before[name] {
			t.Errorf("%s: %v, not above %v", m.metric, got, before[name])
		}
	}
	h.emu.SetDown(capetest.Refuse)
	h.schedule(mkfile("outage", nil))
	errs := metricValue(t, "mailguard_sandbox_errors_total", map[string]string{"op": "submit", "kind": "unavailable"})
	h.cycle()
	if got := metricValue(t, "mailguard_sandbox_errors_total", map[string]string{"op": "submit", "kind": "unavailable"}); got != errs+1 {
		t.Errorf("errors{submit,unavailable} %v, want %v", got, errs+1)
	}
}
