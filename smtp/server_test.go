package smtp

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestBasicTransaction(t *testing.T) {
	h := &recHandler{}
	_, addrs := startServer(t, testConfig(), h)
	c := dial(t, addrs[0])
	c.hello("client.example")
	c.cmdExpect("MAIL FROM:<alice@sender.example> SIZE=100", 250)
	c.cmdExpect("RCPT TO:<bob@corp.example>", 250)
	c.cmdExpect("RCPT TO:<Carol@CORP.Example>", 250)
	c.cmdExpect("DATA", 354)
	c.send("Subject: hi\r\n\r\n..dot line\r\nbody\r\n.\r\n")
	text := c.expect(250)
	msgs := h.accepted()
	if len(msgs) != 1 {
		t.Fatalf("handler got %d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if !strings.Contains(text, "queued as "+m.env.ID) {
		t.Errorf("reply %q does not name the ID %s", text, m.env.ID)
	}
	if got, want := string(m.data), "Subject: hi\r\n\r\n.dot line\r\nbody\r\n"; got != want {
		t.Errorf("data %q, want %q", got, want)
	}
	if m.env.MailFrom != "alice@sender.example" || m.env.Size != 100 {
		t.Errorf("envelope from %q size %d", m.env.MailFrom, m.env.Size)
	}
	if want := []string{"bob@corp.example", "Carol@CORP.Example"}; fmt.Sprint(m.env.Rcpts) != fmt.Sprint(want) {
		t.Errorf("rcpts %v, want %v", m.env.Rcpts, want)
	}
	if m.env.Direction != Inbound || m.env.Conn.HELO != "client.example" || m.env.Conn.RemoteIP != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("envelope conn %+v direction %s", m.env.Conn, m.env.Direction)
	}
	if len(m.env.ID) != IDLen {
		t.Errorf("ID %q has length %d", m.env.ID, len(m.env.ID))
	}
	c.cmdExpect("QUIT", 221)
}

func ehloKeywords(text string) map[string]string {
	kw := map[string]string{}
	for i, line := range strings.Split(text, "\n") {
		if i == 0 {
			continue
		}
		k, v, _ := strings.Cut(line[4:], " ")
		kw[k] = v
	}
	return kw
}

func TestEHLOKeywords(t *testing.T) {
	cert, _, _, _ := testCert(t, "mx.test.example")
	cfg := testConfig()
	cfg.MaxMessageBytes = 12345
	cfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	cfg.Listen = append(cfg.Listen, Listener{Addr: "127.0.0.1:0"})
	cfg.TrustedProxies = prefixes("127.0.0.2/32")
	_, addrs := startServer(t, cfg, &recHandler{})

	check := func(local string, wantXCLIENT bool) {
		t.Helper()
		c := dialFrom(t, addrs[0], local)
		text := c.hello("client.example")
		kw := ehloKeywords(text)
		for _, k := range []string{"PIPELINING", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "STARTTLS", "CHUNKING"} {
			if _, ok := kw[k]; !ok {
				t.Errorf("EHLO from %s lacks %s:\n%s", local, k, text)
			}
		}
		if kw["SIZE"] != "12345" {
			t.Errorf("SIZE %q, want 12345", kw["SIZE"])
		}
		if _, ok := kw["XCLIENT"]; ok != wantXCLIENT {
			t.Errorf("EHLO from %s: XCLIENT advertised %v, want %v:\n%s", local, ok, wantXCLIENT, text)
		}
		if _, ok := kw["AUTH"]; ok {
			t.Errorf("AUTH advertised")
		}
		if !strings.HasPrefix(text, "250-") || !strings.Contains(text, "\n250 ") {
			t.Errorf("malformed multi-line reply:\n%s", text)
		}
	}
	check("127.0.0.1", false)
	check("127.0.0.2", true)
}

func TestHandlerErrorsNeverLeak(t *testing.T) {
	h := &recHandler{
		mailErr: func(e *Envelope) error {
			if e.MailFrom == "known@sender.example" {
				return fmt.Errorf("policy: %w", &Reject{554, [3]int{5, 7, 1}, "sender blocked\r\n250 fake"})
			}
			return errors.New("open /var/spool/secret: disk full")
		},
	}
	_, addrs := startServer(t, testConfig(), h)
	c := dial(t, addrs[0])
	c.hello("client.example")
	text := c.cmdExpect("MAIL FROM:<someone@sender.example>", 451)
	if strings.Contains(text, "secret") || strings.Contains(text, "disk") || !strings.HasPrefix(text, "451 4.3.0 ") {
		t.Errorf("internal error leaked or wrong code: %q", text)
	}
	id := h.lastMail().ID
	if !strings.HasSuffix(text, "("+id+")") {
		t.Errorf("reply %q lacks the transaction ID %s", text, id)
	}
	text = c.cmdExpect("MAIL FROM:<known@sender.example>", 554)
	if strings.Contains(text, "\n") || !strings.HasPrefix(text, "554 5.7.1 sender blocked") {
		t.Errorf("Reject not rendered safely on one line: %q", text)
	}
	// The session is still in sync.
	c.cmdExpect("NOOP", 250)
}

