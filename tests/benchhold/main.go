// Command benchhold measures what held messages cost mailguard and how fast
// a verdict turns into a delivery. It starts `mailguard serve` with a
// sandbox, the CAPE emulator (sandbox/capetest) in this process with its
// clock stopped, so that no analysis finishes, and an SMTP receiver as the
// downstream; it fills the gateway with -n held messages through SMTP (each
// with its own script attachment, so each waits for its own task), then
// reports:
//
//   - the fill rate, the store's size on disk, mailguard's RSS;
//
//   - over -window while everything waits: mailguard's CPU use and the
//     requests per minute it sends to the sandbox, by route;
//
//   - how long `mailguard quarantine list --state held --json` takes;
//
//   - after -release of the tasks report at once (the emulator's clock
//     jumps past their analysis time): the time from that moment to
//     mailguard having the verdict (sandbox_verdict event), from the
//     verdict to the downstream receiving the message, and in total,
//     as p50/p90/p99/max.
//
//     go run ./tests/benchhold [-n 10000] [-release 200] [-poll 60s] [-rpm 600] [-max-concurrent 10000] [-window 2m]
//
// It talks to loopback only and needs no root.
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/mailguard/mailguard/sandbox/capetest"
)

type config struct {
	n, release, rpm, maxConc, senders int
	poll, window                      time.Duration
	bin, keep, logLevel               string
}

func main() {
	var c config
	flag.IntVar(&c.n, "n", 10000, "held messages")
	flag.IntVar(&c.release, "release", 200, "messages whose verdicts arrive at once at the end (at most -n)")
	flag.DurationVar(&c.poll, "poll", time.Minute, "sandbox.poll_interval")
	flag.IntVar(&c.rpm, "rpm", 600, "sandbox.requests_per_minute")
	flag.IntVar(&c.maxConc, "max-concurrent", 0, "sandbox.max_concurrent (0: -n, every task at the sandbox)")
	flag.DurationVar(&c.window, "window", 2*time.Minute, "how long to watch the waiting gateway")
	flag.IntVar(&c.senders, "senders", 8, "parallel SMTP connections while filling")
	flag.StringVar(&c.bin, "bin", "", "mailguard binary (default: build ./cmd/mailguard)")
	flag.StringVar(&c.keep, "keep", "", "keep the work directory here instead of a temporary one")
	flag.StringVar(&c.logLevel, "log", "warn", "mailguard's log level (its log goes to stderr)")
	flag.Parse()
	c.release = min(c.release, c.n)
	if c.maxConc <= 0 {
		c.maxConc = c.n
	}
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "benchhold:", err)
		os.Exit(1)
	}
}

func run(c config) error {
	work := c.keep
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "benchhold"); err != nil {
			return err
		}
		defer os.RemoveAll(work)
	}
	if c.bin == "" {
		c.bin = filepath.Join(work, "mailguard")
		b := exec.Command("go", "build", "-o", c.bin, "./cmd/mailguard")
		b.Stdout, b.Stderr = os.Stderr, os.Stderr
		if err := b.Run(); err != nil {
			return fmt.Errorf("build: %w", err)
		}
	}
	clk := &stoppedClock{t: time.Now()}
	emu, err := capetest.Start(capetest.Config{Now: clk.now, Default: capetest.Verdict{NeverFinish: true}})
	if err != nil {
		return err
	}
	defer emu.Close()
	recv, err := startReceiver()
	if err != nil {
		return err
	}
	defer recv.close()
	mg, err := startMailguard(c, work, emu.URL, recv.addr)
	if err != nil {
		return err
	}
	defer mg.stop()

	fmt.Printf("# benchhold: %d held messages, %d released at once; poll_interval %s, requests_per_minute %d, max_concurrent %d; %s; %d CPUs\n",
		c.n, c.release, c.poll, c.rpm, c.maxConc, time.Now().UTC().Format(time.RFC3339), numCPU())
	msgs := makeMessages(c.n)
	for _, m := range msgs[:c.release] {
		// Reported one hour after submission, as the clock will say.
		emu.SetVerdict(m.sha, capetest.Verdict{Profile: "clean", Delay: capetest.Duration(time.Hour)})
	}
	if err := fill(c, mg, emu, msgs); err != nil {
		return err
	}
	watch(c, mg, emu)
	listHeld(mg, c.n)
	return releaseAndMeasure(c, mg, emu, clk, recv, msgs[:c.release])
}

