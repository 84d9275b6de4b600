package smtp

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// need skips the test when a tool is missing, or fails it when
// MAILGUARD_E2E_STRICT=1.
func need(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("MAILGUARD_E2E_STRICT") == "1" {
				t.Fatalf("required tool %q not found: %v", tool, err)
			}
			t.Skipf("tool %q not found", tool)
		}
	}
}

// recMsg is a message a recHandler accepted (or saw refused).
type recMsg struct {
	env  Envelope
	data []byte
	err  error
}

// recHandler records every call and can be told to refuse.
type recHandler struct {
	mu       sync.Mutex
	connects []ConnInfo
	mails    []Envelope
	rcpts    []string
	msgs     []recMsg

	connectErr func(ConnInfo) error
	mailErr    func(*Envelope) error
	rcptErr    func(string) error
	dataErr    error
	dataHook   func(r io.Reader) ([]byte, error) // replaces the default read
}

func (h *recHandler) Connect(_ context.Context, c ConnInfo) error {
	h.mu.Lock()
	h.connects = append(h.connects, c)
	f := h.connectErr
	h.mu.Unlock()
	if f != nil {
		return f(c)
	}
	return nil
}

func (h *recHandler) Mail(_ context.Context, e *Envelope) error {
	h.mu.Lock()
	h.mails = append(h.mails, *e)
	f := h.mailErr
	h.mu.Unlock()
	if f != nil {
		return f(e)
	}
	return nil
}

func (h *recHandler) Rcpt(_ context.Context, _ *Envelope, rcpt string) error {
	h.mu.Lock()
	h.rcpts = append(h.rcpts, rcpt)
	f := h.rcptErr
	h.mu.Unlock()
	if f != nil {
		return f(rcpt)
	}
	return nil
}

func (h *recHandler) Data(_ context.Context, e *Envelope, r io.Reader) error {
	h.mu.Lock()
	hook, derr := h.dataHook, h.dataErr
	h.mu.Unlock()
	var data []byte
	var err error
	if hook != nil {
		data, err = hook(r)
	} else {
		data, err = io.ReadAll(r)
	}
	env := *e
	env.Rcpts = append([]string(nil), e.Rcpts...)
	h.mu.Lock()
	h.msgs = append(h.msgs, recMsg{env: env, data: data, err: err})
	h.mu.Unlock()
	if err != nil {
		return err
	}
	return derr
}

// accepted returns the messages the handler saw without a stream error.
func (h *recHandler) accepted() []recMsg {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []recMsg
	for _, m := range h.msgs {
		if m.err == nil && h.dataErr == nil {
			out = append(out, m)
		}
	}
	return out
}

func (h *recHandler) allMsgs() []recMsg {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]recMsg(nil), h.msgs...)
}

func (h *recHandler) lastConnect() ConnInfo {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.connects) == 0 {
		return ConnInfo{}
	}
	return h.connects[len(h.connects)-1]
}

func (h *recHandler) lastMail() Envelope {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.mails) == 0 {
		return Envelope{}
	}
	return h.mails[len(h.mails)-1]
}

// testConfig is a loopback server configuration: corp.example is local,
// 127.0.0.1 is neither internal nor a trusted proxy unless a test says so.
func testConfig() Config {
	return Config{
		Hostname:       "mx.test.example",
		Listen:         []Listener{{Addr: "127.0.0.1:0"}},
		LocalDomains:   []string{"corp.example"},
		CommandTimeout: 10 * time.Second,
		DataTimeout:    20 * time.Second,
	}
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("MAILGUARD_TEST_DEBUG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// startServer runs a server until the test ends and returns its addresses.
func startServer(t testing.TB, cfg Config, h Handler) (*Server, []string) {
	t.Helper()
	s, err := NewServer(cfg, h, testLogger(t))
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	if err := s.Listen(); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		_ = s.Close()
		<-done
	})
	var addrs []string
	for _, a := range s.Addrs() {
		addrs = append(addrs, a.String())
	}
	return s, addrs
}

// client speaks raw SMTP lines.
type client struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func dialFrom(t testing.TB, addr, local string) *client {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	return &client{t: t, c: c, br: bufio.NewReader(c)}
}

func dial(t testing.TB, addr string) *client { return dialFrom(t, addr, "") }

// reply reads one (possibly multi-line) reply.
func (c *client) reply() (int, string) {
	c.t.Helper()
	var lines []string
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			if len(lines) == 0 {
				return 0, "read error: " + err.Error()
			}
			c.t.Fatalf("read reply: %v (got %q)", err, lines)
		}
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 4 {
			c.t.Fatalf("short reply line %q", line)
		}
		lines = append(lines, line)
		if line[3] == ' ' {
			code, _ := strconv.Atoi(line[:3])
			return code, strings.Join(lines, "\n")
		}
	}
}

// expect reads a reply and checks its code.
func (c *client) expect(code int) string {
	c.t.Helper()
	got, text := c.reply()
	if got != code {
		c.t.Fatalf("reply %d %q, want %d", got, text, code)
	}
	return text
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.c, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// cmd sends one command line and returns the reply.
func (c *client) cmd(line string) (int, string) {
	c.t.Helper()
	c.send(line + "\r\n")
	return c.reply()
}

// cmdExpect sends a command and checks the reply code.
func (c *client) cmdExpect(line string, code int) string {
	c.t.Helper()
	got, text := c.cmd(line)
	if got != code {
		c.t.Fatalf("%s: reply %d %q, want %d", line, got, text, code)
	}
	return text
}

// closed reports whether the server has closed the connection.
func (c *client) closed() bool {
	_ = c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.br.ReadByte()
	return err != nil
}

// hello reads the greeting and sends EHLO.
func (c *client) hello(name string) string {
	c.t.Helper()
	c.expect(220)
	return c.cmdExpect("EHLO "+name, 250)
}

// testCert returns a self-signed certificate for host, and a pool with it.
func testCert(t testing.TB, host string) (tls.Certificate, *x509.CertPool, []byte, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: host},
		DNSNames:     []string{host},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return cert, pool, certPEM, keyPEM
}

// writeCertFiles writes a certificate pair into dir.
func writeCertFiles(t testing.TB, dir string, certPEM, keyPEM []byte) (string, string) {
	t.Helper()
	cf, kf := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cf, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kf, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return cf, kf
}

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

// waitFor polls cond for up to 5 seconds.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

var _ = fmt.Sprintf

func dialErr(addr string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
	}
	return c, err
}
