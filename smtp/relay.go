package smtp

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"strings"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

// TLSMode is the STARTTLS policy of a relay.
type TLSMode string

// STARTTLS policies.
const (
	// TLSOpportunistic uses STARTTLS when the relay offers it; without the
	// offer it sends in cleartext. A failed handshake is a temporary
	// failure unless RelayOptions.PlainOnTLSFailure is set.
	TLSOpportunistic TLSMode = "opportunistic"
	// TLSRequired refuses to send without TLS (temporary failure).
	TLSRequired TLSMode = "required"
	// TLSOff never uses STARTTLS.
	TLSOff TLSMode = "off"
)

// RelayOptions configure a Relay. Zero values take the documented
// defaults.
type RelayOptions struct {
	// Hostname is our EHLO name. Required.
	Hostname string
	// TLS is the STARTTLS policy; "" means TLSOpportunistic.
	TLS TLSMode
	// TLSConfig is the base client configuration (cloned); ServerName
	// defaults to the relay's host.
	TLSConfig *tls.Config
	// CAFile adds a PEM bundle of trusted CAs (for internal relays).
	CAFile string
	// InsecureSkipVerify accepts any certificate (internal relays only).
	InsecureSkipVerify bool
	// PlainOnTLSFailure lets TLSOpportunistic reconnect in cleartext after
	// a failed handshake. Off by default: a broken TLS setup is a reason to
	// retry, not to downgrade.
	PlainOnTLSFailure bool
	// DialTimeout limits the TCP connect. Default 30s.
	DialTimeout time.Duration
	// CommandTimeout limits each command's reply and each write. Default 5
	// minutes (RFC 5321 §4.5.3.2).
	CommandTimeout time.Duration
	// DataTimeout limits the wait for the reply after the final dot.
	// Default 10 minutes.
	DataTimeout time.Duration
	// Dial replaces the network dialer (tests).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// IdleConns is how many sessions with the relay are kept open between
	// deliveries, to be reused instead of connecting, greeting and saying
	// QUIT for every message (Postfix's connection cache). Default 16;
	// negative keeps none.
	IdleConns int
	// IdleTimeout closes a kept session unused for this long. Default 2s
	// (Postfix's smtp_connection_cache_time_limit).
	IdleTimeout time.Duration
	// ReuseTimeLimit stops reusing a session this old. Default 300s
	// (Postfix's smtp_connection_reuse_time_limit).
	ReuseTimeLimit time.Duration
}

// Relay is a Transport that delivers to one SMTP server (host:port).
type Relay struct {
	addr string
	host string
	opts RelayOptions
	tls  *tls.Config
	idle idlePool
}

var _ Transport = (*Relay)(nil)

// NewRelay returns a Transport that delivers to addr.
func NewRelay(addr string, opts RelayOptions) (*Relay, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("smtp: relay address %q: %w", addr, err)
	}
	if opts.Hostname == "" || !printableASCII(opts.Hostname) {
		return nil, errors.New("smtp: relay: Hostname is required")
	}
	switch opts.TLS {
	case "":
		opts.TLS = TLSOpportunistic
	case TLSOpportunistic, TLSRequired, TLSOff:
	default:
		return nil, fmt.Errorf("smtp: relay: unknown TLS mode %q", opts.TLS)
	}
	setDefault(&opts.DialTimeout, 30*time.Second)
	setDefault(&opts.CommandTimeout, 5*time.Minute)
	setDefault(&opts.DataTimeout, 10*time.Minute)
	setDefault(&opts.IdleTimeout, 2*time.Second)
	setDefault(&opts.ReuseTimeLimit, 300*time.Second)
	if opts.IdleConns == 0 {
		opts.IdleConns = 16
	}
	if opts.Dial == nil {
		d := &net.Dialer{Timeout: opts.DialTimeout}
		opts.Dial = d.DialContext
	}
	cfg := &tls.Config{}
	if opts.TLSConfig != nil {
		cfg = opts.TLSConfig.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	if opts.InsecureSkipVerify {
		cfg.InsecureSkipVerify = true
	}
	if opts.CAFile != "" {
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("smtp: relay CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("smtp: relay CA file %s: no certificates", opts.CAFile)
		}
		cfg.RootCAs = pool
	}
	return &Relay{addr: addr, host: host, opts: opts, tls: cfg}, nil
}