// stoppedClock is the emulator's clock: it stands still until moved.
type stoppedClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *stoppedClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *stoppedClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// message is one test message with a unique script attachment.
type message struct {
	tag, sha string
	body     []byte
}

func makeMessages(n int) []*message {
	out := make([]*message, n)
	for i := range out {
		tag := fmt.Sprintf("hold-%06d", i)
		script := []byte("var sh = new ActiveXObject('WScript.Shell');\r\nsh.Run('notepad.exe');\r\n// " + tag + "\r\n")
		var b strings.Builder
		b.WriteString("From: Partner <partner@partner.example>\r\nTo: bob@corp.example\r\nSubject: " + tag + "\r\n")
		b.WriteString("Message-ID: <" + tag + "@partner.example>\r\nMIME-Version: 1.0\r\n")
		b.WriteString("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n")
		b.WriteString("--b\r\nContent-Type: application/octet-stream; name=run.js\r\nContent-Disposition: attachment; filename=run.js\r\n")
		b.WriteString("Content-Transfer-Encoding: base64\r\n\r\n" + base64.StdEncoding.EncodeToString(script) + "\r\n--b--\r\n")
		out[i] = &message{tag: tag, sha: sha256Hex(script), body: []byte(b.String())}
	}
	return out
}

// fill sends every message (the ones to release first, so that they are
// submitted whatever max_concurrent is) and waits until the sandbox has
// every task it may have.
func fill(c config, mg *mailguard, emu *capetest.Server, msgs []*message) error {
	start := time.Now()
	jobs := make(chan *message)
	var failed atomic.Int64
	var wg sync.WaitGroup
	for range c.senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := sendAll(mg.addr, jobs); err != nil {
				fmt.Fprintln(os.Stderr, "send:", err)
				failed.Add(1)
				for range jobs {
				}
			}
		}()
	}
	for _, m := range msgs {
		jobs <- m
	}
	close(jobs)
	wg.Wait()
	if failed.Load() > 0 {
		return errors.New("sending failed")
	}
	took := time.Since(start)
	fmt.Printf("fill: %d messages accepted and held in %.1fs (%.0f msg/s, %d parallel connections)\n",
		len(msgs), took.Seconds(), float64(len(msgs))/took.Seconds(), c.senders)
	want := min(c.maxConc, len(msgs))
	deadline := time.Now().Add(30 * time.Minute)
	for emu.TotalSubmissions() < want {
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d tasks submitted", emu.TotalSubmissions(), want)
		}
		time.Sleep(200 * time.Millisecond)
	}
	fmt.Printf("fill: %d tasks at the sandbox %.1fs after the first message\n", want, time.Since(start).Seconds())
	return nil
}

// sendAll sends messages over one SMTP connection until jobs is closed.
// (go-smtp's client, not net/smtp: net/smtp asks for SMTPUTF8 whenever
// the server offers it, which real MTAs do only for mail that needs it.)
func sendAll(addr string, jobs <-chan *message) error {
	c, err := gosmtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("sender.partner.example"); err != nil {
		return err
	}
	for m := range jobs {
		if err := c.Mail("partner@partner.example", nil); err != nil {
			return err
		}
		if err := c.Rcpt("bob@corp.example", nil); err != nil {
			return err
		}
		w, err := c.Data()
		if err != nil {
			return err
		}
		if _, err := w.Write(m.body); err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return fmt.Errorf("%s: %w", m.tag, err)
		}
	}
	return c.Quit()
}

// watch measures the waiting gateway over the window.
func watch(c config, mg *mailguard, emu *capetest.Server) {
	emu.ResetCounters()
	cpu0, t0 := mg.cpuSeconds(), time.Now()
	time.Sleep(c.window)
	cpu1, el := mg.cpuSeconds(), time.Since(t0)
	reqs := emu.RequestCounts()
	var routes []string
	total := 0
	for r, n := range reqs {
		routes = append(routes, fmt.Sprintf("%s %.1f", r, float64(n)/el.Minutes()))
		total += n
	}
	sort.Strings(routes)
	fmt.Printf("waiting: %d held over %.0fs: mailguard CPU %.1f%% of one core; sandbox requests %.1f/min (%s); budget %d/min\n",
		c.n, el.Seconds(), 100*(cpu1-cpu0)/el.Seconds(), float64(total)/el.Minutes(), strings.Join(routes, ", "), c.rpm)
	fmt.Printf("waiting: store %s on disk (%s per held message); mailguard RSS %d MiB (peak %d MiB)\n",
		mib(mg.storeBytes()), kib(mg.storeBytes()/int64(c.n)), mg.rss("VmRSS")>>20, mg.rss("VmHWM")>>20)
}

