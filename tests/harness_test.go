// Package tests runs mailguard end to end: the real binary, a real Postfix
// as the downstream MTA (or smtp-sink for load), swaks as the client and a
// DNS server on loopback. Every test starts with need(), which skips when a
// tool is missing, or fails when MAILGUARD_E2E_STRICT=1 (set in CI).
package tests

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	binDir    string // built binaries
	mailguard string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mailguard-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	mailguard = filepath.Join(dir, "mailguard")
	build := exec.Command("go", "build", "-o", dir, "../cmd/mailguard", "../cmd/capeemu")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building binaries:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// need skips the test when a tool is missing (fails under MAILGUARD_E2E_STRICT=1).
func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if _, err := os.Stat(filepath.Join("/usr/sbin", tool)); err == nil {
				continue
			}
			if os.Getenv("MAILGUARD_E2E_STRICT") == "1" {
				t.Fatalf("%s is not installed (MAILGUARD_E2E_STRICT=1)", tool)
			}
			t.Skipf("%s is not installed", tool)
		}
	}
}

// freePort returns a loopback TCP address that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// waitListening waits until addr accepts TCP connections.
func waitListening(t *testing.T, addr string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s is not listening after %s", addr, d)
}

// ---- the gateway process ----

// gateway is a running `mailguard serve`.
type gateway struct {
	t      *testing.T
	dir    string
	policy string
	addr   string // SMTP listener
	cmd    *exec.Cmd
	log    *syncBuffer
	done   chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// policyVars fill the placeholders of a test policy.
type policyVars struct {
	Listen, ProxyListen, Inbound, Outbound, DNS, Extra string
}

// writePolicy renders a policy for a test gateway in dir.
func writePolicy(t *testing.T, dir string, v policyVars) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, `gateway {
  hostname          = "mx.corp.example"
  listen            = [%q]
  local_domains     = ["corp.example"]
  internal_networks = ["10.0.0.0/8"]
  trusted_proxies   = ["127.0.0.1/32"]
%s}
store { path = "./var" }
delivery {
  maildir   = "./var/maildir"
  retry_min = "1s"
  retry_max = "2s"
`, v.Listen, proxyLine(v.ProxyListen))
	if v.Inbound != "" {
		fmt.Fprintf(&b, "  inbound_relay = %q\n", v.Inbound)
	}
	if v.Outbound != "" {
		fmt.Fprintf(&b, "  outbound_relay = %q\n", v.Outbound)
	}
	b.WriteString("}\nlog {\n  level  = \"debug\"\n  events = \"./var/events.jsonl\"\n}\n")
	if v.DNS != "" {
		fmt.Fprintf(&b, "dns {\n  servers = [%q]\n  timeout = \"2s\"\n}\n", v.DNS)
	} else {
		// Never the machine's resolver: authentication is off unless a test
		// serves a zone.
		b.WriteString("auth { enabled = false }\n")
	}
	b.WriteString(v.Extra)
	path := filepath.Join(dir, "policy.hcl")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func proxyLine(addr string) string {
	if addr == "" {
		return ""
	}
	return fmt.Sprintf("  proxy_listen      = [%q]\n", addr)
}

// startGateway writes the policy and starts mailguard serve in a new dir.
func startGateway(t *testing.T, v policyVars) *gateway {
	t.Helper()
	dir := t.TempDir()
	if v.Listen == "" {
		v.Listen = freePort(t)
	}
	g := &gateway{t: t, dir: dir, addr: v.Listen, policy: writePolicy(t, dir, v)}
	g.start()
	t.Cleanup(func() {
		g.stop()
		if t.Failed() {
			t.Logf("mailguard log:\n%s", tail(g.log.String(), 60))
		}
	})
	return g
}

func (g *gateway) start() {
	g.t.Helper()
	g.log = &syncBuffer{}
	g.cmd = exec.Command(mailguard, "serve", "--config", g.policy)
	g.cmd.Dir = g.dir
	g.cmd.Stdout, g.cmd.Stderr = g.log, g.log
	if err := g.cmd.Start(); err != nil {
		g.t.Fatal(err)
	}
	g.done = make(chan struct{})
	go func() { g.cmd.Wait(); close(g.done) }()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-g.done:
			g.t.Fatalf("mailguard exited at start:\n%s", g.log.String())
		default:
		}
		if c, err := net.DialTimeout("tcp", g.addr, 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	g.t.Fatalf("mailguard not listening on %s:\n%s", g.addr, g.log.String())
}