func TestReplyFor(t *testing.T) {
	check := func(err error, want string) {
		t.Helper()
		got := replyLine(replyFor(err, "ID1"))
		if got != want {
			t.Errorf("replyFor(%v) = %q, want %q", err, got, want)
		}
	}
	check(errors.New("pq: password authentication failed for user mailguard"), "451 4.3.0 temporary local problem, please try again later (ID1)")
	check(&Reject{550, [3]int{5, 7, 1}, "relay access denied"}, "550 5.7.1 relay access denied (ID1)")
	check(fmt.Errorf("wrapped: %w", &Reject{452, [3]int{4, 5, 3}, "too many"}), "452 4.5.3 too many (ID1)")
	check(&Reject{250, [3]int{2, 0, 0}, "sneaky success"}, "451 4.3.0 temporary local problem, please try again later (ID1)")
	check(&Reject{550, [3]int{4, 1, 1}, "class mismatch"}, "550 5.0.0 class mismatch (ID1)")
	check(&Reject{550, [3]int{5, 1, 1}, "bad\r\n354 go ahead\x00"}, "550 5.1.1 bad  354 go ahead (ID1)")
	check(&Reject{550, [3]int{5, 1, 1}, ""}, "550 5.1.1 rejected (ID1)")
	check(&Reject{550, [3]int{5, 1, 1}, "日本語"}, "550 5.1.1 ??? (ID1)")
	if replyFor(nil, "x") != nil {
		t.Error("replyFor(nil) != nil")
	}
	long := strings.Repeat("x", 5000)
	if got := replyLine(replyFor(&Reject{550, [3]int{5, 0, 0}, long}, "ID1")); len(got) > 500 {
		t.Errorf("long text not bounded: %d bytes", len(got))
	}
}

func TestIDs(t *testing.T) {
	seen := map[string]bool{}
	prev := ""
	for i := 0; i < 2000; i++ {
		id := newIDAt(time.UnixMilli(1_700_000_000_000 + int64(i)))
		if len(id) != IDLen || seen[id] {
			t.Fatalf("bad or duplicate ID %q", id)
		}
		for _, r := range id {
			if !strings.ContainsRune(idAlphabet, r) {
				t.Fatalf("ID %q has %q", id, r)
			}
		}
		if id <= prev {
			t.Fatalf("IDs not sortable: %q after %q", id, prev)
		}
		seen[id], prev = true, id
	}
}

func TestLongBodyLineAccepted(t *testing.T) {
	h := &recHandler{}
	_, addrs := startServer(t, testConfig(), h)
	c := dial(t, addrs[0])
	c.hello("client.example")
	c.cmdExpect("MAIL FROM:<a@sender.example>", 250)
	c.cmdExpect("RCPT TO:<b@corp.example>", 250)
	c.cmdExpect("DATA", 354)
	line := strings.Repeat("x", 5000)
	c.send("Subject: long\r\n\r\n" + line + "\r\n.\r\n")
	c.expect(250)
	if msgs := h.accepted(); len(msgs) != 1 || !bytes.Contains(msgs[0].data, []byte(line+"\r\n")) {
		t.Fatalf("5000-character line not delivered intact")
	}
}

func TestLongCommandLineRefused(t *testing.T) {
	_, addrs := startServer(t, testConfig(), &recHandler{})
	c := dial(t, addrs[0])
	c.hello("client.example")
	c.send("NOOP " + strings.Repeat("a", 10000) + "\r\n")
	code, text := c.reply()
	if code != 500 {
		t.Fatalf("overlong command: %d %q, want 500", code, text)
	}
	if !c.closed() {
		t.Error("connection still open after an overlong command line")
	}
}

