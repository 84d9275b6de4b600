package smtp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gosmtp "github.com/emersion/go-smtp"
	"github.com/pires/go-proxyproto"
)

// readMode is what the next bytes from the client are.
type readMode int

const (
	modeLine  readMode = iota // a command line
	modeData                  // the end of a DATA body (see readData)
	modeChunk                 // a BDAT chunk, a byte count
)

// endOfData is what go-smtp's dataReader reads once bodyReader has read
// the body: an empty body, ended.
const endOfData = ".\r\n"

// proxyV2Tail is the PROXY v2 signature after its first CRLF.
const proxyV2Tail = "\r\n\x00\r\nQUIT\n"

// errConnClosed ends a connection the front end has refused or closed; it
// reads as EOF to go-smtp, which then closes quietly.
var errConnClosed = io.EOF

// conn is the protocol front end between the socket and go-smtp (see the
// package comment). go-smtp reads and writes through it; it is the
// net.Conn that gosmtp.Conn.Conn returns.
type conn struct {
	srv *Server
	lis Listener
	raw net.Conn // the accepted socket, a *proxyproto.Conn for PROXY peers

	ctx    context.Context
	cancel context.CancelFunc

	initOnce sync.Once
	initErr  error

	// mu guards the identity and the flags shared with the session and
	// with Shutdown.
	mu         sync.Mutex
	info       ConnInfo
	heloPinned bool // XCLIENT HELO overrides later EHLO arguments
	needHelo   bool // after XCLIENT or STARTTLS: EHLO/HELO first
	trusted    bool // may use XCLIENT
	txActive   bool
	draining   bool
	idle       bool // blocked waiting for a command outside a transaction
	lastLine   string
	closeOnce  sync.Once

	// Read side, used only by the goroutine go-smtp reads from.
	under        net.Conn    // raw, or the *tls.Conn over it
	wire         *wireReader // under, after bytes a DATA body gave back
	br           *bufio.Reader
	mode         readMode
	pending      []byte // part of a command line not yet returned
	pendVerb     string
	pendArg      string
	bdatSize     int64
	bdatValid    bool
	bdatLast     bool
	body         *bodyReader // DATA: the body, until go-smtp has its end
	bodyEnd      string      // DATA: what go-smtp still gets of endOfData
	chunkLeft    int64
	dataDeadline time.Time
	bdatDeadline time.Time
	lines        int
	readErr      error

	// Write side (go-smtp's replies), guarded by wmu.
	wmu        sync.Mutex
	awaitReply bool
	awaitData  bool // the awaited reply answers DATA
	dataReady  bool // a 354 answered DATA: the session reads the body
	replyCode  int
	head       []byte
	headDone   bool
	injectEHLO bool
	injectNow  bool
	closeAfter atomic.Bool
	errorCount atomic.Int32
	tlsActive  bool
}

func newConn(s *Server, lis Listener, raw net.Conn) *conn {
	ctx, cancel := context.WithCancel(s.baseCtx)
	c := &conn{srv: s, lis: lis, raw: raw, under: raw, ctx: ctx, cancel: cancel}
	c.wire = &wireReader{r: raw}
	c.br = bufio.NewReaderSize(c.wire, s.cfg.MaxCommandLength)
	c.info.ID = NewID()
	sock := raw
	if pc, ok := raw.(*proxyproto.Conn); ok {
		sock = pc.Raw() // its own RemoteAddr would block reading the header
	}
	if ap, ok := addrPort(sock.RemoteAddr()); ok {
		c.info.RemoteIP, c.info.RemotePort = ap.Addr(), ap.Port()
	}
	if ap, ok := addrPort(sock.LocalAddr()); ok {
		c.info.LocalAddr = ap
	}
	return c
}

// ensureInit runs the connection start (PROXY, limits, implicit TLS,
// Handler.Connect) once, in the connection's goroutine: go-smtp's first
// action is writing the greeting, which lands here.
func (c *conn) ensureInit() error {
	c.initOnce.Do(func() { c.initErr = c.start() })
	return c.initErr
}

