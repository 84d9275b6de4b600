package smtp

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

// downstream is a test SMTP server (go-smtp) that records what it gets and
// can refuse recipients.
type downstream struct {
	addr string
	srv  *gosmtp.Server

	mu    sync.Mutex
	helos []string // every session's EHLO name, in order (pre- and post-TLS)
	msgs  []dsMsg

	rcptErr func(rcpt string) error
	dataErr error
}

type dsMsg struct {
	from  string
	utf8  bool
	body  string // BODY= parameter
	rcpts []string
	data  []byte
	tls   bool
	helo  string
}

type dsSession struct {
	ds   *downstream
	conn *gosmtp.Conn
	cur  dsMsg
}

func (s *dsSession) Reset()        { s.cur = dsMsg{} }
func (s *dsSession) Logout() error { return nil }
func (s *dsSession) Mail(from string, o *gosmtp.MailOptions) error {
	s.cur = dsMsg{from: from, utf8: o.UTF8, body: string(o.Body)}
	return nil
}
func (s *dsSession) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	s.ds.mu.Lock()
	f := s.ds.rcptErr
	s.ds.mu.Unlock()
	if f != nil {
		if err := f(to); err != nil {
			return err
		}
	}
	s.cur.rcpts = append(s.cur.rcpts, to)
	return nil
}
func (s *dsSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, isTLS := s.conn.TLSConnectionState()
	m := s.cur
	m.data, m.tls, m.helo = b, isTLS, s.conn.Hostname()
	s.ds.mu.Lock()
	defer s.ds.mu.Unlock()
	s.ds.msgs = append(s.ds.msgs, m)
	return s.ds.dataErr
}

func startDownstream(t testing.TB, tlsCfg *tls.Config, configure func(*gosmtp.Server)) *downstream {
	t.Helper()
	ds := &downstream{}
	be := gosmtp.BackendFunc(func(c *gosmtp.Conn) (gosmtp.Session, error) {
		ds.mu.Lock()
		ds.helos = append(ds.helos, c.Hostname())
		ds.mu.Unlock()
		return &dsSession{ds: ds, conn: c}, nil
	})
	s := gosmtp.NewServer(be)
	s.Domain = "downstream.test.example"
	s.TLSConfig = tlsCfg
	s.EnableSMTPUTF8 = true
	s.ErrorLog = debugLogger{testLoggerOrDiscard(t)}
	if configure != nil {
		configure(s)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ds.addr, ds.srv = l.Addr().String(), s
	go func() { _ = s.Serve(l) }()
	t.Cleanup(func() { _ = s.Close() })
	return ds
}

func (ds *downstream) messages() []dsMsg {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	return append([]dsMsg(nil), ds.msgs...)
}

func (ds *downstream) helloNames() []string {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	return append([]string(nil), ds.helos...)
}

func testLoggerOrDiscard(t testing.TB) *slog.Logger {
	if l := testLogger(t); l != nil {
		return l
	}
	return slog.New(slog.DiscardHandler)
}

// smtpSink runs Postfix's smtp-sink on a loopback port with extra options,
// dumping each transaction into dir; it is killed when the test ends.
func smtpSink(t testing.TB, dir string, opts ...string) string {
	t.Helper()
	need(t, "smtp-sink")
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	args := append([]string{"-u", "root", "-h", "sink.test.example", "-d", filepath.Join(dir, "%M.")}, opts...)
	args = append(args, addr, "100")
	cmd := exec.Command("smtp-sink", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("smtp-sink: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			// smtp-sink may exit if it could not bind; make sure it is ours.
			_ = c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("smtp-sink did not start: %v\n%s", err, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sinkDumps returns the transactions smtp-sink wrote to dir.
func sinkDumps(t testing.TB, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.*"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

// memOutbox is an in-memory Outbox that records how messages are settled.
type memOutbox struct {
	mu      sync.Mutex
	now     func() time.Time
	queued  []*memItem
	done    map[string][]RcptResult
	failed  map[string]memFail
	retries []memRetry
	claims  int
}

type memItem struct {
	m      Outgoing
	due    time.Time
	leased bool
	data   []byte
}

type memFail struct {
	results []RcptResult
	dsn     []byte
}

type memRetry struct {
	id      string
	at      time.Time
	results []RcptResult
	dsn     []byte
}

func newMemOutbox(now func() time.Time) *memOutbox {
	return &memOutbox{now: now, done: map[string][]RcptResult{}, failed: map[string]memFail{}}
}

func (o *memOutbox) add(m Outgoing, data []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	it := &memItem{m: m, due: o.now(), data: data}
	it.m.Open = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
	o.queued = append(o.queued, it)
}

func (o *memOutbox) Claim(_ context.Context, max int) ([]Outgoing, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.claims++
	var out []Outgoing
	for _, it := range o.queued {
		if len(out) >= max {
			break
		}
		if !it.leased && !it.due.After(o.now()) {
			it.leased = true
			out = append(out, it.m)
		}
	}
	return out, nil
}

func (o *memOutbox) remove(id string) *memItem {
	for i, it := range o.queued {
		if it.m.ID == id {
			o.queued = append(o.queued[:i], o.queued[i+1:]...)
			return it
		}
	}
	return nil
}

func (o *memOutbox) Done(_ context.Context, id string, results []RcptResult) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.remove(id)
	o.done[id] = results
	return nil
}

func (o *memOutbox) Retry(_ context.Context, id string, at time.Time, results []RcptResult, dsn []byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.retries = append(o.retries, memRetry{id, at, results, dsn})
	it := o.remove(id)
	if it == nil {
		return nil
	}
	var left []string
	for _, r := range results {
		if !r.Final() {
			left = append(left, r.Rcpt)
		}
	}
	it.m.Rcpts, it.m.Attempts, it.due, it.leased = left, it.m.Attempts+1, at, false
	o.queued = append(o.queued, it)
	return nil
}

func (o *memOutbox) Fail(_ context.Context, id string, results []RcptResult, dsn []byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.remove(id)
	o.failed[id] = memFail{results, dsn}
	return nil
}

func (o *memOutbox) snapshot() (done map[string][]RcptResult, failed map[string]memFail, retries []memRetry, queued int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	done = map[string][]RcptResult{}
	for k, v := range o.done {
		done[k] = v
	}
	failed = map[string]memFail{}
	for k, v := range o.failed {
		failed[k] = v
	}
	return done, failed, append([]memRetry(nil), o.retries...), len(o.queued)
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func testMessage(subject string) []byte {
	return []byte("From: Alice <alice@sender.example>\r\nTo: bob@corp.example\r\nSubject: " + subject +
		"\r\nMessage-ID: <m1@sender.example>\r\n\r\nHello Bob,\r\n.leading dot\r\nbye\r\n")
}