// listHeld times the review CLI over the held messages.
func listHeld(mg *mailguard, n int) {
	start := time.Now()
	out, err := mg.cli("quarantine", "list", "--state", "held", "--json")
	took := time.Since(start)
	var items []json.RawMessage
	if err == nil {
		err = json.Unmarshal(out, &items)
	}
	if err != nil {
		fmt.Printf("list: quarantine list failed: %v\n", err)
		return
	}
	fmt.Printf("list: `quarantine list --state held --json` printed %d messages (%s) in %.2fs\n",
		len(items), mib(int64(len(out))), took.Seconds())
	if len(items) != n {
		fmt.Printf("list: WARNING: %d held, want %d\n", len(items), n)
	}
}

// releaseAndMeasure makes the tasks of rel report at once and measures
// until each message has reached the receiver.
func releaseAndMeasure(c config, mg *mailguard, emu *capetest.Server, clk *stoppedClock, recv *receiver, rel []*message) error {
	if len(rel) == 0 {
		return nil
	}
	emu.ResetCounters()
	cpu0 := mg.cpuSeconds()
	released := time.Now()
	clk.add(2 * time.Hour)
	want := map[string]bool{}
	for _, m := range rel {
		want[m.tag] = true
	}
	deadline := released.Add(max(10*time.Minute, 4*c.poll))
	for recv.count(want) < len(rel) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	done := time.Since(released)
	arrived := recv.count(want)
	verdictAt, err := mg.verdictTimes()
	if err != nil {
		return err
	}
	var toVerdict, toDelivery, total []time.Duration
	for _, m := range rel {
		got, ok := recv.arrival(m.tag)
		if !ok {
			continue
		}
		total = append(total, got.at.Sub(released))
		if v, ok := verdictAt[got.id]; ok {
			toVerdict = append(toVerdict, v.Sub(released))
			toDelivery = append(toDelivery, got.at.Sub(v))
		}
	}
	fmt.Printf("release: %d verdicts at once; %d delivered after %.2fs; %d sandbox requests meanwhile; mailguard CPU %.1fs\n",
		len(rel), arrived, done.Seconds(), emu.Requests(""), mg.cpuSeconds()-cpu0)
	fmt.Printf("release: %-32s %s\n", "reported → mailguard has verdict", dist(toVerdict))
	fmt.Printf("release: %-32s %s\n", "verdict → downstream received", dist(toDelivery))
	fmt.Printf("release: %-32s %s\n", "reported → downstream received", dist(total))
	if arrived < len(rel) {
		return fmt.Errorf("only %d of %d released messages arrived within %s", arrived, len(rel), done.Round(time.Second))
	}
	return nil
}

func dist(ds []time.Duration) string {
	if len(ds) == 0 {
		return "no samples"
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	q := func(p float64) time.Duration { return ds[min(len(ds)-1, int(p*float64(len(ds))))] }
	r := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  max %s  (n=%d)", r(q(0.5)), r(q(0.9)), r(q(0.99)), r(ds[len(ds)-1]), len(ds))
}

// ---- mailguard ----

type mailguard struct {
	dir, addr string
	cmd       *exec.Cmd
}

func startMailguard(c config, work, sandboxURL, downstream string) (*mailguard, error) {
	m := &mailguard{dir: filepath.Join(work, "mg"), addr: freeAddr()}
	if err := os.MkdirAll(m.dir, 0o755); err != nil {
		return nil, err
	}
	pol := fmt.Sprintf(`gateway {
  hostname      = "mx.bench.example"
  listen        = [%q]
  local_domains = ["corp.example"]
}
limits {
  max_connections_per_ip = 200
}
store { path = "./var" }
delivery {
  inbound_relay = %q
  tls           = "off"
  concurrency   = 50
}
log {
  level  = %q
  events = "./var/events.jsonl"
}
auth { enabled = false }
sandbox "cape" {
  url                 = %q
  poll_interval       = %q
  requests_per_minute = %d
  max_concurrent      = %d
  hold_timeout        = "24h"
  search_first        = false
}
`, m.addr, downstream, c.logLevel, sandboxURL, c.poll.String(), c.rpm, c.maxConc)
	if err := os.WriteFile(filepath.Join(m.dir, "policy.hcl"), []byte(pol), 0o644); err != nil {
		return nil, err
	}
	m.cmd = exec.Command(c.bin, "serve", "--config", "policy.hcl")
	m.cmd.Dir = m.dir
	m.cmd.Stderr = os.Stderr
	if err := m.cmd.Start(); err != nil {
		return nil, err
	}
	return m, waitListen(m.addr)
}

func (m *mailguard) stop() {
	m.cmd.Process.Signal(syscall.SIGTERM)
	m.cmd.Wait()
}

func (m *mailguard) cli(args ...string) ([]byte, error) {
	cmd := exec.Command(m.cmd.Path, append(args, "--config", "policy.hcl")...)
	cmd.Dir = m.dir
	cmd.Stderr = os.Stderr
	return cmd.Output()
}

// cpuSeconds is the process's user + system CPU time.
func (m *mailguard) cpuSeconds() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", m.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command name; utime and stime are
	// fields 14 and 15, in clock ticks (USER_HZ, 100 on Linux).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100
}

