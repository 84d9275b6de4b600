package smtp

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestIdleTimeout(t *testing.T) {
	cfg := testConfig()
	cfg.CommandTimeout = 300 * time.Millisecond
	_, addrs := startServer(t, cfg, &recHandler{})
	c := dial(t, addrs[0])
	c.hello("client.example")
	start := time.Now()
	code, text := c.reply() // say nothing: the server gives up
	if code != 421 || !strings.Contains(text, "4.4.2") {
		t.Fatalf("idle: %d %q, want 421 4.4.2", code, text)
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 3*time.Second {
		t.Errorf("idle timeout after %v, want about 300ms", d)
	}
	if !c.closed() {
		t.Error("connection open after idle timeout")
	}
}

func TestIdleTimeoutIsPerLine(t *testing.T) {
	// A client that trickles one byte at a time still has to finish each
	// line within CommandTimeout.
	cfg := testConfig()
	cfg.CommandTimeout = 400 * time.Millisecond
	_, addrs := startServer(t, cfg, &recHandler{})
	c := dial(t, addrs[0])
	c.hello("client.example")
	start := time.Now()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for _, b := range "NOOP trickling one byte every tenth of a second" { // 4.7s in all
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := c.c.Write([]byte(string(b))); err != nil {
				return
			}
		}
	}()
	code, _ := c.reply()
	if code != 421 {
		t.Fatalf("trickled line: reply %d, want 421", code)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("cut off after %v, want about 400ms", d)
	}
}

func TestDataDeadline(t *testing.T) {
	// Each body line arrives well within the idle limit, but the whole DATA
	// phase exceeds DataTimeout.
	cfg := testConfig()
	cfg.CommandTimeout = time.Second // generous: a loaded test host must not trip it
	cfg.DataTimeout = 2 * time.Second
	h := &recHandler{}
	_, addrs := startServer(t, cfg, h)
	c := dial(t, addrs[0])
	c.hello("client.example")
	c.cmdExpect("MAIL FROM:<a@sender.example>", 250)
	c.cmdExpect("RCPT TO:<b@corp.example>", 250)
	c.cmdExpect("DATA", 354)
	start := time.Now()
	stop := make(chan struct{})
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := c.c.Write([]byte("slow line\r\n")); err != nil {
				return
			}
		}
	}()
	defer close(stop)
	code, text := c.reply()
	if code != 421 {
		t.Fatalf("slow DATA: %d %q, want 421", code, text)
	}
	if d := time.Since(start); d < 1900*time.Millisecond || d > 6*time.Second {
		t.Errorf("DATA cut off after %v, want about 2s", d)
	}
	if n := len(h.accepted()); n != 0 {
		t.Errorf("%d messages accepted", n)
	}
}

func TestDataIdleTimeout(t *testing.T) {
	cfg := testConfig()
	cfg.CommandTimeout = 300 * time.Millisecond
	cfg.DataTimeout = 10 * time.Second
	h := &recHandler{}
	_, addrs := startServer(t, cfg, h)
	c := dial(t, addrs[0])
	c.hello("client.example")
	c.cmdExpect("MAIL FROM:<a@sender.example>", 250)
	c.cmdExpect("RCPT TO:<b@corp.example>", 250)
	c.cmdExpect("DATA", 354)
	c.send("Subject: stall\r\n\r\npart")
	start := time.Now()
	code, _ := c.reply()
	if code != 421 || time.Since(start) > 3*time.Second {
		t.Fatalf("stalled DATA: %d after %v, want 421 after about 300ms", code, time.Since(start))
	}
	if n := len(h.accepted()); n != 0 {
		t.Errorf("%d messages accepted", n)
	}
}