func TestSizeLimitWhileStreaming(t *testing.T) {
	cfg := testConfig()
	cfg.MaxMessageBytes = 1000
	h := &recHandler{}
	_, addrs := startServer(t, cfg, h)
	c := dial(t, addrs[0])
	c.hello("client.example")
	c.cmdExpect("MAIL FROM:<a@sender.example> SIZE=5000", 552)
	c.cmdExpect("MAIL FROM:<a@sender.example>", 250)
	c.cmdExpect("RCPT TO:<b@corp.example>", 250)
	c.cmdExpect("DATA", 354)
	c.send("Subject: big\r\n\r\n" + strings.Repeat("0123456789012345678901234567890123456789\r\n", 100) + ".\r\n")
	text := c.expect(552)
	if !strings.HasPrefix(text, "552 5.3.4 ") {
		t.Errorf("oversized DATA: %q", text)
	}
	// BDAT: refused as well, same code; nothing accepted.
	c.cmdExpect("MAIL FROM:<a@sender.example>", 250)
	c.cmdExpect("RCPT TO:<b@corp.example>", 250)
	chunk := strings.Repeat("x", 600) + "\r\n"
	c.send(fmt.Sprintf("BDAT %d\r\n%s", len(chunk), chunk))
	c.expect(250)
	c.send(fmt.Sprintf("BDAT %d LAST\r\n%s", len(chunk), chunk))
	c.expect(552)
	c.cmdExpect("NOOP", 250)
	if n := len(h.accepted()); n != 0 {
		t.Errorf("%d oversized messages accepted", n)
	}
}

func TestRecipientLimit(t *testing.T) {
	cfg := testConfig()
	cfg.MaxRecipients = 3
	_, addrs := startServer(t, cfg, &recHandler{})
	c := dial(t, addrs[0])
	text := c.hello("client.example")
	if !strings.Contains(text, "LIMITS RCPTMAX=3") {
		t.Errorf("EHLO lacks LIMITS RCPTMAX=3:\n%s", text)
	}
	c.cmdExpect("MAIL FROM:<a@sender.example>", 250)
	for i := 0; i < 3; i++ {
		c.cmdExpect(fmt.Sprintf("RCPT TO:<u%d@corp.example>", i), 250)
	}
	text = c.cmdExpect("RCPT TO:<u9@corp.example>", 452)
	if !strings.HasPrefix(text, "452 4.5.3") {
		t.Errorf("recipient limit reply %q", text)
	}
}

func TestDuplicateRecipientDeliveredOnce(t *testing.T) {
	h := &recHandler{}
	_, addrs := startServer(t, testConfig(), h)
	c := dial(t, addrs[0])
	c.hello("client.example")
	c.cmdExpect("MAIL FROM:<>", 250)
	c.cmdExpect("RCPT TO:<b@corp.example>", 250)
	c.cmdExpect("RCPT TO:<b@CORP.EXAMPLE>", 250)
	c.cmdExpect("DATA", 354)
	c.send("x\r\n.\r\n")
	c.expect(250)
	msgs := h.accepted()
	if len(msgs) != 1 || len(msgs[0].env.Rcpts) != 1 || msgs[0].env.MailFrom != "" {
		t.Fatalf("got %+v", msgs)
	}
}

func TestPipelining(t *testing.T) {
	h := &recHandler{}
	_, addrs := startServer(t, testConfig(), h)
	c := dial(t, addrs[0])
	c.hello("client.example")
	// One write with the whole transaction up to DATA, then body + next
	// transaction + QUIT in one write (RFC 2920).
	c.send("MAIL FROM:<a@sender.example>\r\nRCPT TO:<b@corp.example>\r\nRCPT TO:<x@elsewhere.example>\r\nDATA\r\n")
	c.expect(250)
	c.expect(250)
	c.expect(550)
	c.expect(354)
	c.send("one\r\n.\r\nMAIL FROM:<a@sender.example>\r\nRCPT TO:<c@corp.example>\r\nDATA\r\n")
	c.expect(250)
	c.expect(250)
	c.expect(250)
	c.expect(354)
	c.send("two\r\n.\r\nQUIT\r\n")
	c.expect(250)
	c.expect(221)
	msgs := h.accepted()
	if len(msgs) != 2 || string(msgs[0].data) != "one\r\n" || string(msgs[1].data) != "two\r\n" {
		t.Fatalf("pipelined messages: %+v", msgs)
	}
}