// rss reads a VmRSS/VmHWM line of /proc/PID/status in bytes.
func (m *mailguard) rss(field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", m.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	mm := regexp.MustCompile(field + `:\s+(\d+) kB`).FindSubmatch(b)
	if mm == nil {
		return 0
	}
	v, _ := strconv.ParseInt(string(mm[1]), 10, 64)
	return v << 10
}

// storeBytes is the size of the store directory (database, WAL, spool),
// without the event log.
func (m *mailguard) storeBytes() int64 {
	var n int64
	filepath.WalkDir(filepath.Join(m.dir, "var"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() != "events.jsonl" {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// verdictTimes reads when mailguard had each message's verdict, from the
// sandbox_verdict events.
func (m *mailguard) verdictTimes() (map[string]time.Time, error) {
	f, err := os.Open(filepath.Join(m.dir, "var", "events.jsonl"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]time.Time{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e struct {
			TS    time.Time `json:"ts"`
			Event string    `json:"event"`
			MsgID string    `json:"msg_id"`
		}
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Event == "sandbox_verdict" {
			if _, seen := out[e.MsgID]; !seen {
				out[e.MsgID] = e.TS
			}
		}
	}
	return out, sc.Err()
}

// ---- the downstream ----

// receiver is an SMTP server that records when each message arrived, by
// its Subject (the message tag) and X-Mailguard-Id.
type receiver struct {
	addr string
	srv  *gosmtp.Server
	mu   sync.Mutex
	got  map[string]arrival
}

type arrival struct {
	id string
	at time.Time
}

func startReceiver() (*receiver, error) {
	r := &receiver{got: map[string]arrival{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r.addr = ln.Addr().String()
	r.srv = gosmtp.NewServer(gosmtp.BackendFunc(func(*gosmtp.Conn) (gosmtp.Session, error) { return &recvSession{r: r}, nil }))
	r.srv.Domain = "downstream.bench.example"
	r.srv.MaxLineLength = 1 << 20
	go r.srv.Serve(ln)
	return r, nil
}

func (r *receiver) close() { r.srv.Close() }

func (r *receiver) count(tags map[string]bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for t := range tags {
		if _, ok := r.got[t]; ok {
			n++
		}
	}
	return n
}

func (r *receiver) arrival(tag string) (arrival, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.got[tag]
	return a, ok
}

type recvSession struct{ r *receiver }

func (s *recvSession) Reset()                                 {}
func (s *recvSession) Logout() error                          { return nil }
func (s *recvSession) Mail(string, *gosmtp.MailOptions) error { return nil }
func (s *recvSession) Rcpt(string, *gosmtp.RcptOptions) error { return nil }

var (
	subjectRE = regexp.MustCompile(`(?m)^Subject: (hold-\d+)\r?$`)
	mgIDRE    = regexp.MustCompile(`(?m)^X-Mailguard-Id: (\S+)\r?$`)
)

func (s *recvSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	at := time.Now()
	if err != nil {
		return err
	}
	tag, id := subjectRE.FindSubmatch(b), mgIDRE.FindSubmatch(b)
	if tag == nil || id == nil {
		return nil
	}
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	if _, dup := s.r.got[string(tag[1])]; !dup {
		s.r.got[string(tag[1])] = arrival{id: string(id[1]), at: at}
	}
	return nil
}

// ---- small helpers ----

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitListen(addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not listening", addr)
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
func kib(n int64) string { return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10)) }
