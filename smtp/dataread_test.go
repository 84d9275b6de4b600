package smtp

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
)

// testBody is a bodyReader over src as the front end builds it: a front
// buffer of frontSize bytes, then buffers of bigSize for the rest.
type testBody struct {
	*bodyReader
	front *bufio.Reader
	wire  *wireReader
}

func newTestBody(src io.Reader, frontSize, bigSize, lineLimit int, max int64, arm func() error) *testBody {
	wire := &wireReader{r: src}
	front := bufio.NewReaderSize(wire, frontSize)
	bufs := &sync.Pool{New: func() any { return bufio.NewReaderSize(nil, bigSize) }}
	if arm == nil {
		arm = func() error { return nil }
	}
	return &testBody{newBodyReader(front, wire, bufs, arm, lineLimit, max), front, wire}
}

// consumed is how many bytes of src the body used, given that src gave
// out pos: what is left in the front end's buffer and what was given back
// are for the commands.
func (b *testBody) consumed(pos int) int { return pos - b.front.Buffered() - b.wire.buffered() }

// runBody reads wire with bodyReader as the session and go-smtp do: the
// Handler reads with readSize buffers until an error, then the rest is
// discarded. end is the wire bytes consumed, -1 when the connection is lost.
func runBody(t testing.TB, src *chunkReader, brSize, readSize, lineLimit int, max int64) oracleResult {
	t.Helper()
	b := newTestBody(src, brSize, 4*brSize, lineLimit, max, nil)
	var res oracleResult
	res.out, res.rej = handlerRead(b, readSize)
	if n, _, rej := b.result(); rej != res.rej || n != int64(len(res.out)) {
		t.Fatalf("result() = %d, %v; the Handler saw %d bytes, %v", n, rej, len(res.out), res.rej)
	}
	res.end = -1
	if err := b.discardRest(); err == nil {
		res.end = b.consumed(src.pos)
		// What follows the body reaches the command reader intact.
		if rest, _ := io.ReadAll(b.front); !bytes.Equal(rest, src.data[res.end:]) {
			t.Fatalf("after the body the front end reads %q, want %q", rest, src.data[res.end:])
		}
	} else if err2 := b.discardRest(); err2 != err {
		t.Fatalf("discardRest not sticky: %v, then %v", err, err2)
	}
	return res
}

// presentViolations are the rejects the old path gives for wire with only
// one of its checks switched on at a time (and errDataAborted when the
// wire ends before the end of data).
func presentViolations(wire []byte, lineLimit int, max int64) map[*Reject]bool {
	set := map[*Reject]bool{}
	for _, c := range []oracleChecks{{size: true}, {line: true}, {bare: true}, {nul: true}, {}} {
		res := oracle(newChunkReader(wire, 0, len(wire)+1), 4096, 4096, lineLimit, max, c)
		if res.rej != nil {
			set[res.rej] = true
		}
	}
	return set
}

// compareWithOracle runs wire through bodyReader and through the old path
// with the same splits and checks that they agree: same acceptance, same
// message when accepted, a reject the input really deserves when refused
// (the same as the old one when there is only one), and the same end.
func compareWithOracle(t testing.TB, wire []byte, seed uint64, maxChunk, brSize, readSize, lineLimit int, max int64) oracleResult {
	t.Helper()
	got := runBody(t, newChunkReader(wire, seed, maxChunk), brSize, readSize, lineLimit, max)
	old := oracle(newChunkReader(wire, seed, maxChunk), brSize, readSize, lineLimit, max, allChecks)
	where := fmt.Sprintf("wire %q (seed %d, chunks <= %d, buffer %d, reads %d, line limit %d, max %d)",
		wire, seed, maxChunk, brSize, readSize, lineLimit, max)
	switch {
	case (got.rej == nil) != (old.rej == nil):
		t.Fatalf("%s: verdict %v, the old path's %v", where, got.rej, old.rej)
	case got.rej == nil && !bytes.Equal(got.out, old.out):
		t.Fatalf("%s: message %q, the old path's %q", where, got.out, old.out)
	case got.end != old.end:
		t.Fatalf("%s: end at %d, the old path's at %d", where, got.end, old.end)
	}
	if got.rej != nil {
		present := presentViolations(wire, lineLimit, max)
		if !present[got.rej] {
			t.Fatalf("%s: verdict %v, not a violation of this input (%v)", where, got.rej, present)
		}
		if len(present) == 1 && got.rej != old.rej {
			t.Fatalf("%s: verdict %v, the old path's %v", where, got.rej, old.rej)
		}
	}
	return got
}