func TestBDAT(t *testing.T) {
	h := &recHandler{}
	_, addrs := startServer(t, testConfig(), h)
	c := dial(t, addrs[0])
	c.hello("client.example")
	c.cmdExpect("MAIL FROM:<a@sender.example>", 250)
	c.cmdExpect("RCPT TO:<b@corp.example>", 250)
	// Chunks that look like commands and like a dot terminator are data.
	c1 := "Subject: x\r\n\r\nXCLIENT ADDR=1.2.3.4\r\n"
	c2 := ".\r\nSTARTTLS\r\n"
	c.send(fmt.Sprintf("BDAT %d\r\n%s", len(c1), c1))
	c.expect(250)
	c.send(fmt.Sprintf("BDAT %d LAST\r\n%s", len(c2), c2))
	text := c.expect(250)
	msgs := h.accepted()
	if len(msgs) != 1 || string(msgs[0].data) != c1+c2 {
		t.Fatalf("BDAT message: %+v", msgs)
	}
	if !strings.Contains(text, msgs[0].env.ID) {
		t.Errorf("BDAT reply %q lacks the ID", text)
	}
	// A malformed BDAT is not followed by a chunk: the next line is a command.
	c.cmdExpect("BDAT xyz", 501)
	c.cmdExpect("NOOP", 250)
	// A BDAT without a transaction still consumes its chunk.
	c.send("BDAT 6 LAST\r\nNOOP\r\n")
	c.expect(502)
	c.cmdExpect("NOOP", 250)
}

func TestDataWithoutConsumingIsNotAccepted(t *testing.T) {
	h := &recHandler{dataHook: func(r io.Reader) ([]byte, error) {
		buf := make([]byte, 3)
		_, err := io.ReadFull(r, buf) // reads only the start, then "accepts"
		return buf, err
	}}
	_, addrs := startServer(t, testConfig(), h)
	c := dial(t, addrs[0])
	c.hello("client.example")
	c.cmdExpect("MAIL FROM:<a@sender.example>", 250)
	c.cmdExpect("RCPT TO:<b@corp.example>", 250)
	c.cmdExpect("DATA", 354)
	c.send("hello there\r\nmore\r\n.\r\n")
	c.expect(451)
	c.cmdExpect("NOOP", 250)
}

func TestIPv6Listener(t *testing.T) {
	l, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	l.Close()
	cfg := testConfig()
	cfg.Listen = []Listener{{Addr: "[::1]:0"}}
	cfg.InternalNetworks = prefixes("::1/128")
	h := &recHandler{}
	_, addrs := startServer(t, cfg, h)
	c := dial(t, addrs[0])
	c.hello("v6.example")
	c.cmdExpect("MAIL FROM:<a@corp.example>", 250)
	c.cmdExpect("RCPT TO:<x@elsewhere.example>", 250)
	if ci := h.lastMail().Conn; ci.RemoteIP != netip.MustParseAddr("::1") || !ci.Internal || !ci.LocalAddr.Addr().Is6() {
		t.Errorf("conn %+v", ci)
	}
}

func TestCommandLongerThanGoSMTPBuffer(t *testing.T) {
	cfg := testConfig()
	cfg.MaxCommandLength = 16384
	h := &recHandler{}
	_, addrs := startServer(t, cfg, h)
	c := dial(t, addrs[0])
	c.expect(220)
	long := "h" + strings.Repeat("x", 6000) + ".example"
	c.cmdExpect("EHLO "+long, 250)
	c.cmdExpect("MAIL FROM:<a@sender.example>", 250)
	c.cmdExpect("RCPT TO:<b@corp.example>", 250)
	// A BDAT line of 7000 bytes (go-smtp reads it in two pieces).
	c.send("BDAT 7" + strings.Repeat(" ", 7000) + "LAST\r\nhello\r\n")
	c.expect(250)
	c.cmdExpect("NOOP", 250)
	msgs := h.accepted()
	if len(msgs) != 1 || string(msgs[0].data) != "hello\r\n" || msgs[0].env.Conn.HELO != long {
		t.Fatalf("got %d messages", len(msgs))
	}
}

func TestBodyLineOverLimit(t *testing.T) {
	cfg := testConfig()
	cfg.MaxLineLength = 1000
	h := &recHandler{}
	_, addrs := startServer(t, cfg, h)
	c := dial(t, addrs[0])
	c.hello("client.example")
	c.cmdExpect("MAIL FROM:<a@sender.example>", 250)
	c.cmdExpect("RCPT TO:<b@corp.example>", 250)
	c.cmdExpect("DATA", 354)
	c.send("Subject: x\r\n\r\n" + strings.Repeat("y", 3000) + "\r\n.\r\n")
	text := c.expect(554)
	if !strings.HasPrefix(text, "554 5.6.0 message line too long") {
		t.Errorf("reply %q", text)
	}
	c.expect(500) // go-smtp: "Too long line, closing connection"
	if !c.closed() {
		t.Error("connection open after a line over the limit")
	}
	if n := len(h.accepted()); n != 0 {
		t.Errorf("%d accepted", n)
	}
}