func (c *conn) start() error {
	if err := c.readProxyHeader(); err != nil {
		return c.refuse("proxy_error", "", err)
	}
	c.mu.Lock()
	ip := c.info.RemoteIP
	c.mu.Unlock()
	if reason, ok := c.srv.limits.admit(c, ip); !ok {
		text := "too many connections, try again later"
		if reason == "limit_ip" {
			text = "too many connections from your address, try again later"
		}
		return c.refuse(reason, fmt.Sprintf("421 4.7.0 %s %s", c.srv.cfg.Hostname, text), nil)
	}
	if c.lis.ImplicitTLS {
		if err := c.handshake(); err != nil {
			return c.refuse("tls_error", "", err)
		}
	}
	c.mu.Lock()
	c.trusted = ip.IsValid() && inPrefixes(ip, c.srv.trusted)
	c.info.Internal = ip.IsValid() && inPrefixes(ip, c.srv.internal)
	info := c.info
	c.mu.Unlock()
	if err := c.srv.h.Connect(c.ctx, info); err != nil {
		metricRejections.WithLabelValues("connect", codeClass(err), reasonFor(err)).Inc()
		return c.refuse("refused", replyLine(replyFor(err, info.ID)), nil)
	}
	metricConnections.WithLabelValues("accepted").Inc()
	c.srv.log.Debug("smtp connection", "conn_id", info.ID, "client_ip", ip.String(), "proxied", info.Proxied)
	return nil
}

// refuse writes an optional reply, counts the refusal and closes.
func (c *conn) refuse(result, reply string, err error) error {
	metricConnections.WithLabelValues(result).Inc()
	// Under implicit TLS nothing readable can be said before the handshake.
	if reply != "" && (!c.lis.ImplicitTLS || c.tlsActive) {
		c.writeRaw(reply + "\r\n")
	}
	c.srv.log.Debug("smtp connection refused", "conn_id", c.info.ID, "result", result, "err", err)
	c.Close()
	return errConnClosed
}