// bodyCase is a DATA body on the wire, followed by the next command.
type bodyCase struct {
	name      string
	wire      string
	lineLimit int
	max       int64
	out       string  // the message, when accepted
	rej       *Reject // nil: accepted
	end       int     // wire bytes of the body; -1: the connection is lost
}

func bodyCases() []bodyCase {
	const next = "QUIT\r\n" // after the body: must never be read as message
	long := strings.Repeat("x", 100)
	cases := []bodyCase{
		{name: "empty", wire: ".\r\n" + next, out: "", end: 3},
		{name: "plain", wire: "a\r\nbc\r\n.\r\n" + next, out: "a\r\nbc\r\n", end: 10},
		{name: "blank lines", wire: "\r\n\r\n.\r\n" + next, out: "\r\n\r\n", end: 7},
		{name: "stuffed", wire: "..a\r\n.b\r\n.\r\n" + next, out: ".a\r\nb\r\n", end: 12},
		{name: "dot-dot line", wire: "a\r\n..\r\n.\r\n" + next, out: "a\r\n.\r\n", end: 10},
		{name: "dot inside line", wire: "a.\r\n.\r\nb\r\n.\r\n" + next, out: "a.\r\n", end: 7},
		{name: "dot then space", wire: ". \r\n.\r\n" + next, out: " \r\n", end: 7},
		{name: "first line dot text", wire: ".x\r\n.\r\n" + next, out: "x\r\n", end: 7},
		{name: "dot at end without CRLF before", wire: "a.\r\n\r\n.\r\n" + next, out: "a.\r\n\r\n", end: 9},
		{name: "commands inside", wire: "MAIL FROM:<x@y>\r\n.\r\n" + next, out: "MAIL FROM:<x@y>\r\n", end: 20},
		{name: "bare LF", wire: "a\nb\r\n.\r\n" + next, rej: errBareNewline, end: 8},
		{name: "bare LF first", wire: "\n\r\n.\r\n" + next, rej: errBareNewline, end: 6},
		{name: "bare CR", wire: "a\rb\r\n.\r\n" + next, rej: errBareNewline, end: 8},
		{name: "CRLF.CR smuggling", wire: "a\r\n.\rMAIL FROM:<x@y>\r\n.\r\n" + next, rej: errBareNewline, end: 25},
		{name: "LF.LF smuggling", wire: "a\n.\nMAIL FROM:<x@y>\r\n.\r\n" + next, rej: errBareNewline, end: 24},
		{name: "CR.CR", wire: "a\r.\r\n.\r\n" + next, rej: errBareNewline, end: 8},
		{name: "CR CR LF hides the end", wire: "a\r.\r\r\n.\r\n" + next, rej: errBareNewline, end: -1},
		{name: "CR CR LF", wire: "a\r\r\n.\r\nb\r\n.\r\n" + next, rej: errBareNewline, end: 13},
		{name: "dot CR CR", wire: ".\r\r\n.\r\nb\r\n.\r\n" + next, rej: errBareNewline, end: 13},
		{name: "NUL", wire: "a\x00b\r\n.\r\n" + next, rej: errNUL, end: 8},
		{name: "NUL after CRLF", wire: "a\r\n\x00.\r\n.\r\n" + next, rej: errNUL, end: 10},
		{name: "abort in line", wire: "abc", rej: errDataAborted, end: -1},
		{name: "abort in end line", wire: "abc\r\n.\r", rej: errDataAborted, end: -1},
		{name: "abort empty", wire: "", rej: errDataAborted, end: -1},
	}
	// Line limit L (go-smtp's lineLimitReader): a run of L-1 bytes before
	// the LF is fine, CR included; L bytes are too many.
	for _, l := range []int{10, 100} {
		ok := strings.Repeat("y", l-2) + "\r\n"
		over := strings.Repeat("y", l-1) + "\r\n"
		cases = append(cases,
			bodyCase{name: fmt.Sprintf("line at limit %d", l), wire: ok + ok + ".\r\n" + next, lineLimit: l, out: ok + ok, end: 2*l + 3},
			bodyCase{name: fmt.Sprintf("line over limit %d", l), wire: ok + over + ".\r\n" + next, lineLimit: l, rej: errLineTooLong, end: -1},
			bodyCase{name: fmt.Sprintf("stuffed line at limit %d", l), wire: "." + ok[1:] + ".\r\n" + next, lineLimit: l, out: ok[1:], end: l + 3},
		)
	}
	// Size limit: go-smtp refuses once it has handed out max bytes, so a
	// message of exactly max bytes is already too big.
	msg := long + "\r\n"
	cases = append(cases,
		bodyCase{name: "size max-1", wire: msg + ".\r\n" + next, max: int64(len(msg)) + 1, out: msg, end: len(msg) + 3},
		bodyCase{name: "size max", wire: msg + ".\r\n" + next, max: int64(len(msg)), rej: errTooBig, end: len(msg) + 3},
		bodyCase{name: "size max+1", wire: msg + ".\r\n" + next, max: int64(len(msg)) - 1, rej: errTooBig, end: len(msg) + 3},
		bodyCase{name: "size stuffed", wire: "." + msg + ".\r\n" + next, max: int64(len(msg)) + 1, out: msg, end: len(msg) + 4},
	)
	return cases
}