// String returns the relay address.
func (r *Relay) String() string { return r.addr }

// relayConn is an open, greeted session with the relay.
type relayConn struct {
	c      *gosmtp.Client
	raw    net.Conn
	guard  *guardConn
	wire   io.Writer   // what go-smtp writes to (TLS over guard, or guard)
	stop   func() bool // unbinds the session from the delivery's context
	born   time.Time
	broken bool // the session is unusable (connection lost, stopped mid-DATA, 421)
}

// bind ties the session to one delivery's ctx: cancelling ctx unblocks
// any read or write at once.
func (rc *relayConn) bind(ctx context.Context) {
	rc.guard.ctx = ctx
	rc.stop = context.AfterFunc(ctx, func() { _ = rc.raw.SetDeadline(time.Now()) })
}

// quit says QUIT briefly and closes.
func (rc *relayConn) quit() {
	rc.c.CommandTimeout = min(rc.c.CommandTimeout, 10*time.Second)
	_ = rc.c.Quit() // best effort; Close below covers a failed QUIT
	_ = rc.raw.Close()
}

// gone marks the session broken when err says the relay is no longer
// there: an I/O error rather than a reply, or a 421 (the server closes).
func (rc *relayConn) gone(err error) {
	var se *gosmtp.SMTPError
	if err != nil && (!errors.As(err, &se) || se.Code == 421) {
		rc.broken = true
	}
}

// done ends a delivery's use of the session: kept for the next delivery
// when it is clean, else closed (with a QUIT unless it broke or the
// delivery was cancelled).
func (r *Relay) done(ctx context.Context, rc *relayConn) {
	switch {
	case !rc.stop() || ctx.Err() != nil || rc.broken:
		_ = rc.raw.Close()
	case time.Since(rc.born) >= r.opts.ReuseTimeLimit || r.opts.IdleConns < 0:
		rc.quit()
	default:
		rc.guard.ctx = context.Background() // the delivery's ctx ends now
		r.idle.put(rc, r.opts.IdleConns, r.opts.IdleTimeout)
	}
}

// Deliver sends m to the relay in as many transactions as needed (a 452
// 4.5.3 "too many recipients" defers the rest to the next transaction on
// the same connection) and returns one result per recipient.
func (r *Relay) Deliver(ctx context.Context, m Outgoing, body io.Reader) []RcptResult {
	if len(m.Rcpts) == 0 {
		return nil
	}
	rc := r.idle.take()
	if rc != nil {
		metricRelaySessions.WithLabelValues("reused").Inc()
		rc.bind(ctx)
	} else {
		var fail *RcptResult
		if rc, fail = r.connect(ctx); fail != nil {
			return allResults(m.Rcpts, *fail)
		}
		metricRelaySessions.WithLabelValues("new").Inc()
	}
	defer r.done(ctx, rc)
	utf8 := needsUTF8(m)
	if ok, _ := rc.c.Extension("SMTPUTF8"); utf8 && !ok {
		// RFC 6531 §3.2: without the extension such a message cannot be
		// sent; it bounces.
		return allResults(m.Rcpts, RcptResult{Code: 553, Enhanced: [3]int{5, 6, 7}, Perm: true,
			Text: "the downstream server does not support SMTPUTF8, which this message requires"})
	}
	results := map[string]RcptResult{}
	pending := m.Rcpts
	for first := true; len(pending) > 0; first = false {
		src := body
		if !first {
			f, err := m.Open()
			if err != nil {
				for _, rcpt := range pending {
					results[rcpt] = tempResult(rcpt, 451, [3]int{4, 3, 0}, "message unavailable", err.Error())
				}
				break
			}
			defer f.Close()
			src = f
		}
		next := r.transaction(rc, m, pending, utf8, src, results)
		if len(next) == len(pending) {
			break
		}
		pending = next
	}
	out := make([]RcptResult, len(m.Rcpts))
	for i, rcpt := range m.Rcpts {
		res, ok := results[rcpt]
		if !ok {
			res = tempResult(rcpt, 451, [3]int{4, 5, 3}, "not attempted (too many recipients for one transaction)", "")
		}
		out[i] = res
	}
	return out
}

