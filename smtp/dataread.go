package smtp

import (
	"bufio"
	"bytes"
	"io"
	"math"
	"sync"

	gosmtp "github.com/emersion/go-smtp"
)

// bodyBufSize is the read buffer of a DATA body once the front end's own
// buffer (MaxCommandLength, 4 KiB by default) is used up: 64 KiB reads take
// a 100 KB message in 2 read calls instead of 25.
const bodyBufSize = 64 << 10

// bodyReader is the DATA body parser: it reads the wire from the front
// end's buffered reader, undoes dot-stuffing, finds the end of data and
// applies the message checks, all in one pass over runs of bytes.
//
// It exists for speed. go-smtp's dataReader takes one bufio.ReadByte call
// per byte, behind a lineLimitReader that looks at every byte again, and
// the front end and checkReader each used to look at every byte once more
// (end of data, bare CR/LF on the wire, bare CR/LF and NUL in the output):
// about 1 ms of CPU per 100 KB message. Here a line costs a few
// bytes.IndexByte calls and one copy, and the socket is read in pieces of
// bodyBufSize rather than of the command line buffer.
//
// What it guarantees, for every input and however the input is split
// across reads:
//   - The bytes it hands out are those go-smtp's dataReader would hand out
//     (v0.25.1, data.go, itself from net/textproto): CRLF kept, a leading
//     dot removed, the final ".\r\n" not included, and its quirks kept (a
//     ".\r" at the start of a line that is not followed by LF loses the CR;
//     a CR right after a CR does not start a line end).
//   - It consumes the wire exactly up to where go-smtp's state machine
//     ends the body (CRLF "." CRLF, or "." CRLF as the first line); bytes
//     it read beyond are given back (wireReader), so that what follows is
//     read as commands again by the front end.
//   - Checks, at the byte where one first fails (with several violations
//     the first on the wire wins; the old layered path picked one of them
//     depending on read sizes): a bare CR or bare LF anywhere on the wire,
//     the end-of-data line included (errBareNewline: it looks at the wire,
//     so the ".\r" that go-smtp drops is seen); NUL (errNUL);
//     MaxMessageBytes of message or more (errTooBig: go-smtp refuses to
//     read on once it has handed out that many, even when only the
//     end-of-data line follows); a run of MaxLineLength bytes or more
//     without LF, CR included, counted on the wire as go-smtp's
//     lineLimitReader does (errLineTooLong); read errors (streamReject:
//     errDataTimeout, errDataAborted).
//
// After the Handler is done, discardRest reads the rest of the body without
// the message checks (as go-smtp's drain does), and the front end then
// gives go-smtp a bare ".\r\n" to end its own dataReader. A line over the
// limit or a read error is fatal: the front end hands that error to go-smtp
// as its lineLimitReader or the socket would have, and go-smtp ends the
// connection after the reply.
type bodyReader struct {
	front     *bufio.Reader // the front end's reader: the body's first bytes may be there
	wire      *wireReader   // front's source, read directly once front is empty
	bufs      *sync.Pool    // of *bufio.Reader, for big
	big       *bufio.Reader // reads wire after front, while the body lasts
	arm       func() error  // before a read that may block: sets the deadline
	lineLimit int           // go-smtp's MaxLineLength; 0: none
	max       int64         // go-smtp's MaxMessageBytes

	st     bodyState
	prevCR bool  // the previous wire byte was CR
	line   int   // go-smtp's lineLimitReader count
	n      int64 // message bytes handed out
	eof    bool  // the Handler got io.EOF
	rej    *Reject
	fatal  error // the raw read error or gosmtp.ErrTooLongLine
}

// bodyState is a state of go-smtp's dataReader.
type bodyState uint8

const (
	bodyBeginLine bodyState = iota
	bodyDot                 // "." at the start of a line
	bodyDotCR               // ".\r" at the start of a line
	bodyCR                  // "\r", maybe a line end
	bodyData                // inside a line
	bodyEOF                 // the end-of-data line has been read
)

var _ messageReader = (*bodyReader)(nil)

