package smtp

import (
	"bufio"
	"errors"
	"io"
	"math/rand/v2"

	gosmtp "github.com/emersion/go-smtp"
)

// The oracle: the DATA path as it was before bodyReader, assembled from
// copies of its parts, for the differential tests. Wire bytes went
//
//	socket -> front end (oldFrontEnd: end of data, bare CR/LF on the wire)
//	       -> go-smtp's lineLimitReader -> bufio (4096) -> go-smtp's dataReader
//	       -> checkReader (bare CR/LF and NUL in the output, size) -> Handler
//
// and after the Handler go-smtp drained its dataReader without the size
// limit. The go-smtp parts are copied from v0.25.1 (MIT, Copyright (c) 2010
// The Go Authors, 2014 Gleb Smirnoff, 2016 emersion), data.go and
// lengthlimit_reader.go, unchanged but for names and the check switches.

// oracleChecks switches the old checks on and off, to learn which
// violations an input holds on its own.
type oracleChecks struct{ size, line, bare, nul bool }

var allChecks = oracleChecks{true, true, true, true}

// oracleResult is what the old path did with one DATA body.
type oracleResult struct {
	out []byte  // what the Handler read
	rej *Reject // the stream's verdict; nil: accepted
	end int     // wire bytes consumed when go-smtp had the end; -1: connection lost
}

// errReadPastEnd is returned if go-smtp reads on after the end of data:
// the oracle is broken.
var errReadPastEnd = errors.New("oracle: read past the end of data")

const (
	dotBeginLine = iota
	dotDot
	dotDotCR
	dotCR
	dotData
	dotEOF
)

// oldFrontEnd is conn.readData before bodyReader.
type oldFrontEnd struct {
	br       *bufio.Reader
	dotState int
	rawCR    bool
	bare     bool
	used     int
}

func (c *oldFrontEnd) Read(p []byte) (int, error) {
	if c.dotState == dotEOF {
		return 0, errReadPastEnd
	}
	if c.br.Buffered() == 0 {
		if _, err := c.br.Peek(1); err != nil {
			return 0, err
		}
	}
	buf, _ := c.br.Peek(min(c.br.Buffered(), len(p)))
	n := 0
	for n < len(buf) && c.dotState != dotEOF {
		b := buf[n]
		if b == '\n' && !c.rawCR || c.rawCR && b != '\n' {
			c.bare = true
		}
		c.rawCR = b == '\r'
		c.dotState = nextDotState(c.dotState, b)
		n++
	}
	copy(p, buf[:n])
	_, _ = c.br.Discard(n)
	c.used += n
	return n, nil
}

func nextDotState(state int, b byte) int {
	switch state {
	case dotBeginLine:
		switch b {
		case '.':
			return dotDot
		case '\r':
			return dotCR
		}
		return dotData
	case dotDot:
		if b == '\r' {
			return dotDotCR
		}
		return dotData
	case dotDotCR:
		if b == '\n' {
			return dotEOF
		}
		return dotData
	case dotCR:
		if b == '\n' {
			return dotBeginLine
		}
		return dotData
	default: // dotData
		if b == '\r' {
			return dotCR
		}
		return dotData
	}
}

// goLineLimitReader is go-smtp's lineLimitReader.
type goLineLimitReader struct {
	R             io.Reader
	LineLimit     int
	curLineLength int
}

func (r *goLineLimitReader) Read(b []byte) (int, error) {
	if r.curLineLength > r.LineLimit && r.LineLimit > 0 {
		return 0, gosmtp.ErrTooLongLine
	}
	n, err := r.R.Read(b)
	if err != nil {
		return n, err
	}
	if r.LineLimit == 0 {
		return n, nil
	}
	for _, chr := range b[:n] {
		if chr == '\n' {
			r.curLineLength = 0
		}
		r.curLineLength++
		if r.curLineLength > r.LineLimit {
			return 0, gosmtp.ErrTooLongLine
		}
	}
	return n, nil
}

// goDataReader is go-smtp's dataReader.
type goDataReader struct {
	r       *bufio.Reader
	state   int
	limited bool
	n       int64
}