// transaction runs MAIL, RCPT for each of rcpts, DATA. It records results
// and returns the recipients deferred by "452 4.5.3 too many recipients".
func (r *Relay) transaction(rc *relayConn, m Outgoing, rcpts []string, utf8 bool, body io.Reader, results map[string]RcptResult) []string {
	if err := rc.c.Mail(m.MailFrom, &gosmtp.MailOptions{UTF8: utf8}); err != nil {
		for _, rcpt := range rcpts {
			results[rcpt] = r.resultFor(rcpt, err)
		}
		rc.gone(err)
		if !rc.broken {
			rc.gone(rc.c.Reset()) // the next transaction, if any, starts clean
		}
		return nil
	}
	var accepted, deferred []string
	for i, rcpt := range rcpts {
		err := rc.c.Rcpt(rcpt, nil)
		var se *gosmtp.SMTPError
		reply := errors.As(err, &se)
		switch {
		case err == nil:
			accepted = append(accepted, rcpt)
		case reply && se.Code == 452 && (se.EnhancedCode == gosmtp.EnhancedCode{4, 5, 3} || se.EnhancedCode == gosmtp.EnhancedCodeNotSet):
			deferred = append(deferred, rcpt) // RFC 5321 §4.5.3.1.10: too many recipients
		case reply:
			results[rcpt] = r.resultFor(rcpt, err)
			rc.gone(err)
		default: // the connection is gone: nobody in this transaction got the message
			for _, rest := range append(accepted, rcpts[i:]...) {
				results[rest] = r.resultFor(rest, err)
			}
			rc.broken = true
			return nil
		}
	}
	if len(accepted) == 0 {
		if !rc.broken {
			rc.gone(rc.c.Reset())
		}
		return deferred
	}
	setAll := func(err error, text string) {
		for _, rcpt := range accepted {
			res := r.resultFor(rcpt, err)
			if err == nil {
				res = RcptResult{Rcpt: rcpt, Code: 250, Enhanced: [3]int{2, 0, 0}, Text: oneLine(text, 400), Remote: r.host}
			}
			results[rcpt] = res
		}
	}
	w, err := rc.c.Data()
	if err != nil {
		setAll(err, "")
		if rc.gone(err); !rc.broken {
			rc.gone(rc.c.Reset())
		}
		return deferred
	}
	if err := writeBody(w, rc.wire, body); err != nil {
		// Without the final dot the server discards what it got.
		setAll(err, "")
		rc.broken = true
		return nil
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		setAll(err, "")
		if !isSMTPError(err) {
			rc.broken = true
			return nil
		}
		rc.gone(err)
		return deferred
	}
	setAll(nil, resp.StatusText)
	return deferred
}

func isSMTPError(err error) bool {
	var se *gosmtp.SMTPError
	return errors.As(err, &se)
}