// newBodyReader starts a body right after the DATA command line (go-smtp's
// lineLimitReader has just counted its LF): front is the front end's reader
// and wire its source; bufs gives the *bufio.Reader for the rest of the
// body. maxBytes <= 0 is no limit.
func newBodyReader(front *bufio.Reader, wire *wireReader, bufs *sync.Pool, arm func() error, lineLimit int, maxBytes int64) *bodyReader {
	if maxBytes <= 0 {
		maxBytes = math.MaxInt64
	}
	return &bodyReader{front: front, wire: wire, bufs: bufs, arm: arm, lineLimit: lineLimit, max: maxBytes, line: 1}
}

// Read hands the Handler the message (see the type comment).
func (b *bodyReader) Read(p []byte) (int, error) {
	switch {
	case b.rej != nil:
		return 0, b.rej
	case b.st == bodyEOF:
		b.eof = true
		return 0, io.EOF
	}
	n := b.read(p, false)
	switch {
	case n > 0:
		return n, nil
	case b.rej != nil:
		return 0, b.rej
	case b.st == bodyEOF:
		b.eof = true
		return 0, io.EOF
	}
	return 0, nil // len(p) == 0
}

// result reports the message bytes handed out, whether the Handler read to
// the end, and the reason the stream failed, if it did.
func (b *bodyReader) result() (int64, bool, *Reject) { return b.n, b.eof, b.rej }

// discardRest reads the rest of the body without the message checks. It
// returns nil at the end of data, or the fatal error (over-long line, read
// error) that go-smtp must see instead.
func (b *bodyReader) discardRest() error {
	for b.fatal == nil && b.st != bodyEOF {
		b.read(nil, true)
	}
	return b.fatal
}

// read parses buffered wire bytes into p until p is full, the body ends, a
// check fails or the buffer is empty; it blocks for more input only when it
// has produced nothing yet. discard drops the output and skips the message
// checks.
func (b *bodyReader) read(p []byte, discard bool) int {
	n := 0
	for b.st != bodyEOF && b.fatal == nil && (discard || b.rej == nil && n < len(p)) {
		r := b.source()
		if r.Buffered() == 0 {
			if n > 0 {
				break
			}
			if err := b.fill(r); err != nil {
				b.fail(err)
				break
			}
		}
		buf, _ := r.Peek(r.Buffered())
		used, out := b.scan(buf, p[n:], discard)
		_, _ = r.Discard(used) // used <= Buffered
		n += out
	}
	if b.st == bodyEOF || b.fatal != nil {
		b.release()
	}
	return n
}

// source is the reader the next body bytes come from: the front end's
// while it has some, then big.
func (b *bodyReader) source() *bufio.Reader {
	if b.big == nil {
		if b.front.Buffered() > 0 {
			return b.front
		}
		b.big = b.bufs.Get().(*bufio.Reader)
		b.big.Reset(b.wire)
	}
	return b.big
}

// release gives back what big read beyond the body, for the front end to
// read as commands, and returns big to the pool.
func (b *bodyReader) release() {
	if b.big == nil {
		return
	}
	rest, _ := b.big.Peek(b.big.Buffered())
	b.wire.unread(rest)
	b.big.Reset(nil)
	b.bufs.Put(b.big)
	b.big = nil
}

// fill waits for wire bytes under the deadline.
func (b *bodyReader) fill(r *bufio.Reader) error {
	if err := b.arm(); err != nil {
		return err
	}
	_, err := r.Peek(1)
	return err
}

// fail records a fatal error and the Handler's view of it.
func (b *bodyReader) fail(err error) {
	b.fatal = err
	if b.rej == nil {
		b.rej = streamReject(err)
	}
}