func TestConnectionCaps(t *testing.T) {
	cfg := testConfig()
	cfg.MaxConns = 3
	cfg.MaxConnsPerIP = 2
	s, addrs := startServer(t, cfg, &recHandler{})
	a1 := dialFrom(t, addrs[0], "127.0.0.1")
	a1.expect(220)
	a2 := dialFrom(t, addrs[0], "127.0.0.1")
	a2.expect(220)
	a3 := dialFrom(t, addrs[0], "127.0.0.1")
	text := a3.expect(421)
	if !strings.HasPrefix(text, "421 4.7.0 ") || !strings.Contains(text, "from your address") {
		t.Errorf("per-IP cap reply %q", text)
	}
	if !a3.closed() {
		t.Error("refused connection left open")
	}
	b1 := dialFrom(t, addrs[0], "127.0.0.2")
	b1.expect(220)
	b2 := dialFrom(t, addrs[0], "127.0.0.3")
	text = b2.expect(421)
	if !strings.HasPrefix(text, "421 4.7.0 ") || strings.Contains(text, "from your address") {
		t.Errorf("total cap reply %q", text)
	}
	// Closing one frees its slot.
	a1.cmdExpect("QUIT", 221)
	waitFor(t, "slot release", func() bool { n, _ := s.limits.counts(); return n == 2 })
	a4 := dialFrom(t, addrs[0], "127.0.0.1")
	a4.expect(220)
}

func TestTooManyErrors(t *testing.T) {
	cfg := testConfig()
	cfg.MaxErrors = 3
	_, addrs := startServer(t, cfg, &recHandler{})
	c := dial(t, addrs[0])
	c.hello("client.example")
	c.cmdExpect("MAIL FROM:<a@sender.example>", 250)
	for i := 0; i < 3; i++ {
		c.cmdExpect("RCPT TO:<x@elsewhere.example>", 550)
	}
	text := c.cmdExpect("RCPT TO:<x@elsewhere.example>", 421)
	if !strings.Contains(text, "too many errors") {
		t.Errorf("reply %q", text)
	}
	if !c.closed() {
		t.Error("connection open after too many errors")
	}
}

func TestConnectRefusedByHandler(t *testing.T) {
	h := &recHandler{connectErr: func(ci ConnInfo) error {
		return &Reject{554, [3]int{5, 7, 1}, "client blocked"}
	}}
	_, addrs := startServer(t, testConfig(), h)
	c := dial(t, addrs[0])
	text := c.expect(554)
	if !strings.HasPrefix(text, "554 5.7.1 client blocked (") {
		t.Errorf("reply %q", text)
	}
	if !c.closed() {
		t.Error("connection open after refusal")
	}
}

func TestGracefulShutdown(t *testing.T) {
	h := &recHandler{}
	s, err := NewServer(testConfig(), h, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	addr := s.Addrs()[0].String()
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background()) }()

	idle := dial(t, addr)
	idle.hello("idle.example")
	busy := dial(t, addr)
	busy.hello("busy.example")
	busy.cmdExpect("MAIL FROM:<a@sender.example>", 250)
	busy.cmdExpect("RCPT TO:<b@corp.example>", 250)

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- s.Shutdown(ctx)
	}()
	// The idle session is told at once.
	text := idle.expect(421)
	if !strings.HasPrefix(text, "421 4.3.2") {
		t.Errorf("idle session got %q", text)
	}
	// The one in a transaction finishes its message, then is told.
	busy.cmdExpect("DATA", 354)
	busy.send("x\r\n.\r\n")
	busy.expect(250)
	busy.send("MAIL FROM:<a@sender.example>\r\n")
	busy.expect(421)
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if n := len(h.accepted()); n != 1 {
		t.Errorf("%d messages accepted, want 1", n)
	}
	if _, err := dialErr(addr); err == nil {
		t.Error("still accepting after shutdown")
	}
}

func TestShutdownDeadlineClosesStragglers(t *testing.T) {
	s, err := NewServer(testConfig(), &recHandler{}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(context.Background()) }()
	c := dial(t, s.Addrs()[0].String())
	c.hello("client.example")
	c.cmdExpect("MAIL FROM:<a@sender.example>", 250) // stays in a transaction
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); err == nil {
		t.Error("Shutdown returned nil with a session still open")
	}
	if !c.closed() {
		t.Error("straggler not closed")
	}
}

func TestLimitKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":            "192.0.2.7",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::",
		"2001:db8:1:2:ffff::1": "2001:db8:1:2::",
		"::ffff:192.0.2.7":     "::ffff:192.0.2.7",
	} {
		if got := limitKey(netip.MustParseAddr(in)); got.String() != want {
			t.Errorf("limitKey(%s) = %s, want %s", in, got, want)
		}
	}
}
