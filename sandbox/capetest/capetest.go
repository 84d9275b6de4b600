// Package capetest is an emulator of the CAPEv2 REST API (/apiv2/) for tests
// and demos: the same paths with their trailing slashes and hash-length
// routes, the same form fields, task states, report JSON and error envelope
// quirks (HTTP 200 with "error": true; "error" as false, [] or absent on
// success; DRF 401/405/429 bodies; Django's HTML 404), following
// shared/reference/cape-api.md.
//
// Its answers are built from its own JSON fixtures in testdata/ (embedded),
// never from the client's structs: it imports nothing of mailguard, so a
// field name the client gets wrong cannot be "right" on both sides.
//
// Knobs make it slow, down (connection refused, 503, reset), throttled (429),
// wrong (malformed JSON) or stuck (never finishing, failing analyses), with a
// verdict per SHA-256; counters tell tests what the client did.
package capetest

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Verdict tells the emulator what analysing one SHA-256 yields. The zero
// Verdict is a clean report, reported after Config.Delay.
type Verdict struct {
	// Profile names the report fixture: "clean" (0.0), "suspicious" (4.8),
	// "malicious" (8.5) or "family" (10.0, YARA family Emotet). Empty means
	// "clean".
	Profile string `json:"profile,omitempty"`
	// Malscore and Malstatus override the fixture's values when set. A
	// Malstatus of "null" writes JSON null.
	Malscore  *float64 `json:"malscore,omitempty"`
	Malstatus string   `json:"malstatus,omitempty"`
	// Signatures replace the fixture's signatures (names from
	// testdata/signatures.json, or any name for a generic one).
	Signatures []string `json:"signatures,omitempty"`
	// Families replace the fixture's detections with YARA detections.
	Families []string `json:"families,omitempty"`
	// Delay is the time from submission to "reported" (0: Config.Delay).
	Delay Duration `json:"delay,omitempty"`
	// Fail makes the analysis end in this status instead of "reported":
	// failed_analysis, failed_processing, failed_reporting or banned.
	Fail string `json:"fail,omitempty"`
	// FailTimes limits Fail to the first FailTimes tasks of this content
	// (0: every task fails).
	FailTimes int `json:"fail_times,omitempty"`
	// NeverFinish keeps the task "running" forever.
	NeverFinish bool `json:"never_finish,omitempty"`
	// Recover makes the first task go "recovered" half-way, re-queued as a
	// new task that tasks/view and tasks/get/report follow.
	Recover bool `json:"recover,omitempty"`
	// Children makes an upload an archive demuxed on the host: one task per
	// child SHA-256 (each analysed with its own Verdict), the upload
	// registered as their parent sample.
	Children []string `json:"children,omitempty"`
	// Password, when set, is needed to see inside: an analysis without the
	// options=password=<Password> option yields a clean, empty report.
	Password string `json:"password,omitempty"`
	// NoMalscore drops the malscore key from the report (CAPE with
	// signature processing off).
	NoMalscore bool `json:"no_malscore,omitempty"`
}

// Duration is a time.Duration that reads and writes JSON as "5s" or a number
// of nanoseconds.
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("capetest: duration %q: %w", s, err)
		}
		*d = Duration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("capetest: duration %s: want a string like \"5s\"", b)
	}
	*d = Duration(n)
	return nil
}

// Config sets up an emulator. The zero Config is an open (no token) CAPE
// that reports every upload clean, at once.
type Config struct {
	// Addr is the listen address; default "127.0.0.1:0".
	Addr string
	// TLS serves HTTPS with a self-signed certificate (see Server.CertPEM).
	TLS bool
	// Tokens enables token authentication (api.conf token_auth_enabled)
	// with these keys; empty means anonymous access.
	Tokens []string
	// StaffTokens are keys of staff users: never throttled.
	StaffTokens []string
	// RevokedTokens are known but revoked keys (401 "API key has been
	// revoked.").
	RevokedTokens []string
	// ForbiddenTokens authenticate but lack permission (403).
	ForbiddenTokens []string
	// Throttle is a DRF rate such as "5/m" (CAPE's default subscription),
	// shared by every endpoint per user (or per client IP without tokens);
	// empty means no throttling.
	Throttle string
	// Delay is the default time from submission to "reported".
	Delay time.Duration
	// Now is the clock for task states and throttling; default time.Now.
	Now func() time.Time
	// Verdicts maps lowercase SHA-256 to what analysing it yields.
	Verdicts map[string]Verdict
	// Default applies to content not in Verdicts.
	Default Verdict
	// MaxSampleSize is web.conf max_sample_size; default 30000000.
	MaxSampleSize int64
	// Machines are VM labels; default ["win10"].
	Machines []string
	// MachineTags are the tags the machines carry; default ["x64"].
	MachineTags []string
	// Unique refuses content seen in the last 24 hours (web.conf
	// [uniq_submission] enabled), as the "unique" form field does.
	Unique bool
	// ReportsForbidden answers report downloads with the HTML permission
	// page (web.conf reports_dl_allowed_to_all = no).
	ReportsForbidden bool
	// APIURL is api.conf [api] url, the prefix of "url" in submit answers;
	// default "http://example.tld".
	APIURL string
}