// readProxyHeader takes the client identity from a PROXY v1/v2 header. Only
// peers in TrustedProxies get a *proxyproto.Conn (the listener's policy
// requires a header from them); everyone else is served directly.
func (c *conn) readProxyHeader() error {
	pc, ok := c.raw.(*proxyproto.Conn)
	if !ok {
		return nil
	}
	h := pc.ProxyHeader() // reads it, bounded by the listener's header timeout
	if h == nil {
		return errors.New("smtp: missing or invalid PROXY header from a trusted proxy")
	}
	if h.Command.IsLocal() {
		return nil // a health check from the proxy itself
	}
	src, dst, ok := h.TCPAddrs()
	if !ok {
		return nil // PROXY UNKNOWN / AF_UNSPEC: the peer is the client
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if ap, ok := addrPort(src); ok {
		c.info.RemoteIP, c.info.RemotePort = ap.Addr(), ap.Port()
		c.info.Proxied = true
	}
	if ap, ok := addrPort(dst); ok {
		c.info.LocalAddr = ap
	}
	return nil
}

// handshake runs a server-side TLS handshake on the socket and reads from
// the TLS connection afterwards. The read buffer is discarded first so that
// no cleartext sent before the handshake is ever read as if it had been
// protected (the STARTTLS command injection of CVE-2011-0411).
func (c *conn) handshake() error {
	cfg := c.srv.tlsConfig
	if cfg == nil {
		return errors.New("smtp: TLS is not configured")
	}
	tc := tls.Server(c.raw, cfg)
	if err := c.raw.SetDeadline(time.Now().Add(c.srv.cfg.TLSHandshakeTimeout)); err != nil {
		return err
	}
	err := tc.HandshakeContext(c.ctx)
	if err2 := c.raw.SetDeadline(time.Time{}); err == nil {
		err = err2
	}
	if err != nil {
		return err
	}
	st := tc.ConnectionState()
	c.wmu.Lock()
	c.under = tc
	c.tlsActive = true
	c.wmu.Unlock()
	c.wire = &wireReader{r: tc} // cleartext read ahead (c.br, c.wire) is dropped
	c.br = bufio.NewReaderSize(c.wire, c.srv.cfg.MaxCommandLength)
	c.mu.Lock()
	c.info.TLS = &st
	c.mu.Unlock()
	return nil
}

// Read hands go-smtp its next input: one command line, or body bytes up to
// the end of DATA, or a BDAT chunk.
func (c *conn) Read(p []byte) (n int, err error) {
	defer c.recoverPanic(&err)
	if err := c.ensureInit(); err != nil {
		return 0, err
	}
	if c.mode == modeLine && c.closeAfter.Load() {
		return 0, errConnClosed // a 421 was sent: end quietly
	}
	if c.readErr != nil {
		return 0, c.readErr
	}
	if len(c.pending) > 0 {
		// The rest of a command line longer than go-smtp's buffer: go-smtp
		// has not acted on it yet, so there is nothing to settle.
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	c.settle()
	switch c.mode {
	case modeData:
		n, err = c.readData(p)
	case modeChunk:
		n, err = c.readChunk(p)
	default:
		n, err = c.readCommand(p)
	}
	if err != nil && n == 0 {
		c.readErr = err
	}
	return n, err
}

// settle acts on the reply go-smtp wrote to the previous command line.
func (c *conn) settle() {
	verb := c.pendVerb
	if verb == "" {
		return
	}
	c.pendVerb = ""
	c.wmu.Lock()
	code := c.replyCode
	c.wmu.Unlock()
	switch verb {
	case "DATA":
		if code == 354 {
			c.mode = modeData
			c.dataDeadline = time.Now().Add(c.srv.cfg.DataTimeout)
			c.body = newBodyReader(c.br, c.wire, &c.srv.bodyBufs, c.armBody, c.srv.cfg.MaxLineLength, c.srv.cfg.MaxMessageBytes)
			c.bodyEnd = endOfData
		}
	case "BDAT":
		// go-smtp reads the chunk whenever the arguments parse, even when
		// it refuses the command (502, 552): so must we.
		if !c.bdatValid {
			return
		}
		if c.bdatDeadline.IsZero() { // a new BDAT transaction
			c.bdatDeadline = time.Now().Add(c.srv.cfg.DataTimeout)
		}
		c.chunkLeft = c.bdatSize
		c.mode = modeChunk
		if c.chunkLeft == 0 {
			c.endChunk()
		}
	case "EHLO", "HELO":
		if code == 250 {
			c.mu.Lock()
			c.needHelo = false
			if !c.heloPinned {
				c.info.HELO = c.pendArg
			}
			c.mu.Unlock()
		}
	}
}

func (c *conn) endChunk() {
	c.mode = modeLine
	if c.bdatLast {
		c.bdatDeadline = time.Time{}
	}
	c.expectReply("")
}

// readCommand returns the next command line (or the rest of a long one),
// handling the commands the front end owns itself.
func (c *conn) readCommand(p []byte) (int, error) {
	for {
		line, err := c.nextLine()
		if err != nil {
			return 0, err
		}
		handled, err := c.intercept(line)
		if err != nil {
			return 0, err
		}
		if handled {
			continue
		}
		line = c.rewritePostmaster(line)
		c.noteCommand(line)
		n := copy(p, line)
		c.pending = append(c.pending[:0], line[n:]...)
		return n, nil
	}
}

// nextLine reads one command line under a fresh per-line deadline. It
// returns errConnClosed after writing a final reply when the session must
// end (too many errors, shutdown, a 421 already sent).
func (c *conn) nextLine() ([]byte, error) {
	if c.closeAfter.Load() {
		return nil, errConnClosed
	}
	if int(c.errorCount.Load()) >= c.srv.cfg.MaxErrors {
		metricRejections.WithLabelValues("session", "4xx", "too_many_errors").Inc()
		c.writeRaw(fmt.Sprintf("421 4.7.0 %s error: too many errors\r\n", c.srv.cfg.Hostname))
		return nil, errConnClosed
	}
	deadline := time.Now().Add(c.srv.cfg.CommandTimeout)
	if !c.bdatDeadline.IsZero() && c.bdatDeadline.Before(deadline) {
		deadline = c.bdatDeadline
	}
	c.mu.Lock()
	if c.draining && !c.txActive {
		c.mu.Unlock()
		return nil, c.shutdownReply()
	}
	c.idle = !c.txActive && c.br.Buffered() == 0 && c.wire.buffered() == 0
	err := c.under.SetReadDeadline(deadline)
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	line, err := c.br.ReadSlice('\n')
	c.mu.Lock()
	c.idle = false
	draining := c.draining && !c.txActive
	c.mu.Unlock()
	switch {
	case err == nil:
		c.lines++
		return line, nil
	case draining:
		return nil, c.shutdownReply()
	case errors.Is(err, bufio.ErrBufferFull):
		// go-smtp answers "500 5.4.0 Too long line" and closes.
		return nil, gosmtp.ErrTooLongLine
	}
	return nil, err
}

func (c *conn) shutdownReply() error {
	c.writeRaw(fmt.Sprintf("421 4.3.2 %s service shutting down, try again later\r\n", c.srv.cfg.Hostname))
	return errConnClosed
}

// intercept handles the commands go-smtp does not have (XCLIENT), the one
// mailguard does itself (STARTTLS), and a PROXY header from a peer that may
// not send one. It reports whether the line was consumed.
func (c *conn) intercept(line []byte) (bool, error) {
	if c.lines == 1 && c.lis.Proxy && !c.isProxyConn() && looksLikeProxyHeader(line, c.br) {
		metricConnections.WithLabelValues("proxy_untrusted").Inc()
		c.writeRaw("550 5.7.0 PROXY protocol header not accepted from this address\r\n")
		return false, errConnClosed
	}
	verb, arg := splitVerb(line)
	switch {
	case strings.HasPrefix(strings.ToUpper(string(line)), "STARTTLS"):
		// go-smtp treats every line starting with STARTTLS as STARTTLS.
		return true, c.startTLS(strings.TrimSpace(strings.TrimRight(string(line[8:]), "\r\n")))
	case verb == "XCLIENT":
		return true, c.xclient(arg)
	case verb == "AUTH":
		// go-smtp would say "TLS is required" even over our TLS.
		c.writeRaw("503 5.5.1 authentication not enabled\r\n")
		return true, nil
	}
	return false, nil
}

func (c *conn) isProxyConn() bool {
	_, ok := c.raw.(*proxyproto.Conn)
	return ok
}

func looksLikeProxyHeader(line []byte, br *bufio.Reader) bool {
	if bytes.HasPrefix(line, []byte("PROXY ")) {
		return true
	}
	if string(line) == "\r\n" && br.Buffered() >= len(proxyV2Tail) {
		tail, _ := br.Peek(len(proxyV2Tail))
		return string(tail) == proxyV2Tail
	}
	return false
}

// splitVerb returns the first word of a command line, upper-cased in ASCII
// only (as go-smtp compares bytes: "ı" must not become "I"), and the rest,
// trimmed.
func splitVerb(line []byte) (string, string) {
	s := strings.TrimRight(string(line), "\r\n")
	verb, arg, _ := strings.Cut(s, " ")
	b := []byte(verb)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b), strings.TrimSpace(arg)
}

// rewritePostmaster turns "RCPT TO:<postmaster>", which RFC 5321 §4.5.1
// requires us to accept but go-smtp's parser refuses (no domain), into the
// postmaster of the first local domain.
func (c *conn) rewritePostmaster(line []byte) []byte {
	first := c.srv.local.first
	if first == "" || len(line) < 8 || !strings.EqualFold(string(line[:8]), "RCPT TO:") {
		return line
	}
	rest := strings.TrimLeft(string(line[8:]), " ")
	if len(rest) < 12 || !strings.EqualFold(rest[:12], "<postmaster>") {
		return line
	}
	return []byte("RCPT TO:<postmaster@" + first + ">" + rest[12:])
}

// noteCommand records a line handed to go-smtp, to act on its reply.
func (c *conn) noteCommand(line []byte) {
	s := string(line)
	c.mu.Lock()
	c.lastLine = s
	c.mu.Unlock()
	verb, arg := splitVerb(line)
	c.pendVerb, c.pendArg = "", ""
	switch verb {
	case "DATA":
		c.pendVerb = verb
	case "BDAT":
		c.pendVerb = verb
		c.bdatSize, c.bdatLast, c.bdatValid = parseBDAT(arg)
	case "EHLO", "HELO":
		c.pendVerb = verb
		// go-smtp's parseHelloArgument: the first word.
		c.pendArg, _, _ = strings.Cut(arg, " ")
	}
	if verb != "BDAT" {
		c.bdatDeadline = time.Time{}
	}
	c.expectReply(verb)
}

// parseBDAT mirrors go-smtp's handleBdat argument checks, which decide
// whether go-smtp reads a chunk after the command.
func parseBDAT(arg string) (size int64, last, ok bool) {
	args := strings.Fields(arg)
	if len(args) == 0 || len(args) > 2 {
		return 0, false, false
	}
	if len(args) == 2 {
		if !strings.EqualFold(args[1], "LAST") {
			return 0, false, false
		}
		last = true
	}
	n, err := strconv.ParseUint(args[0], 10, 32)
	if err != nil {
		return 0, false, false
	}
	return int64(n), last, true
}

// beginData hands the session the body of the DATA command just answered
// with 354, or nil when go-smtp is not in a DATA command (BDAT calls the
// session's Data from another goroutine, which must not touch the read
// side). Called by the session from go-smtp's connection goroutine, after
// the 354 and before go-smtp reads again.
func (c *conn) beginData() *bodyReader {
	c.wmu.Lock()
	ready := c.dataReady
	c.dataReady = false
	c.wmu.Unlock()
	if !ready {
		return nil
	}
	c.settle()
	return c.body
}

// armBody sets the read deadline for the DATA body.
func (c *conn) armBody() error { return c.armDataDeadline(c.dataDeadline) }

// readData is go-smtp's view of a DATA body. The session has read the
// body through c.body (bodyReader, the fast path); go-smtp's own
// dataReader, which drains after the session, gets what is left discarded
// and then a bare end-of-data line, after which commands follow. A fatal
// error of the body (line too long, read error) is what it gets instead.
func (c *conn) readData(p []byte) (int, error) {
	if c.body != nil {
		if err := c.body.discardRest(); err != nil {
			return 0, err // sticky in c.readErr, as go-smtp's readers were
		}
		c.body = nil
	}
	n := copy(p, c.bodyEnd)
	c.bodyEnd = c.bodyEnd[n:]
	if c.bodyEnd == "" {
		c.mode = modeLine
		c.expectReply("")
	}
	return n, nil
}

func (c *conn) readChunk(p []byte) (int, error) {
	if int64(len(p)) > c.chunkLeft {
		p = p[:c.chunkLeft]
	}
	if c.br.Buffered() == 0 {
		if err := c.armDataDeadline(c.bdatDeadline); err != nil {
			return 0, err
		}
	}
	n, err := c.br.Read(p)
	c.chunkLeft -= int64(n)
	if c.chunkLeft == 0 {
		c.endChunk()
	}
	if n > 0 {
		return n, nil
	}
	return n, err
}

// armDataDeadline sets the read deadline inside DATA/BDAT: the idle limit,
// capped by the total deadline of the transfer.
func (c *conn) armDataDeadline(total time.Time) error {
	d := time.Now().Add(c.srv.cfg.CommandTimeout)
	if !total.IsZero() && total.Before(d) {
		d = total
	}
	return c.under.SetReadDeadline(d)
}

// expectReply marks the next reply line go-smtp writes as the answer to
// the last command verb (or to the body/chunk just read: "").
func (c *conn) expectReply(verb string) {
	c.wmu.Lock()
	c.awaitReply = true
	c.replyCode = 0
	c.injectEHLO = verb == "EHLO"
	c.awaitData = verb == "DATA"
	c.dataReady = false
	c.wmu.Unlock()
}

// Write passes go-smtp's replies to the client, observing the first line
// of each (code, errors, 421) and adding our EHLO keywords.
func (c *conn) Write(p []byte) (n int, err error) {
	defer c.recoverPanic(&err)
	if err := c.ensureInit(); err != nil {
		return 0, err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	start := 0
	for i, b := range p {
		if !c.headDone {
			c.head = append(c.head, b)
			if len(c.head) == 4 || b == '\n' {
				c.observe(c.head)
				c.headDone = true
			}
		}
		if b != '\n' {
			continue
		}
		c.head, c.headDone = c.head[:0], false
		if c.injectNow {
			c.injectNow = false
			if _, err := c.under.Write(p[start : i+1]); err != nil {
				return start, err
			}
			start = i + 1
			if _, err := io.WriteString(c.under, c.ehloKeywords()); err != nil {
				return start, err
			}
		}
	}
	n, err = c.under.Write(p[start:])
	return start + n, err
}

// recoverPanic turns a panic in the front end into a closed connection:
// go-smtp recovers panics in command handlers but not in its read loop,
// which calls Read directly.
func (c *conn) recoverPanic(err *error) {
	if p := recover(); p != nil {
		metricPanics.WithLabelValues("conn").Inc()
		c.srv.log.Error("smtp front end panic", "conn_id", c.info.ID, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		c.Close()
		*err = errConnClosed
	}
}

// observe looks at the first bytes of a reply line. Called with wmu held.
func (c *conn) observe(head []byte) {
	if !c.awaitReply {
		return
	}
	c.awaitReply = false
	code := 0
	if len(head) >= 3 {
		code, _ = strconv.Atoi(string(head[:3]))
	}
	c.replyCode = code
	if code >= 400 {
		c.errorCount.Add(1)
	}
	if code == 421 {
		c.closeAfter.Store(true)
	}
	if c.injectEHLO && code == 250 && len(head) == 4 && head[3] == '-' {
		c.injectNow = true
	}
	c.injectEHLO = false
	c.dataReady = c.awaitData && code == 354
	c.awaitData = false
}

// ehloKeywords are the EHLO lines go-smtp cannot produce. Called with wmu
// held.
func (c *conn) ehloKeywords() string {
	var b strings.Builder
	if c.srv.tlsConfig != nil && !c.tlsActive {
		b.WriteString("250-STARTTLS\r\n")
	}
	c.mu.Lock()
	trusted := c.trusted
	c.mu.Unlock()
	if trusted {
		b.WriteString("250-XCLIENT ADDR NAME PORT PROTO HELO\r\n")
	}
	return b.String()
}

// writeRaw writes a reply of the front end's own. Error replies count
// toward MaxErrors.
func (c *conn) writeRaw(s string) {
	if len(s) >= 3 && s[0] >= '4' {
		c.errorCount.Add(1)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.under.SetWriteDeadline(time.Now().Add(c.srv.cfg.CommandTimeout)); err != nil {
		return
	}
	_, _ = io.WriteString(c.under, s) // the client is gone if this fails; Read will see it
}

// Close closes the socket once and releases the connection's limits.
func (c *conn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.cancel()
		err = c.raw.Close()
		c.srv.limits.release(c)
		c.srv.untrack(c)
	})
	return err
}

// LocalAddr is the address the client connected to.
func (c *conn) LocalAddr() net.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	return net.TCPAddrFromAddrPort(c.info.LocalAddr)
}

// RemoteAddr is the real client (after PROXY and XCLIENT).
func (c *conn) RemoteAddr() net.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	return net.TCPAddrFromAddrPort(netip.AddrPortFrom(c.info.RemoteIP, c.info.RemotePort))
}

