package smtp

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

// session is the go-smtp Session of one connection. go-smtp calls Mail,
// Rcpt and Reset from the connection goroutine, and Data from another one
// for BDAT, hence the mutex.
type session struct {
	srv *Server
	c   *conn

	mu       sync.Mutex
	env      *Envelope
	seen     map[string]bool
	nonLocal bool
}

// Reset ends the transaction (RSET, EHLO, end of DATA).
func (s *session) Reset() {
	s.mu.Lock()
	s.env, s.seen, s.nonLocal = nil, nil, false
	s.mu.Unlock()
	s.c.setTx(false)
}

// Logout is called when the connection ends or after STARTTLS.
func (s *session) Logout() error {
	s.Reset()
	return nil
}

// reject counts a refusal and turns it into its reply.
func (s *session) reject(stage string, err error, id string) error {
	metricRejections.WithLabelValues(stage, codeClass(err), reasonFor(err)).Inc()
	return replyFor(err, id)
}

// Mail starts a transaction: the transaction ID is created here.
func (s *session) Mail(_ string, opts *gosmtp.MailOptions) error {
	id := NewID()
	if s.c.helloNeeded() {
		return s.reject("mail", errNeedHelo, id)
	}
	arg, ok := pathArg(s.c.lastCommand(), "FROM:")
	if !ok {
		return s.reject("mail", errBadSender, id)
	}
	m, verdict := parsePath(arg, true, opts.UTF8)
	switch verdict {
	case addrBadSyntax:
		return s.reject("mail", errBadSender, id)
	case addrRouted:
		return s.reject("mail", errRoutedSender, id)
	case addrNeedUTF8:
		return s.reject("mail", errNeedUTF8, id)
	}
	info := s.c.snapshot()
	env := &Envelope{
		ID:        id,
		Conn:      info,
		MailFrom:  m.String(),
		Direction: direction(info.Internal, false),
		SMTPUTF8:  opts.UTF8,
		EightBit:  opts.Body == gosmtp.Body8BitMIME,
		Size:      opts.Size,
		Received:  time.Now(),
	}
	if err := s.srv.h.Mail(s.c.ctx, env); err != nil {
		return s.reject("mail", err, id)
	}
	s.mu.Lock()
	s.env, s.seen, s.nonLocal = env, map[string]bool{}, false
	s.mu.Unlock()
	s.c.setTx(true)
	return nil
}

func direction(internal, nonLocal bool) Direction {
	switch {
	case !internal:
		return Inbound
	case nonLocal:
		return Outbound
	}
	return Internal
}

// Rcpt applies address syntax and relay control, then asks the Handler.
func (s *session) Rcpt(_ string, _ *gosmtp.RcptOptions) error {
	s.mu.Lock()
	env := s.env
	s.mu.Unlock()
	if env == nil {
		return s.reject("rcpt", &Reject{503, [3]int{5, 5, 1}, "need MAIL command"}, "")
	}
	m, err := s.recipient(env)
	if err != nil {
		return s.reject("rcpt", err, env.ID)
	}
	local := s.srv.local.local(m)
	if !local && !env.Conn.Internal {
		return s.reject("rcpt", errRelayDenied, env.ID)
	}
	rcpt := m.String()
	key := m.local + "@" + m.ascii
	if m.literal {
		key = m.local + "@" + m.domain
	}
	s.mu.Lock()
	dup := s.seen[key]
	prevDir := env.Direction
	env.Direction = direction(env.Conn.Internal, s.nonLocal || !local)
	s.mu.Unlock()
	if dup {
		return nil // already a recipient: accept, deliver once
	}
	if err := s.srv.h.Rcpt(s.c.ctx, env, rcpt); err != nil {
		s.mu.Lock()
		env.Direction = prevDir
		s.mu.Unlock()
		return s.reject("rcpt", err, env.ID)
	}
	s.mu.Lock()
	env.Rcpts = append(env.Rcpts, rcpt)
	s.seen[key] = true
	s.nonLocal = s.nonLocal || !local
	s.mu.Unlock()
	return nil
}