// scan parses buf into out, returning the wire bytes used and the message
// bytes produced. Inside a line it moves whole runs up to the next CR or
// LF; line ends, line starts and every failing byte go through step.
func (b *bodyReader) scan(buf, out []byte, discard bool) (used, n int) {
	for used < len(buf) && b.st != bodyEOF {
		if !discard && n == len(out) {
			return used, n
		}
		if b.st == bodyData && !b.prevCR {
			run := b.run(buf[used:], discard, len(out)-n)
			if !discard {
				copy(out[n:], run)
				n += len(run)
				b.n += int64(len(run))
			}
			used += len(run)
			b.line += len(run)
			if len(run) > 0 {
				continue
			}
		}
		var ok bool
		if n, ok = b.step(buf[used], out, n, discard); !ok {
			return used, n
		}
		used++
	}
	return used, n
}

// run returns the longest prefix of buf that is plain line content
// acceptable as it is: no CR, no LF, within the line limit and, when
// checking, no NUL, within the size limit and within room.
func (b *bodyReader) run(buf []byte, discard bool, room int) []byte {
	if i := bytes.IndexByte(buf, '\n'); i >= 0 {
		buf = buf[:i]
	}
	if i := bytes.IndexByte(buf, '\r'); i >= 0 {
		buf = buf[:i]
	}
	if b.lineLimit > 0 && len(buf) > b.lineLimit-b.line {
		buf = buf[:b.lineLimit-b.line] // b.line <= b.lineLimit always
	}
	if discard {
		return buf
	}
	room = int(min(int64(room), b.max-b.n))
	if len(buf) > room {
		buf = buf[:room]
	}
	if i := bytes.IndexByte(buf, 0); i >= 0 {
		buf = buf[:i]
	}
	return buf
}

// step takes one wire byte c through the checks and go-smtp's state
// machine, writing its output, if any, to out[n]. It reports false, with
// the byte not taken, when a check failed.
func (b *bodyReader) step(c byte, out []byte, n int, discard bool) (int, bool) {
	if !discard && b.n >= b.max {
		// go-smtp's dataReader refuses to read on once it has handed out
		// MaxMessageBytes, even when only the end-of-data line follows.
		b.rej = errTooBig
		return n, false
	}
	line := b.line + 1 // go-smtp's lineLimitReader: LF starts the count at 1
	if c == '\n' {
		line = 1
	}
	if b.lineLimit > 0 && line > b.lineLimit {
		b.fail(gosmtp.ErrTooLongLine)
		return n, false
	}
	if !discard {
		if c == '\n' && !b.prevCR || b.prevCR && c != '\n' {
			b.rej = errBareNewline
			return n, false
		}
		if c == 0 {
			b.rej = errNUL
			return n, false
		}
	}
	b.line, b.prevCR = line, c == '\r'
	if b.advance(c) && !discard {
		out[n] = c
		n++
		b.n++
	}
	return n, true
}

// advance is go-smtp's dataReader state machine; it reports whether c is
// part of the message.
func (b *bodyReader) advance(c byte) bool {
	switch b.st {
	case bodyBeginLine:
		switch c {
		case '.':
			b.st = bodyDot
			return false
		case '\r':
			b.st = bodyCR
		default:
			b.st = bodyData
		}
	case bodyDot:
		if c == '\r' {
			b.st = bodyDotCR
			return false
		}
		b.st = bodyData
	case bodyDotCR:
		if c == '\n' {
			b.st = bodyEOF
			return false
		}
		b.st = bodyData
	case bodyCR:
		if c == '\n' {
			b.st = bodyBeginLine
		} else {
			b.st = bodyData
		}
	case bodyData:
		if c == '\r' {
			b.st = bodyCR
		}
	}
	return true
}

// wireReader is the source of the front end's reader: the socket, after
// the bytes a DATA body read ahead of its end (pipelined commands) and
// gave back.
type wireReader struct {
	r    io.Reader
	back []byte
}

// Read implements io.Reader.
func (w *wireReader) Read(p []byte) (int, error) {
	if len(w.back) > 0 {
		n := copy(p, w.back)
		w.back = w.back[n:]
		return n, nil
	}
	return w.r.Read(p)
}

// unread puts p before what is left to read.
func (w *wireReader) unread(p []byte) {
	if len(p) > 0 {
		w.back = append(append([]byte(nil), p...), w.back...)
	}
}

// buffered is the number of bytes given back and not read yet.
func (w *wireReader) buffered() int { return len(w.back) }