// SetDeadline is go-smtp's; read deadlines belong to the front end.
func (c *conn) SetDeadline(t time.Time) error { return c.SetWriteDeadline(t) }

// SetReadDeadline is ignored: the front end sets its own per line and per
// DATA (go-smtp's ReadTimeout is left at zero).
func (c *conn) SetReadDeadline(time.Time) error { return nil }

// SetWriteDeadline applies go-smtp's WriteTimeout.
func (c *conn) SetWriteDeadline(t time.Time) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.under.SetWriteDeadline(t)
}

// drain asks the session to end at the next command boundary outside a
// transaction; a session idle in that state is woken at once.
func (c *conn) drain() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.draining = true
	if c.idle {
		_ = c.raw.SetReadDeadline(time.Now()) // wakes the blocked read; it then says 421
	}
}

// Session-facing accessors.

func (c *conn) snapshot() ConnInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.info
}

func (c *conn) helloNeeded() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.needHelo
}

func (c *conn) setTx(active bool) {
	c.mu.Lock()
	c.txActive = active
	c.mu.Unlock()
}

func (c *conn) lastCommand() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastLine
}

func addrPort(a net.Addr) (netip.AddrPort, bool) {
	switch a := a.(type) {
	case *net.TCPAddr:
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), ap.Addr().IsValid()
	case nil:
		return netip.AddrPort{}, false
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
}

// replyLine renders an *SMTPError from replyFor as one reply line.
func replyLine(err error) string {
	var se *gosmtp.SMTPError
	if !errors.As(err, &se) {
		return "451 4.3.0 temporary local problem"
	}
	e := se.EnhancedCode
	return fmt.Sprintf("%d %d.%d.%d %s", se.Code, e[0], e[1], e[2], se.Message)
}

func codeClass(err error) string {
	var r *Reject
	if errors.As(err, &r) && r.Code >= 500 && r.Code <= 599 {
		return "5xx"
	}
	return "4xx"
}