// recipient parses the RCPT TO path from the raw command line.
func (s *session) recipient(env *Envelope) (mailbox, error) {
	arg, ok := pathArg(s.c.lastCommand(), "TO:")
	if !ok {
		return mailbox{}, errBadRcpt
	}
	m, verdict := parsePath(arg, false, env.SMTPUTF8)
	switch verdict {
	case addrBadSyntax:
		return m, errBadRcpt
	case addrRouted:
		return m, errRoutedRcpt
	case addrNeedUTF8:
		return m, errNeedUTF8
	}
	return m, nil
}

// messageReader is the checked stream a Handler reads: bodyReader for
// DATA, checkReader for BDAT.
type messageReader interface {
	io.Reader
	// result reports the message bytes handed out, whether the reader
	// returned io.EOF, and why the stream failed, if it did.
	result() (n int64, eof bool, rej *Reject)
}

// Data streams the message to the Handler through the strict reader. The
// reply is 250 only if the Handler accepted and the stream was clean and
// fully read. For DATA the Handler reads the front end's own parser of the
// wire, not r (see bodyReader); go-smtp's drain of r then ends the body.
func (s *session) Data(r io.Reader) error {
	var in messageReader = &checkReader{r: r, max: s.srv.cfg.MaxMessageBytes}
	if body := s.c.beginData(); body != nil {
		in = body
	}
	s.mu.Lock()
	env := s.env
	s.mu.Unlock()
	if env == nil {
		_, _ = io.Copy(io.Discard, r) // go-smtp does not call Data without MAIL; be safe
		return s.reject("data", &Reject{503, [3]int{5, 5, 1}, "need MAIL command"}, "")
	}
	start := time.Now()
	err := s.srv.h.Data(s.c.ctx, env, in)
	n, eof, rej := in.result()
	switch {
	case rej != nil:
		err = rej // the stream failed: never accept, whatever the handler said
	case err == nil && !eof:
		_, _ = io.Copy(io.Discard, in) // errors land in the result
		err = errHandlerNoDrain
		if n, _, rej = in.result(); rej != nil {
			err = rej
		}
	}
	metricDataDuration.Observe(time.Since(start).Seconds())
	metricBytes.Add(float64(n))
	if err != nil {
		s.srv.log.Debug("smtp data refused", "msg_id", env.ID, "err", err)
		return s.reject("data", err, env.ID)
	}
	metricMessages.WithLabelValues(string(env.Direction)).Inc()
	return queuedReply(env.ID)
}

// checkReader is the stream a Handler reads for BDAT: it refuses bare CR
// and bare LF (SMTP smuggling; RFC 5321 §2.3.8) and NUL, enforces the size
// limit, and turns go-smtp's and the network's errors into Rejects. DATA
// has bodyReader, which does the same on the wire in one pass.
type checkReader struct {
	r   io.Reader
	max int64
	n   int64
	cr  bool // the previous byte was CR
	eof bool
	rej *Reject
}

// Read implements io.Reader.
func (c *checkReader) Read(p []byte) (int, error) {
	if c.rej != nil {
		return 0, c.rej
	}
	if c.eof {
		return 0, io.EOF
	}
	n, err := c.r.Read(p)
	for i := 0; i < n; i++ {
		b := p[i]
		if (b == '\n' && !c.cr) || (c.cr && b != '\n') {
			c.rej = errBareNewline
			return i, c.rej
		}
		if b == 0 {
			c.rej = errNUL
			return i, c.rej
		}
		c.cr = b == '\r'
	}
	c.n += int64(n)
	if c.n > c.max {
		c.rej = errTooBig
		return 0, c.rej
	}
	switch {
	case err == nil:
		return n, nil
	case errors.Is(err, io.EOF):
		if c.cr {
			c.rej = errBareNewline
			return n, c.rej
		}
		c.eof = true
		return n, io.EOF
	}
	c.rej = streamReject(err)
	return n, c.rej
}

func (c *checkReader) result() (int64, bool, *Reject) { return c.n, c.eof, c.rej }

var _ messageReader = (*checkReader)(nil)

func streamReject(err error) *Reject {
	var ne net.Error
	switch {
	case errors.Is(err, gosmtp.ErrDataTooLarge):
		return errTooBig
	case errors.Is(err, gosmtp.ErrTooLongLine):
		return errLineTooLong
	case errors.As(err, &ne) && ne.Timeout():
		return errDataTimeout
	}
	return errDataAborted
}