// DownMode says how the emulator fails when it is down.
type DownMode int

// Down modes.
const (
	Up          DownMode = iota // serve normally
	Refuse                      // close the listener: connection refused
	Unavailable                 // answer 503 with an nginx HTML page
	Reset                       // accept, then close the connection without answering
)

// Server is a running emulator.
type Server struct {
	// URL is the API base, ending in "/apiv2/".
	URL string

	emu      *emulator
	addr     string
	tlsConf  *tls.Config
	certPEM  []byte
	mu       sync.Mutex
	srv      *http.Server
	down     DownMode
	closed   bool
	serveErr chan error
}

// Start starts an emulator.
func Start(cfg Config) (*Server, error) {
	emu, err := newEmulator(cfg)
	if err != nil {
		return nil, err
	}
	addr := cfg.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("capetest: listen: %w", err)
	}
	s := &Server{emu: emu, addr: ln.Addr().String(), serveErr: make(chan error, 4)}
	scheme := "http"
	if cfg.TLS {
		s.tlsConf, s.certPEM, err = selfSigned()
		if err != nil {
			ln.Close()
			return nil, err
		}
		scheme = "https"
	}
	s.URL = scheme + "://" + s.addr + "/apiv2/"
	s.serve(ln)
	return s, nil
}

func (s *Server) serve(ln net.Listener) {
	if s.tlsConf != nil {
		ln = tls.NewListener(ln, s.tlsConf)
	}
	srv := &http.Server{Handler: http.HandlerFunc(s.handle), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: log.New(io.Discard, "", 0)}
	s.srv = srv
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.serveErr <- err
		}
	}()
}

// Addr returns the host:port the emulator listens on.
func (s *Server) Addr() string { return s.addr }

// CertPEM returns the PEM certificate of a TLS emulator (nil without TLS),
// for a client's CA file.
func (s *Server) CertPEM() []byte { return s.certPEM }

// Close stops the emulator.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.srv != nil {
		return s.srv.Close()
	}
	return nil
}

// SetDown puts the emulator down in mode m, or back Up. Refuse closes the
// listener and every connection; Up listens again on the same address.
func (s *Server) SetDown(m DownMode) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("capetest: server closed")
	}
	prev := s.down
	s.down = m
	switch {
	case m == Refuse && prev != Refuse:
		err := s.srv.Close()
		s.srv = nil
		return err
	case m != Refuse && prev == Refuse:
		ln, err := net.Listen("tcp", s.addr)
		if err != nil {
			s.down = prev
			return fmt.Errorf("capetest: listen again: %w", err)
		}
		s.serve(ln)
	}
	return nil
}

func (s *Server) downMode() DownMode {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.down
}

// SetMalformed makes every JSON answer (reports too) arrive cut in half.
func (s *Server) SetMalformed(on bool) { s.emu.setKnob(func(k *knobs) { k.malformed = on }) }

// SetLatency delays every answer by d (a slow sandbox).
func (s *Server) SetLatency(d time.Duration) { s.emu.setKnob(func(k *knobs) { k.latency = d }) }

// SetThrottle changes the DRF rate ("5/m"; "" for none).
func (s *Server) SetThrottle(rate string) error {
	r, err := parseRate(rate)
	if err != nil {
		return err
	}
	s.emu.setKnob(func(k *knobs) { k.throttle = r })
	return nil
}