func (r *goDataReader) Read(b []byte) (n int, err error) {
	if r.limited {
		if r.n <= 0 {
			return 0, gosmtp.ErrDataTooLarge
		}
		if int64(len(b)) > r.n {
			b = b[0:r.n]
		}
	}
	const (
		stateBeginLine = iota
		stateDot
		stateDotCR
		stateCR
		stateData
		stateEOF
	)
	for n < len(b) && r.state != stateEOF {
		var c byte
		c, err = r.r.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			break
		}
		switch r.state {
		case stateBeginLine:
			if c == '.' {
				r.state = stateDot
				continue
			}
			if c == '\r' {
				r.state = stateCR
				break
			}
			r.state = stateData
		case stateDot:
			if c == '\r' {
				r.state = stateDotCR
				continue
			}
			r.state = stateData
		case stateDotCR:
			if c == '\n' {
				r.state = stateEOF
				continue
			}
			r.state = stateData
		case stateCR:
			if c == '\n' {
				r.state = stateBeginLine
				break
			}
			r.state = stateData
		case stateData:
			if c == '\r' {
				r.state = stateCR
			}
		}
		b[n] = c
		n++
	}
	if err == nil && r.state == stateEOF {
		err = io.EOF
	}
	if r.limited {
		r.n -= int64(n)
	}
	return
}

// oldCheckReader is checkReader before bodyReader, with the check switches.
type oldCheckReader struct {
	r      io.Reader
	max    int64
	wire   *bool
	checks oracleChecks
	n      int64
	cr     bool
	eof    bool
	rej    *Reject
}

func (c *oldCheckReader) Read(p []byte) (int, error) {
	if c.rej != nil {
		return 0, c.rej
	}
	if c.eof {
		return 0, io.EOF
	}
	n, err := c.r.Read(p)
	for i := 0; i < n; i++ {
		b := p[i]
		if c.checks.bare && ((b == '\n' && !c.cr) || (c.cr && b != '\n')) {
			c.rej = errBareNewline
			return i, c.rej
		}
		if c.checks.nul && b == 0 {
			c.rej = errNUL
			return i, c.rej
		}
		c.cr = b == '\r'
	}
	if c.checks.bare && *c.wire {
		c.rej = errBareNewline
		return 0, c.rej
	}
	c.n += int64(n)
	if c.checks.size && c.n > c.max {
		c.rej = errTooBig
		return 0, c.rej
	}
	switch {
	case err == nil:
		return n, nil
	case errors.Is(err, io.EOF):
		if c.checks.bare && c.cr {
			c.rej = errBareNewline
			return n, c.rej
		}
		c.eof = true
		return n, io.EOF
	}
	c.rej = streamReject(err)
	return n, c.rej
}

// oracle runs wire through the old path: src feeds the front end's buffer
// of brSize bytes, the Handler reads with a buffer of readSize bytes until
// an error, then go-smtp drains.
func oracle(src io.Reader, brSize, readSize int, lineLimit int, max int64, checks oracleChecks) oracleResult {
	fe := &oldFrontEnd{br: bufio.NewReaderSize(src, brSize)}
	ll := &goLineLimitReader{R: fe, curLineLength: 1} // after "DATA\r\n"
	if checks.line {
		ll.LineLimit = lineLimit
	}
	dr := &goDataReader{r: bufio.NewReader(ll), limited: checks.size, n: max}
	cr := &oldCheckReader{r: dr, max: max, wire: &fe.bare, checks: checks}
	var res oracleResult
	res.out, res.rej = handlerRead(cr, readSize)
	dr.limited = false
	res.end = -1
	if _, err := io.Copy(io.Discard, dr); err == nil {
		res.end = fe.used
	} else if errors.Is(err, errReadPastEnd) {
		panic(err)
	}
	return res
}

// handlerRead reads r to its end the way a Handler does, with reads of
// readSize bytes, and returns the stream's verdict.
func handlerRead(r io.Reader, readSize int) ([]byte, *Reject) {
	var out []byte
	buf := make([]byte, readSize)
	for {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		switch {
		case err == io.EOF:
			return out, nil
		case err != nil:
			var rej *Reject
			if !errors.As(err, &rej) {
				panic("stream error is not a *Reject: " + err.Error())
			}
			return out, rej
		}
	}
}

// chunkReader hands out data in pieces of random sizes up to maxChunk
// (1: one byte at a time), then err (io.EOF when nil).
type chunkReader struct {
	data     []byte
	rnd      *rand.Rand
	maxChunk int
	err      error
	pos      int
}

func newChunkReader(data []byte, seed uint64, maxChunk int) *chunkReader {
	return &chunkReader{data: data, rnd: rand.New(rand.NewPCG(seed, 1)), maxChunk: maxChunk}
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if c.pos == len(c.data) {
		if c.err != nil {
			return 0, c.err
		}
		return 0, io.EOF
	}
	k := min(len(p), len(c.data)-c.pos, 1+c.rnd.IntN(c.maxChunk))
	n := copy(p, c.data[c.pos:c.pos+k])
	c.pos += n
	return n, nil
}