// stop sends SIGTERM and waits (the graceful path).
func (g *gateway) stop() {
	if g.cmd == nil || g.cmd.Process == nil {
		return
	}
	select {
	case <-g.done:
		return
	default:
	}
	g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.done:
	case <-time.After(40 * time.Second):
		g.cmd.Process.Kill()
		<-g.done
		g.t.Errorf("mailguard did not stop within 40s of SIGTERM")
	}
}

// kill9 kills the process without warning (a crash).
func (g *gateway) kill9() {
	g.cmd.Process.Signal(syscall.SIGKILL)
	<-g.done
}

// mg runs a mailguard CLI command against the gateway's policy.
func (g *gateway) mg(args ...string) (string, error) {
	cmd := exec.Command(mailguard, append(args, "--config", g.policy)...)
	cmd.Dir = g.dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%v: %s", err, errb.String())
	}
	return out.String(), nil
}

// events returns the lines of the event log.
func (g *gateway) events() []string {
	b, _ := os.ReadFile(filepath.Join(g.dir, "var", "events.jsonl"))
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// waitLog waits until the gateway's log matches re.
func (g *gateway) waitLog(re string, d time.Duration) bool {
	r := regexp.MustCompile(re)
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if r.MatchString(g.log.String()) {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// ---- swaks ----

// swaks runs swaks against addr and returns its transcript and whether
// the server accepted the message (exit status 0).
func swaks(t *testing.T, addr string, args ...string) (string, bool) {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command("swaks", append([]string{"--server", host, "--port", port, "--timeout", "30"}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err == nil
}

// send sends one message file with swaks and requires 250.
func send(t *testing.T, addr, from, to, file string, extra ...string) string {
	t.Helper()
	args := append([]string{"--from", from, "--to", to, "--data", file}, extra...)
	out, ok := swaks(t, addr, args...)
	if !ok {
		t.Fatalf("swaks failed:\n%s", out)
	}
	return out
}

// queuedID extracts the mailguard ID from "250 … queued as ID".
func queuedID(transcript string) string {
	m := regexp.MustCompile(`queued as ([A-Za-z0-9_-]+)`).FindStringSubmatch(transcript)
	if m == nil {
		return ""
	}
	return m[1]
}

// ---- downstream MTAs ----

// postfixMTA is a private Postfix instance used as the downstream MTA: it
// accepts mail for every domain and delivers it into one Maildir.
type postfixMTA struct {
	dir  string
	addr string
	conf string
}

func postfixIDs(t *testing.T) (string, string) {
	t.Helper()
	u, err := user.Lookup("postfix")
	if err != nil {
		t.Skipf("no postfix user: %v", err)
	}
	return u.Uid, u.Gid
}

// startPostfix starts a private Postfix on a free loopback port.
func startPostfix(t *testing.T) *postfixMTA {
	t.Helper()
	need(t, "postfix")
	if os.Geteuid() != 0 {
		t.Skip("a private Postfix instance needs root")
	}
	uid, gid := postfixIDs(t)
	dir, err := os.MkdirTemp("", "pfx")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	p := &postfixMTA{dir: dir, addr: freePort(t), conf: filepath.Join(dir, "conf")}
	for _, d := range []string{"conf", "queue", "data", "mail"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	exec.Command("chown", "postfix:postfix", filepath.Join(dir, "data"), filepath.Join(dir, "mail")).Run()
	main := fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %[1]s/queue
data_directory = %[1]s/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = downstream.test
mydestination =
mynetworks = 127.0.0.0/8
relay_domains =
virtual_mailbox_domains = static:all
virtual_mailbox_base = %[1]s/mail
virtual_mailbox_maps = static:inbox/
virtual_uid_maps = static:%[2]s
virtual_gid_maps = static:%[3]s
virtual_minimum_uid = 1
maillog_file = %[1]s/maillog
maillog_file_prefixes = %[1]s
smtpd_recipient_restrictions = permit_mynetworks, reject
local_header_rewrite_clients =
alias_maps =
alias_database =
smtputf8_enable = yes
message_size_limit = 0
virtual_mailbox_limit = 0
`, dir, uid, gid)
	os.WriteFile(filepath.Join(p.conf, "main.cf"), []byte(main), 0o644)
	master := p.addr + " inet n - n - - smtpd\n" + postfixServices
	os.WriteFile(filepath.Join(p.conf, "master.cf"), []byte(master), 0o644)
	if out, err := exec.Command("postfix", "-c", p.conf, "start").CombinedOutput(); err != nil {
		t.Fatalf("postfix start: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		exec.Command("postfix", "-c", p.conf, "stop").Run()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "maillog"))
			t.Logf("postfix log:\n%s", tail(string(b), 30))
		}
		os.RemoveAll(dir)
	})
	waitListening(t, p.addr, 15*time.Second)
	return p
}

const postfixServices = `pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`

// messages returns the delivered messages (Maildir files), oldest first.
func (p *postfixMTA) messages() []string {
	return maildirFiles(filepath.Join(p.dir, "mail", "inbox"))
}

// waitMessages waits until n messages arrived and returns them.
func (p *postfixMTA) waitMessages(t *testing.T, n int, d time.Duration) []string {
	t.Helper()
	return waitFiles(t, p.messages, n, d)
}

func maildirFiles(dir string) []string {
	var out []string
	for _, sub := range []string{"new", "cur"} {
		ents, _ := os.ReadDir(filepath.Join(dir, sub))
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join(dir, sub, e.Name()))
			if err == nil {
				out = append(out, string(b))
			}
		}
	}
	return out
}

func waitFiles(t *testing.T, list func() []string, n int, d time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(d)
	var prev []string
	for {
		got := list()
		// smtp-sink creates its dump file when the transaction starts
		// and fills it while DATA streams: a file counts once its
		// content stayed the same across two polls.
		if len(got) >= n && slices.Equal(got, prev) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages arrived within %s, want %d", len(got), d, n)
		}
		prev = got
		time.Sleep(100 * time.Millisecond)
	}
}

// sink is Postfix's smtp-sink, dumping each transaction to a file.
type sink struct {
	addr string
	dir  string
	cmd  *exec.Cmd
}

// startSink starts smtp-sink on addr (free port when ""). extra are
// smtp-sink options such as "-R" patterns to make it reject.
func startSink(t *testing.T, addr string, extra ...string) *sink {
	t.Helper()
	need(t, "smtp-sink")
	if addr == "" {
		addr = freePort(t)
	}
	// smtp-sink writes as nobody: t.TempDir's parent is private, so use a
	// directory of our own that nobody can reach.
	dir, err := os.MkdirTemp("", "sink")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &sink{addr: addr, dir: dir}
	args := append([]string{"-u", "nobody", "-d", filepath.Join(dir, "%Y%m%d%H/%M."), "-c"}, extra...)
	args = append(args, addr, "256")
	s.cmd = exec.Command("smtp-sink", args...)
	os.Chmod(dir, 0o777)
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	waitListening(t, addr, 10*time.Second)
	return s
}

func (s *sink) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
		s.cmd = nil
	}
}

// messages returns the dumped transactions.
func (s *sink) messages() []string {
	var out []string
	filepath.WalkDir(s.dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, err := os.ReadFile(p); err == nil {
				out = append(out, string(b))
			}
		}
		return nil
	})
	return out
}

// ---- helpers ----

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// writeFile writes a test message with CRLF line endings.
func writeMessage(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	body = strings.ReplaceAll(strings.ReplaceAll(body, "\r\n", "\n"), "\n", "\r\n")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// rawSMTP speaks raw lines to addr: each step sends a line (if non-empty)
// and reads one reply (multi-line replies included).
type rawSMTP struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawSMTP {
	t.Helper()
	return dialRawFrom(t, "", addr)
}

// dialRawFrom connects from a given loopback source address (127.0.0.2 is
// an untrusted peer in the test policies).
func dialRawFrom(t *testing.T, from, addr string) *rawSMTP {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(60 * time.Second))
	return &rawSMTP{t: t, c: c, r: bufio.NewReader(c)}
}

func (s *rawSMTP) reply() string {
	s.t.Helper()
	var b strings.Builder
	for {
		line, err := s.r.ReadString('\n')
		b.WriteString(line)
		if err != nil || len(line) < 4 || line[3] != '-' {
			return b.String()
		}
	}
}

func (s *rawSMTP) cmd(line string) string {
	s.t.Helper()
	if _, err := s.c.Write([]byte(line + "\r\n")); err != nil {
		s.t.Fatalf("write %q: %v", line, err)
	}
	return s.reply()
}

// try sends a line and reads the reply, reporting a closed connection as
// an error instead of failing the test.
func (s *rawSMTP) try(line string) (string, error) {
	if _, err := s.c.Write([]byte(line + "\r\n")); err != nil {
		return "", err
	}
	r := s.reply()
	if r == "" {
		return "", io.EOF
	}
	return r, nil
}

func (s *rawSMTP) write(b string) {
	s.t.Helper()
	if _, err := s.c.Write([]byte(b)); err != nil {
		s.t.Fatal(err)
	}
}
