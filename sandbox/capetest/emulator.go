package capetest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// knobs are the settings a test may change while the emulator runs.
type knobs struct {
	malformed bool
	latency   time.Duration
	throttle  rateSpec
	delay     time.Duration
	disabled  map[string]bool
}

// sample is a row of CAPE's samples table.
type sample struct {
	id                             int
	md5, sha1, sha256, sha512, crc string
	size                           int64
	fileType                       string
	parent                         int // parent sample id (archive demux), 0 if none
	firstSeen                      time.Time
}

// task is a row of CAPE's tasks table plus what the emulator decided about
// its future when it was created.
type task struct {
	id       int
	sample   *sample
	parent   *sample // the uploaded archive, for child tasks
	target   string
	form     submitForm
	added    time.Time
	delay    time.Duration
	fate     string // final status: "reported" or a failure status
	never    bool
	recover  bool
	recovery int // id of the task that replaced this one ("recovered")
	verdict  Verdict
	locked   bool // a password was needed and not given
	report   []byte
}

type emulator struct {
	cfg   Config
	now   func() time.Time
	fx    *fixtures
	users userSet

	mu          sync.Mutex
	k           knobs
	verdicts    map[string]Verdict
	samples     map[int]*sample
	bySHA256    map[string]*sample
	byMD5       map[string]*sample
	bySHA1      map[string]*sample
	tasks       map[int]*task
	nextSample  int
	nextTask    int
	seen        map[string]int // tasks created per content, for Fail/FailTimes
	submissions map[string]int
	requests    map[string]int
	active      int
	maxActive   int
	throttled   int
	history     map[string][]time.Time // DRF throttle history per user
}