// resultFor turns a client error into a result: an SMTP reply keeps its
// code; anything else (network, timeout) is a temporary 4.4.2.
func (r *Relay) resultFor(rcpt string, err error) RcptResult {
	var se *gosmtp.SMTPError
	if errors.As(err, &se) && se.Code >= 400 && se.Code <= 599 {
		enh := [3]int(se.EnhancedCode)
		if enh[0] != se.Code/100 {
			enh = [3]int{se.Code / 100, 0, 0}
		}
		return RcptResult{Rcpt: rcpt, Code: se.Code, Enhanced: enh, Text: oneLine(se.Message, 400),
			Perm: se.Code >= 500, Remote: r.host}
	}
	return tempResult(rcpt, 451, [3]int{4, 4, 2}, "connection with the downstream server failed", errString(err))
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// connect dials, reads the greeting, says EHLO with our own name and
// negotiates STARTTLS per the policy, then hands the session to go-smtp's
// client. go-smtp's client would say "EHLO localhost" before STARTTLS and
// cannot fall back when STARTTLS is not offered, so the cleartext part is
// spoken here with net/textproto; go-smtp then gets the connection with a
// synthetic greeting and sends the post-TLS (or second) EHLO itself.
func (r *Relay) connect(ctx context.Context) (*relayConn, *RcptResult) {
	rc, fail := r.connectMode(ctx, r.opts.TLS)
	if fail != nil && fail.Enhanced == [3]int{4, 7, 5} && r.opts.TLS == TLSOpportunistic && r.opts.PlainOnTLSFailure {
		return r.connectMode(ctx, TLSOff)
	}
	return rc, fail
}

func (r *Relay) connectMode(ctx context.Context, mode TLSMode) (*relayConn, *RcptResult) {
	raw, err := r.opts.Dial(ctx, "tcp", r.addr)
	if err != nil {
		res := tempResult("", 451, [3]int{4, 4, 1}, "the downstream server did not answer", errString(err))
		return nil, &res
	}
	// Cancelling ctx unblocks any read or write at once.
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Now()) })
	conn := &guardConn{Conn: raw, ctx: ctx, timeout: r.opts.CommandTimeout}
	born := time.Now()
	fail := func(res RcptResult) (*relayConn, *RcptResult) {
		stop()
		_ = raw.Close()
		return nil, &res
	}
	var next net.Conn = conn
	if mode != TLSOff {
		tc, res := r.preTLS(ctx, conn, mode)
		if res != nil {
			return fail(*res)
		}
		if tc != nil {
			next = tc
		}
	}
	greeting := "220 " + r.host + " ESMTP (greeting already received)\r\n"
	if mode == TLSOff {
		greeting = "" // go-smtp reads the real one
	}
	c := gosmtp.NewClient(&greetedConn{Conn: next, pre: greeting})
	c.CommandTimeout = r.opts.CommandTimeout
	c.SubmissionTimeout = r.opts.DataTimeout
	if err := c.Hello(r.opts.Hostname); err != nil {
		return fail(r.sessionFailure(err))
	}
	return &relayConn{c: c, raw: raw, guard: conn, wire: next, stop: stop, born: born}, nil
}

// preTLS speaks the cleartext start: greeting, EHLO (HELO if refused) and
// STARTTLS when offered. It returns the TLS connection, or nil to go on in
// cleartext.
func (r *Relay) preTLS(ctx context.Context, conn net.Conn, mode TLSMode) (net.Conn, *RcptResult) {
	tp := textproto.NewConn(conn)
	_ = conn.SetReadDeadline(time.Now().Add(r.opts.CommandTimeout))
	defer conn.SetReadDeadline(time.Time{})
	if _, _, err := tp.ReadResponse(220); err != nil {
		res := r.sessionFailure(err)
		return nil, &res
	}
	ext, err := r.ehlo(tp)
	if err != nil {
		res := r.sessionFailure(err)
		return nil, &res
	}
	if _, ok := ext["STARTTLS"]; !ok {
		if mode == TLSRequired {
			res := tempResult("", 451, [3]int{4, 7, 10}, "the downstream server does not offer STARTTLS, which is required", "")
			return nil, &res
		}
		return nil, nil
	}
	if err := textCmd(tp, 220, "STARTTLS"); err != nil {
		if mode == TLSRequired || !isTextprotoError(err) {
			res := tempResult("", 451, [3]int{4, 7, 5}, "STARTTLS refused by the downstream server", errString(err))
			return nil, &res
		}
		return nil, nil // opportunistic: the offer was not meant
	}
	tc := tls.Client(conn, r.tls)
	_ = conn.SetDeadline(time.Now().Add(r.opts.CommandTimeout))
	err = tc.HandshakeContext(ctx)
	_ = conn.SetDeadline(time.Time{})
	if err != nil {
		res := tempResult("", 451, [3]int{4, 7, 5}, "TLS handshake with the downstream server failed", errString(err))
		return nil, &res
	}
	return tc, nil
}