func TestBodyReaderCases(t *testing.T) {
	for _, tc := range bodyCases() {
		t.Run(tc.name, func(t *testing.T) {
			lineLimit, max := tc.lineLimit, tc.max
			if max == 0 {
				max = 1 << 20
			}
			wire := []byte(tc.wire)
			check := func(seed uint64, maxChunk, brSize, readSize int) {
				t.Helper()
				got := compareWithOracle(t, wire, seed, maxChunk, brSize, readSize, lineLimit, max)
				where := fmt.Sprintf("seed %d, chunks <= %d, buffer %d, reads %d", seed, maxChunk, brSize, readSize)
				if got.rej != tc.rej {
					t.Fatalf("%s: verdict %v, want %v", where, got.rej, tc.rej)
				}
				if tc.rej == nil && string(got.out) != tc.out {
					t.Fatalf("%s: message %q, want %q", where, got.out, tc.out)
				}
				if got.end != tc.end {
					t.Fatalf("%s: end %d, want %d", where, got.end, tc.end)
				}
			}
			for _, brSize := range []int{16, 512, 4096} {
				for _, readSize := range []int{1, 3, 4096} {
					check(0, 1, brSize, readSize) // one byte at a time
					for seed := range uint64(20) {
						check(seed, 7, brSize, readSize)
						check(seed, len(wire)+1, brSize, readSize)
					}
				}
			}
		})
	}
}

// TestBodyReaderEverySplit splits each case's wire at every point (two
// reads), so that every CR, LF, NUL and dot sits once at a boundary.
func TestBodyReaderEverySplit(t *testing.T) {
	for _, tc := range bodyCases() {
		max := tc.max
		if max == 0 {
			max = 1 << 20
		}
		for i := 0; i <= len(tc.wire); i++ {
			src := &partsSource{parts: []string{tc.wire[:i], tc.wire[i:]}}
			b := newTestBody(src, 16, 16, tc.lineLimit, max, nil)
			out, rej := handlerRead(b, 5)
			if rej != tc.rej || tc.rej == nil && string(out) != tc.out {
				t.Fatalf("%s split at %d: %q, %v; want %q, %v", tc.name, i, out, rej, tc.out, tc.rej)
			}
			end := -1
			if b.discardRest() == nil {
				end = b.consumed(src.pos)
			}
			if end != tc.end {
				t.Fatalf("%s split at %d: end %d, want %d", tc.name, i, end, tc.end)
			}
		}
	}
}

// partsSource hands out its parts one read each (an empty part is a read
// of nothing), counting what it gave.
type partsSource struct {
	parts []string
	pos   int
	err   error
}

func (p *partsSource) Read(b []byte) (int, error) {
	if len(p.parts) == 0 {
		if p.err != nil {
			return 0, p.err
		}
		return 0, io.EOF
	}
	n := copy(b, p.parts[0])
	p.parts[0] = p.parts[0][n:]
	if p.parts[0] == "" {
		p.parts = p.parts[1:]
	}
	p.pos += n
	return n, nil
}

func TestBodyReaderLongMessage(t *testing.T) {
	// Lines longer than the read buffer, dots and CRLF at every offset
	// of the buffer, big reads and small.
	var msg bytes.Buffer
	for i := range 3000 {
		if i%7 == 0 {
			msg.WriteString(".")
		}
		msg.WriteString(strings.Repeat("z", i%97))
		if i%500 == 0 {
			msg.WriteString(strings.Repeat("w", 9000))
		}
		msg.WriteString("\r\n")
	}
	want := msg.Bytes()
	wire := dotStuff(want)
	wire = append(wire, "RSET\r\n"...)
	for _, brSize := range []int{16, 4096} {
		for _, readSize := range []int{1, 1000, 32 << 10} {
			for seed := range uint64(3) {
				got := compareWithOracle(t, wire, seed, 5000, brSize, readSize, 20000, 1<<30)
				if got.rej != nil || !bytes.Equal(got.out, want) {
					t.Fatalf("buffer %d reads %d: %v, %d bytes, want %d", brSize, readSize, got.rej, len(got.out), len(want))
				}
				if got.end != len(wire)-len("RSET\r\n") {
					t.Fatalf("end %d, want %d", got.end, len(wire)-6)
				}
			}
		}
	}
}