// SetDelay changes the default time from submission to "reported" for new
// tasks.
func (s *Server) SetDelay(d time.Duration) { s.emu.setKnob(func(k *knobs) { k.delay = d }) }

// SetVerdict sets what analysing sha256 yields, for new tasks.
func (s *Server) SetVerdict(sha256 string, v Verdict) {
	s.emu.mu.Lock()
	defer s.emu.mu.Unlock()
	s.emu.verdicts[strings.ToLower(sha256)] = v
}

// SetDisabled switches an endpoint off in api.conf, so that it answers 200
// with its "… is Disabled" error. Endpoint names are route names as in
// Requests: "tasks/create/file", "tasks/status", "tasks/view",
// "tasks/get/report", "tasks/search", "files/view".
func (s *Server) SetDisabled(route string, off bool) {
	s.emu.setKnob(func(k *knobs) {
		if k.disabled == nil {
			k.disabled = map[string]bool{}
		}
		k.disabled[route] = off
	})
}

// Submissions returns how many uploads of sha256 the emulator accepted.
func (s *Server) Submissions(sha256 string) int {
	s.emu.mu.Lock()
	defer s.emu.mu.Unlock()
	return s.emu.submissions[strings.ToLower(sha256)]
}

// TotalSubmissions returns how many uploads the emulator accepted.
func (s *Server) TotalSubmissions() int {
	s.emu.mu.Lock()
	defer s.emu.mu.Unlock()
	n := 0
	for _, c := range s.emu.submissions {
		n += c
	}
	return n
}

// Requests returns how many requests reached route (for example
// "tasks/status", "tasks/create/file", "tasks/get/report"), whatever the
// answer; "" counts every request, "404" unmatched paths.
func (s *Server) Requests(route string) int {
	s.emu.mu.Lock()
	defer s.emu.mu.Unlock()
	if route == "" {
		n := 0
		for _, c := range s.emu.requests {
			n += c
		}
		return n
	}
	return s.emu.requests[route]
}

// RequestCounts returns a copy of the per-route request counters.
func (s *Server) RequestCounts() map[string]int {
	s.emu.mu.Lock()
	defer s.emu.mu.Unlock()
	m := make(map[string]int, len(s.emu.requests))
	for k, v := range s.emu.requests {
		m[k] = v
	}
	return m
}

// MaxConcurrent returns the largest number of requests served at once.
func (s *Server) MaxConcurrent() int {
	s.emu.mu.Lock()
	defer s.emu.mu.Unlock()
	return s.emu.maxActive
}

// Throttled returns how many requests were answered 429.
func (s *Server) Throttled() int {
	s.emu.mu.Lock()
	defer s.emu.mu.Unlock()
	return s.emu.throttled
}

// ResetCounters zeroes the request, concurrency and throttle counters (not
// the submissions or tasks).
func (s *Server) ResetCounters() {
	s.emu.mu.Lock()
	defer s.emu.mu.Unlock()
	s.emu.requests = map[string]int{}
	s.emu.maxActive = 0
	s.emu.throttled = 0
}

// Counters is a snapshot of the counters, as the capeemu control endpoint
// serves it.
type Counters struct {
	Requests      map[string]int `json:"requests"`
	Submissions   map[string]int `json:"submissions"`
	Tasks         int            `json:"tasks"`
	MaxConcurrent int            `json:"max_concurrent"`
	Throttled     int            `json:"throttled"`
}

// Counters returns a snapshot of every counter.
func (s *Server) Counters() Counters {
	s.emu.mu.Lock()
	defer s.emu.mu.Unlock()
	c := Counters{Requests: map[string]int{}, Submissions: map[string]int{},
		Tasks: len(s.emu.tasks), MaxConcurrent: s.emu.maxActive, Throttled: s.emu.throttled}
	for k, v := range s.emu.requests {
		c.Requests[k] = v
	}
	for k, v := range s.emu.submissions {
		c.Submissions[k] = v
	}
	return c
}

// TaskStatus returns the current status of task id ("" if it does not
// exist), as tasks/status would answer now.
func (s *Server) TaskStatus(id int) string {
	s.emu.mu.Lock()
	defer s.emu.mu.Unlock()
	t := s.emu.tasks[id]
	if t == nil {
		return ""
	}
	return s.emu.statusLocked(t, s.emu.now())
}