// ehlo says EHLO with our name, or HELO when EHLO is refused, and returns
// the extension keywords.
func (r *Relay) ehlo(tp *textproto.Conn) (map[string]string, error) {
	id, err := tp.Cmd("EHLO %s", r.opts.Hostname)
	if err != nil {
		return nil, err
	}
	tp.StartResponse(id)
	_, msg, err := tp.ReadResponse(250)
	tp.EndResponse(id)
	var te *textproto.Error
	if errors.As(err, &te) && (te.Code == 500 || te.Code == 502) {
		return map[string]string{}, textCmd(tp, 250, "HELO "+r.opts.Hostname)
	}
	if err != nil {
		return nil, err
	}
	ext := map[string]string{}
	for i, line := range strings.Split(msg, "\n") {
		if i == 0 {
			continue
		}
		k, v, _ := strings.Cut(line, " ")
		ext[strings.ToUpper(k)] = v
	}
	return ext, nil
}

func textCmd(tp *textproto.Conn, want int, line string) error {
	id, err := tp.Cmd("%s", line)
	if err != nil {
		return err
	}
	tp.StartResponse(id)
	defer tp.EndResponse(id)
	_, _, err = tp.ReadResponse(want)
	return err
}

func isTextprotoError(err error) bool {
	var te *textproto.Error
	return errors.As(err, &te)
}

// sessionFailure: a refusal before MAIL (greeting, EHLO) is the server's
// state, not the message's, so even a 5xx is retried (as Postfix does with
// smtp_skip_5xx_greeting).
func (r *Relay) sessionFailure(err error) RcptResult {
	var te *textproto.Error
	var se *gosmtp.SMTPError
	code, msg := 0, ""
	switch {
	case errors.As(err, &te):
		code, msg = te.Code, te.Msg
	case errors.As(err, &se):
		code, msg = se.Code, se.Message
	default:
		return tempResult("", 451, [3]int{4, 4, 2}, "connection with the downstream server failed", errString(err))
	}
	return RcptResult{Code: 451, Enhanced: [3]int{4, 4, 0}, Remote: r.host,
		Text: oneLine(fmt.Sprintf("the downstream server refused the session: %d %s", code, msg), 400)}
}

// greetedConn replays a greeting already consumed, so that go-smtp's client
// can take over a session after STARTTLS or after our EHLO.
type greetedConn struct {
	net.Conn
	pre string
}

// Read serves the replayed greeting first.
func (g *greetedConn) Read(p []byte) (int, error) {
	if g.pre != "" {
		n := copy(p, g.pre)
		g.pre = g.pre[n:]
		return n, nil
	}
	return g.Conn.Read(p)
}

// guardConn gives every write its own deadline (go-smtp sets none while the
// message body is written) and fails at once after ctx is cancelled (go-smtp
// re-arms deadlines before each command, which would undo the cancel).
//
// It also gathers writes: go-smtp flushes its 4 KiB buffer as the body is
// written, which was a system call per 4 KiB; what is written is sent when
// the connection is next read (every command and the body's final dot are
// followed by a read of the reply), when relayWriteBuf is full, or on
// Close. A write error shows at that send.
type guardConn struct {
	net.Conn
	ctx     context.Context
	timeout time.Duration
	wbuf    []byte // written and not yet sent
}

// relayWriteBuf is how much guardConn gathers before sending.
const relayWriteBuf = 32 << 10