func TestBodyReaderDeadline(t *testing.T) {
	// The socket's deadline passes in the middle of the body.
	src := &partsSource{parts: []string{"a\r\nb"}, err: os.ErrDeadlineExceeded}
	b := newTestBody(src, 16, 16, 0, 1<<20, nil)
	out, rej := handlerRead(b, 64)
	if rej != errDataTimeout || string(out) != "a\r\nb" {
		t.Fatalf("got %q, %v; want \"a\\r\\nb\", errDataTimeout", out, rej)
	}
	if err := b.discardRest(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("discardRest: %v, want the deadline error for go-smtp", err)
	}
	// Arming the deadline fails (the socket is closed).
	armErr := errors.New("use of closed network connection")
	b = newTestBody(&partsSource{parts: []string{"x"}}, 16, 16, 0, 1<<20, func() error { return armErr })
	if _, rej := handlerRead(b, 64); rej != errDataAborted {
		t.Fatalf("arm failure: %v, want errDataAborted", rej)
	}
	if err := b.discardRest(); err != armErr {
		t.Fatalf("discardRest: %v, want %v", err, armErr)
	}
	// A deadline while discarding after the Handler stopped early.
	src = &partsSource{parts: []string{"a\x00b\r\n", "more"}, err: os.ErrDeadlineExceeded}
	b = newTestBody(src, 16, 16, 0, 1<<20, nil)
	if _, rej := handlerRead(b, 64); rej != errNUL {
		t.Fatalf("got %v, want errNUL", rej)
	}
	if err := b.discardRest(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("discardRest: %v, want the deadline error", err)
	}
	if _, _, rej := b.result(); rej != errNUL {
		t.Fatalf("the Handler's verdict changed to %v", rej)
	}
}

// FuzzDataReader is the differential fuzz target: for arbitrary wire
// input, limits and splits, bodyReader and the old path (go-smtp's
// dataReader and lineLimitReader, the old front end and checkReader) must
// accept the same bodies with the same bytes, refuse the others for a
// reason the input has, and end the body at the same byte.
func FuzzDataReader(f *testing.F) {
	for _, tc := range bodyCases() {
		f.Add([]byte(tc.wire), uint64(1), uint8(3), uint8(tc.lineLimit), uint16(tc.max), uint16(5))
	}
	f.Add([]byte("a\r\n.\rMAIL FROM:<x@y>\r\n.\r\n"), uint64(7), uint8(1), uint8(0), uint16(0), uint16(1))
	f.Add([]byte("..\r\n.\r\r\n..\r.\r\n.\r\n"), uint64(2), uint8(2), uint8(4), uint16(9), uint16(2))
	f.Fuzz(func(t *testing.T, wire []byte, seed uint64, maxChunk, lineLimit uint8, max, readSize uint16) {
		m := int64(max)
		if m == 0 {
			m = 1 << 20
		}
		compareWithOracle(t, wire, seed, int(maxChunk)+1, 16, int(readSize%300)+1, int(lineLimit), m)
	})
}

// TestDataHandlerStopsEarly: the Handler refuses after a few bytes; the
// rest of the body, which holds a whole smuggled transaction and a ".."
// line, is consumed up to the real end and none of it is run as commands.
// The command pipelined after the body in the same write is answered.
func TestDataHandlerStopsEarly(t *testing.T) {
	h := &recHandler{dataHook: func(r io.Reader) ([]byte, error) {
		buf := make([]byte, 5)
		n, _ := io.ReadFull(r, buf)
		return buf[:n], &Reject{554, [3]int{5, 7, 1}, "refused by policy"}
	}}
	_, addrs := startServer(t, testConfig(), h)
	c := dial(t, addrs[0])
	c.hello("client.example")
	c.cmdExpect("MAIL FROM:<a@sender.example>", 250)
	c.cmdExpect("RCPT TO:<b@corp.example>", 250)
	c.cmdExpect("DATA", 354)
	body := "Subject: x\r\n\r\n" + strings.Repeat("filler line\r\n", 2000) + "..\r\n" + strings.TrimSuffix(smuggled, ".\r\n")
	c.send(body + ".\r\nNOOP\r\n")
	if text := c.expect(554); !strings.Contains(text, "refused by policy") {
		t.Errorf("reply %q", text)
	}
	c.expect(250) // the NOOP
	if from := h.lastMail().MailFrom; from != "a@sender.example" {
		t.Errorf("a smuggled MAIL FROM reached the handler: %q", from)
	}
	if n := len(h.allMsgs()); n != 1 {
		t.Errorf("%d Data calls, want 1", n)
	}
	c.cmdExpect("QUIT", 221)
}

