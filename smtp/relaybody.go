package smtp

import (
	"bytes"
	"io"
	"sync"
)

// writeBody sends a message body after go-smtp's DATA command has had its
// 354: CRLF line ends (crlfReader), a dot doubled at the start of a line
// (RFC 5321 §4.5.2), and the terminating dot. body is read until io.EOF.
//
// go-smtp's dot writer (net/textproto's) does the same a byte at a time,
// which was 14 % of the relay's CPU for 100 KB messages. So the body goes
// straight to wire, the connection go-smtp writes to (nothing of go-smtp's
// is buffered after the 354: it flushed the DATA command before reading
// the reply), with whole runs between line ends copied. The body's last
// line end is held back and written through dw, go-smtp's dot writer, so
// that its Close adds ".\r\n" (or "\r\n.\r\n" after a body without a
// final line end) exactly as after the whole body; dw's CloseWithResponse
// is left to the caller.
func writeBody(dw io.Writer, wire io.Writer, body io.Reader) error {
	st := stufferPool.Get().(*dotStuffer)
	defer func() { st.w = nil; stufferPool.Put(st) }()
	st.reset(wire)
	for {
		n, rerr := body.Read(st.in)
		if n > 0 {
			if err := st.write(st.crlf.convert(st.in[:n])); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	if st.crlf.cr { // a CR at the very end
		if err := st.write([]byte{'\n'}); err != nil {
			return err
		}
	}
	if err := st.flush(); err != nil {
		return err
	}
	if len(st.held) > 0 {
		_, err := dw.Write(st.held)
		return err
	}
	return nil
}

var stufferPool = sync.Pool{New: func() any {
	return &dotStuffer{in: make([]byte, 16<<10), out: make([]byte, 0, 17<<10)}
}}

// dotStuffer doubles a dot at the start of a line of CRLF text and holds
// back what it ends with of a line end.
type dotStuffer struct {
	w       io.Writer
	in, out []byte
	crlf    crlfReader // its convert: bare CR and LF made CRLF
	bol     bool       // the next byte starts a line
	held    []byte     // "\r\n", "\r" or nothing, not yet written: the body may end with it
	heldBuf [2]byte
}

func (d *dotStuffer) reset(w io.Writer) {
	d.w, d.out, d.bol, d.held = w, d.out[:0], true, d.heldBuf[:0]
	d.crlf.cr = false
}

// write takes CRLF text (every LF preceded by CR).
func (d *dotStuffer) write(p []byte) error {
	d.out = append(d.out, d.held...)
	d.held = d.heldBuf[:0]
	for len(p) > 0 {
		if d.bol && p[0] == '.' {
			d.out = append(d.out, '.')
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			d.out = append(d.out, p...)
			d.bol = false
			break
		}
		d.out = append(d.out, p[:i+1]...)
		p = p[i+1:]
		d.bol = true
	}
	n := len(d.out)
	switch {
	case n >= 2 && d.out[n-2] == '\r' && d.out[n-1] == '\n':
		d.held = append(d.held, "\r\n"...)
		d.out = d.out[:n-2]
	case n >= 1 && d.out[n-1] == '\r':
		d.held = append(d.held, '\r')
		d.out = d.out[:n-1]
	}
	return d.flush()
}

func (d *dotStuffer) flush() error {
	if len(d.out) == 0 {
		return nil
	}
	_, err := d.w.Write(d.out)
	d.out = d.out[:0]
	return err
}