// Read sends what was written, and fails once ctx is done.
func (g *guardConn) Read(p []byte) (int, error) {
	if err := g.ctx.Err(); err != nil {
		return 0, err
	}
	if err := g.flush(); err != nil {
		return 0, err
	}
	return g.Conn.Read(p)
}

// Write fails once ctx is done; what it takes is sent by flush.
func (g *guardConn) Write(p []byte) (int, error) {
	if err := g.ctx.Err(); err != nil {
		return 0, err
	}
	if len(g.wbuf)+len(p) > relayWriteBuf {
		if err := g.flush(); err != nil {
			return 0, err
		}
		if len(p) >= relayWriteBuf {
			return g.send(p)
		}
	}
	if g.wbuf == nil {
		g.wbuf = make([]byte, 0, relayWriteBuf)
	}
	g.wbuf = append(g.wbuf, p...)
	return len(p), nil
}

// flush sends what was written.
func (g *guardConn) flush() error {
	if len(g.wbuf) == 0 {
		return nil
	}
	_, err := g.send(g.wbuf)
	g.wbuf = g.wbuf[:0]
	return err
}

// send writes p with its own deadline.
func (g *guardConn) send(p []byte) (int, error) {
	if err := g.ctx.Err(); err != nil {
		return 0, err
	}
	if err := g.Conn.SetWriteDeadline(time.Now().Add(g.timeout)); err != nil {
		return 0, err
	}
	return g.Conn.Write(p)
}

// Close sends what was written (a QUIT or a TLS close alert) and closes.
func (g *guardConn) Close() error {
	ferr := g.flush()
	return errors.Join(g.Conn.Close(), ferr)
}

// crlfReader turns a bare CR or bare LF into CRLF, so that what is relayed
// has only CRLF line ends (go-smtp's dot writer fixes bare LF but passes a
// bare CR, which some servers would treat as a line end).
type crlfReader struct {
	r       io.Reader
	cr      bool // the last byte returned was CR
	pending []byte
	buf     [4096]byte
	out     []byte // convert's result
	err     error
}

// Read implements io.Reader.
func (c *crlfReader) Read(p []byte) (int, error) {
	for len(c.pending) == 0 {
		if c.err != nil {
			if c.cr { // a CR at the very end
				c.cr = false
				c.pending = []byte{'\n'}
				break
			}
			return 0, c.err
		}
		n, err := c.r.Read(c.buf[:])
		c.err = err
		c.pending = c.convert(c.buf[:n])
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

// convert returns in with bare CRs and LFs made CRLF, in c.out (valid
// until the next call). It copies the runs between line ends whole: the
// body was converted a byte at a time, 6 % of the relay's CPU for 100 KB
// messages.
func (c *crlfReader) convert(in []byte) []byte {
	out := c.out[:0]
	if c.cr && len(in) > 0 { // the last chunk ended in CR
		c.cr = false
		out = append(out, '\n')
		if in[0] == '\n' {
			in = in[1:]
		}
	}
	for len(in) > 0 {
		i := indexLineEnd(in)
		if i < 0 {
			out = append(out, in...)
			break
		}
		out = append(out, in[:i]...)
		b := in[i]
		in = in[i+1:]
		switch {
		case b == '\n': // bare LF
			out = append(out, '\r', '\n')
		case len(in) == 0: // CR at the end of the chunk: its LF may come next
			out = append(out, '\r')
			c.cr = true
		default:
			out = append(out, '\r', '\n')
			if in[0] == '\n' {
				in = in[1:]
			}
		}
	}
	c.out = out
	return out
}

// indexLineEnd returns the index of the first CR or LF in p, or -1.
func indexLineEnd(p []byte) int {
	lf := bytes.IndexByte(p, '\n')
	head := p
	if lf >= 0 {
		head = p[:lf]
	}
	if cr := bytes.IndexByte(head, '\r'); cr >= 0 {
		return cr
	}
	return lf
}