// TestDataLineOverLimitAfterHandlerStops: a line over the limit in the part
// of the body the Handler did not read still ends the connection after the
// Handler's reply, as go-smtp's lineLimitReader did.
func TestDataLineOverLimitAfterHandlerStops(t *testing.T) {
	cfg := testConfig()
	cfg.MaxLineLength = 1000
	h := &recHandler{dataHook: func(r io.Reader) ([]byte, error) {
		return nil, &Reject{554, [3]int{5, 7, 1}, "refused by policy"}
	}}
	_, addrs := startServer(t, cfg, h)
	c := dial(t, addrs[0])
	c.hello("client.example")
	c.cmdExpect("MAIL FROM:<a@sender.example>", 250)
	c.cmdExpect("RCPT TO:<b@corp.example>", 250)
	c.cmdExpect("DATA", 354)
	c.send("Subject: x\r\n\r\n" + strings.Repeat("y", 3000) + "\r\n.\r\nNOOP\r\n")
	c.expect(554)
	c.expect(500) // go-smtp: "Too long line, closing connection"
	if !c.closed() {
		t.Error("connection open after a line over the limit")
	}
}

// TestDataBodyAndNextTransactionInOneWrite: the end of one body, a whole
// transaction and the start of the next in one segment, the way a
// pipelining client and the benchmark write them.
func TestDataBodyAndNextTransactionInOneWrite(t *testing.T) {
	h := &recHandler{}
	_, addrs := startServer(t, testConfig(), h)
	c := dial(t, addrs[0])
	c.hello("client.example")
	tx := "MAIL FROM:<a@sender.example>\r\nRCPT TO:<b@corp.example>\r\nDATA\r\n"
	big := strings.Repeat("0123456789abcdef\r\n", 10000) // read beyond the front end's buffer
	c.send(tx + "..one\r\n.\r\n" + tx + big + ".\r\n" + tx + "two\r\n.\r\n" + tx + ".\r\nRSET\r\n")
	for range 4 {
		c.expect(250)
		c.expect(250)
		c.expect(354)
		c.expect(250)
	}
	c.expect(250) // RSET
	msgs := h.accepted()
	if len(msgs) != 4 || string(msgs[0].data) != ".one\r\n" || string(msgs[1].data) != big || string(msgs[2].data) != "two\r\n" || string(msgs[3].data) != "" {
		t.Fatalf("messages: %+v", msgs)
	}
}

// TestDataBigBodyThenSTARTTLSInjection: commands sent after a body in the
// same write are read ahead with the body and given back to the command
// reader; cleartext after STARTTLS among them must still be dropped at the
// handshake (CVE-2011-0411), and the body over TLS must arrive intact.
func TestDataBigBodyThenSTARTTLSInjection(t *testing.T) {
	cfg := testConfig()
	cert, pool, _, _ := testCert(t, "mx.test.example")
	cfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	h := &recHandler{}
	_, addrs := startServer(t, cfg, h)
	c := dial(t, addrs[0])
	c.hello("client.example")
	big := strings.Repeat("0123456789abcdef\r\n", 10000)
	tx := "MAIL FROM:<a@sender.example>\r\nRCPT TO:<b@corp.example>\r\nDATA\r\n"
	// More cleartext than the front end's 4 KiB buffer takes at once.
	inject := strings.Repeat("NOOP\r\n", 1000) + "MAIL FROM:<injected@evil.example>\r\n"
	c.send(tx + big + ".\r\nSTARTTLS\r\n" + inject)
	c.expect(250)
	c.expect(250)
	c.expect(354)
	c.expect(250)
	c.expect(220)
	c.startTLS(pool)
	c.cmdExpect("EHLO client.example", 250)
	c.send(tx + big + ".\r\nNOOP\r\n")
	c.expect(250)
	c.expect(250)
	c.expect(354)
	c.expect(250)
	c.expect(250) // NOOP
	msgs := h.accepted()
	if len(msgs) != 2 || string(msgs[0].data) != big || string(msgs[1].data) != big || msgs[1].env.Conn.TLS == nil {
		t.Fatalf("got %d messages, want the body twice, the second over TLS", len(msgs))
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.mails {
		if m.MailFrom != "a@sender.example" {
			t.Errorf("injected MAIL FROM executed: %q", m.MailFrom)
		}
	}
}