func newEmulator(cfg Config) (*emulator, error) {
	fx, err := loadFixtures()
	if err != nil {
		return nil, err
	}
	thr, err := parseRate(cfg.Throttle)
	if err != nil {
		return nil, err
	}
	if cfg.MaxSampleSize == 0 {
		cfg.MaxSampleSize = 30000000
	}
	if len(cfg.Machines) == 0 {
		cfg.Machines = []string{"win10"}
	}
	if len(cfg.MachineTags) == 0 {
		cfg.MachineTags = []string{"x64"}
	}
	if cfg.APIURL == "" {
		cfg.APIURL = "http://example.tld"
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	e := &emulator{
		cfg: cfg, now: now, fx: fx, users: newUserSet(cfg),
		k:        knobs{throttle: thr, delay: cfg.Delay},
		verdicts: map[string]Verdict{}, samples: map[int]*sample{},
		bySHA256: map[string]*sample{}, byMD5: map[string]*sample{}, bySHA1: map[string]*sample{},
		tasks: map[int]*task{}, nextSample: 1, nextTask: 1,
		seen: map[string]int{}, submissions: map[string]int{}, requests: map[string]int{},
		history: map[string][]time.Time{},
	}
	for k, v := range cfg.Verdicts {
		e.verdicts[strings.ToLower(k)] = v
	}
	return e, nil
}

func (e *emulator) setKnob(f func(*knobs)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f(&e.k)
}

func (e *emulator) knobs() knobs {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.k
}

// route is one /apiv2/ URL pattern (web/apiv2/urls.py), anchored and ending
// in a slash like Django's.
type route struct {
	name    string
	re      *regexp.Regexp
	methods []string
	handle  func(e *emulator, w http.ResponseWriter, r *http.Request, m []string)
}

var routes = []route{
	{"tasks/create/file", regexp.MustCompile(`^tasks/create/file/$`), []string{"POST"}, (*emulator).createFile},
	{"tasks/status", regexp.MustCompile(`^tasks/status/(\d+)/$`), []string{"GET", "POST"}, (*emulator).taskStatus},
	{"tasks/view", regexp.MustCompile(`^tasks/view/(\d+)/$`), []string{"GET"}, (*emulator).taskView},
	{"tasks/get/report", regexp.MustCompile(`^tasks/get/report/(\d+)/(?:(\w+)/(?:(\w{3})/)?)?$`), []string{"GET"}, (*emulator).taskReport},
	{"tasks/search", regexp.MustCompile(`^tasks/search/(?:(md5)/([a-fA-F\d]{32})|(sha1)/([a-fA-F\d]{40})|(sha256)/([a-fA-F\d]{64}))/$`), []string{"GET"}, (*emulator).taskSearch},
	{"files/view", regexp.MustCompile(`^files/view/(?:(md5)/([a-fA-F\d]{32})|(sha1)/([a-fA-F\d]{40})|(sha256)/([a-fA-F\d]{64})|(id)/(\d+))/$`), []string{"GET"}, (*emulator).filesView},
	{"cuckoo/status", regexp.MustCompile(`^cuckoo/status/$`), []string{"GET"}, (*emulator).cuckooStatus},
}

func matchRoute(path string) (*route, []string) {
	rest, ok := strings.CutPrefix(path, "/apiv2/")
	if !ok {
		return nil, nil
	}
	for i := range routes {
		if m := routes[i].re.FindStringSubmatch(rest); m != nil {
			return &routes[i], m
		}
	}
	return nil, nil
}

// handle serves one request: down modes, counters, latency, routing, DRF
// authentication and throttling, then the view.
func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	e := s.emu
	rt, m := matchRoute(r.URL.Path)
	name := "404"
	if rt != nil {
		name = rt.name
	}
	done := e.enter(name)
	defer done()

	switch s.downMode() {
	case Reset:
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	case Unavailable:
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Retry-After", "2")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write(e.fx.unavailable)
		return
	}
	k := e.knobs()
	if k.latency > 0 {
		t := time.NewTimer(k.latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if rt == nil {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		w.Write(e.fx.notFound)
		return
	}
	if !e.authenticate(w, r, k) {
		return
	}
	if !slices.Contains(rt.methods, r.Method) {
		e.writeJSON(w, http.StatusMethodNotAllowed, map[string]any{"detail": fmt.Sprintf("Method %q not allowed.", r.Method)})
		return
	}
	rt.handle(e, w, r, m)
}

// enter counts a request and tracks concurrency; the returned func leaves.
func (e *emulator) enter(route string) func() {
	e.mu.Lock()
	e.requests[route]++
	e.active++
	if e.active > e.maxActive {
		e.maxActive = e.active
	}
	e.mu.Unlock()
	return func() {
		e.mu.Lock()
		e.active--
		e.mu.Unlock()
	}
}

// writeJSON writes v as DRF's JSONRenderer does. With the malformed knob the
// body is cut in half.
func (e *emulator) writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	e.writeBody(w, status, "application/json", b)
}

func (e *emulator) writeBody(w http.ResponseWriter, status int, ctype string, b []byte) {
	if e.knobs().malformed && strings.Contains(ctype, "json") {
		b = b[:len(b)/2]
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Vary", "Accept")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// fail writes CAPE's logical failure: HTTP 200 {"error": true, "error_value": …}.
func (e *emulator) fail(w http.ResponseWriter, msg string) {
	e.writeJSON(w, http.StatusOK, map[string]any{"error": true, "error_value": msg})
}

func (e *emulator) disabled(route string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.k.disabled[route]
}

// cuckooStatus serves cuckoo/status/ (cape-api.md §9).
func (e *emulator) cuckooStatus(w http.ResponseWriter, r *http.Request, _ []string) {
	e.mu.Lock()
	data := cloneObject(e.fx.status)
	counts := object(data, "tasks")
	now := e.now()
	counts["total"] = len(e.tasks)
	for _, st := range []string{"pending", "running", "completed", "reported"} {
		counts[st] = 0
	}
	for _, t := range e.tasks {
		st := e.statusLocked(t, now)
		if n, ok := counts[st].(int); ok {
			counts[st] = n + 1
		}
	}
	e.mu.Unlock()
	e.writeJSON(w, http.StatusOK, map[string]any{"error": []any{}, "data": data})
}
