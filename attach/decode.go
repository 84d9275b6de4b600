package attach

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"io"
	"strings"
)

// b64Class classifies input bytes of base64: 0 skip (white space), 1
// junk (counted and skipped), 2 alphabet, 3 padding; b64Map maps
// base64url to the standard alphabet.
var b64Class, b64Map = func() (c [256]byte, m [256]byte) {
	for i := range c {
		c[i] = 1
		m[i] = byte(i)
	}
	for _, b := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_") {
		c[b] = 2
	}
	m['-'], m['_'] = '+', '/'
	for _, b := range []byte(" \t\r\n") {
		c[b] = 0
	}
	c['='] = 3
	return c, m
}()

// base64Reader decodes base64 leniently and in bulk: bytes outside the
// alphabet are skipped (and counted when they are not white space, so
// that junk is reported instead of silently emptying the part, enmime's
// failure mode), padding is optional, and a dangling final character is
// reported and ignored.
//
// Padding that ends a group in the middle of the data (two encodings
// pasted together, or an evasion) is read as the end of one piece and
// the data after it as a new piece, as coreutils and mail clients that
// restart there do. Readers disagree here (Python stops at the padding;
// a decoder that skips '=' shifts every later byte), so it is reported
// as such (midPad): mailguard's reading is the one that contains both.
type base64Reader struct {
	r      io.Reader
	in     []byte // raw input chunk
	q      []byte // cleaned alphabet bytes not yet decoded (< 4 after a fill)
	out    []byte // decoded, not yet returned
	obuf   []byte
	junk   int
	tail   bool
	eof    bool
	padded bool // a group was ended by padding and no data followed yet
	midPad bool // data followed padding that ended a group
}

func newBase64Reader(r io.Reader) *base64Reader {
	return &base64Reader{r: r, in: make([]byte, 48<<10), q: make([]byte, 0, 48<<10+4), obuf: make([]byte, 0, 36<<10+3)}
}

func (b *base64Reader) Read(p []byte) (int, error) {
	for len(b.out) == 0 {
		if b.eof {
			return 0, io.EOF
		}
		n, err := b.r.Read(b.in)
		b.obuf = b.obuf[:0]
		for _, c := range b.in[:n] {
			switch b64Class[c] {
			case 2:
				if b.padded {
					b.midPad, b.padded = true, false
				}
				b.q = append(b.q, b64Map[c])
			case 3:
				if len(b.q)%4 != 0 { // padding ends this group: the piece ends here
					b.decode(len(b.q))
					b.padded = true
				}
			case 1:
				b.junk++
			}
		}
		if err != nil {
			b.eof = true
			if err != io.EOF {
				return 0, err
			}
		}
		if b.eof {
			b.decode(len(b.q))
		} else {
			b.decode(len(b.q) / 4 * 4)
		}
		b.out = b.obuf
	}
	n := copy(p, b.out)
	b.out = b.out[n:]
	return n, nil
}

// decode appends the decoding of b.q[:k] to obuf and keeps the rest of
// b.q. k is a multiple of 4, or all of b.q at the end of a piece, where
// a single dangling character carries no byte and is reported.
func (b *base64Reader) decode(k int) {
	use := k
	if use%4 == 1 {
		b.tail = true
		use--
	}
	need := base64.RawStdEncoding.DecodedLen(use)
	at := len(b.obuf)
	if cap(b.obuf)-at < need {
		b.obuf = append(b.obuf, make([]byte, need)...)[:at]
	}
	dn, _ := base64.RawStdEncoding.Decode(b.obuf[at:at+need], b.q[:use])
	b.obuf = b.obuf[:at+dn]
	b.q = append(b.q[:0], b.q[k:]...)
}

// qpReader decodes quoted-printable leniently: invalid escapes are kept
// literally (mime/quotedprintable fails on them), soft line breaks are
// removed, trailing white space before a hard break is dropped.
type qpReader struct {
	br   *bufio.Reader
	out  []byte
	bad  int
	done bool
}

func newQPReader(r io.Reader) *qpReader { return &qpReader{br: bufio.NewReaderSize(r, 32<<10)} }

func (q *qpReader) Read(p []byte) (int, error) {
	for len(q.out) == 0 {
		if q.done {
			return 0, io.EOF
		}
		line, err := q.br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			q.out = q.decode(q.out[:0], line, false)
			continue
		}
		if err != nil {
			q.done = true
			if err != io.EOF {
				return 0, err
			}
		}
		q.out = q.decode(q.out[:0], line, true)
	}
	n := copy(p, q.out)
	q.out = q.out[n:]
	return n, nil
}

func (q *qpReader) decode(dst, line []byte, whole bool) []byte {
	hard := false
	if whole {
		switch {
		case bytes.HasSuffix(line, []byte("\r\n")):
			line, hard = line[:len(line)-2], true
		case bytes.HasSuffix(line, []byte("\n")):
			line, hard = line[:len(line)-1], true
		}
		line = bytes.TrimRight(line, " \t")
	}
	soft := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		if c != '=' {
			dst = append(dst, c)
			continue
		}
		if i == len(line)-1 {
			soft = true
			break
		}
		if i+2 < len(line) {
			if h, ok := unhex(line[i+1]); ok {
				if l, ok := unhex(line[i+2]); ok {
					dst = append(dst, h<<4|l)
					i += 2
					continue
				}
			}
		}
		q.bad++
		dst = append(dst, c)
	}
	if hard && !soft {
		dst = append(dst, '\r', '\n')
	}
	return dst
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// decodeTransfer wraps r with the decoder for a Content-Transfer-Encoding.
// report is called after reading with what was wrong (see problem).
func decodeTransfer(cte string, r io.Reader) (io.Reader, func() []problem) {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "base64":
		b := newBase64Reader(r)
		return b, func() []problem {
			var p []problem
			if b.midPad {
				p = append(p, problem{"base64 with padding inside the data, read as pieces (readers disagree)", false})
			}
			if b.junk > 0 {
				p = append(p, problem{"base64 with invalid characters skipped", true})
			}
			if b.tail {
				p = append(p, problem{"base64 with a truncated final group", true})
			}
			return p
		}
	case "quoted-printable":
		q := newQPReader(r)
		return q, func() []problem {
			if q.bad > 0 {
				return []problem{{"quoted-printable with invalid escapes kept literally", true}}
			}
			return nil
		}
	case "x-uuencode", "x-uue", "uuencode", "x-uu":
		u := newUUReader(r)
		return u, func() []problem {
			if u.bad > 0 {
				return []problem{{"uuencode with malformed lines skipped", true}}
			}
			return nil
		}
	case "", "7bit", "8bit", "binary":
		return r, func() []problem { return nil }
	case "7-bit", "8-bit", "7 bit", "8 bit": // old mailers' spellings of an identity encoding
		return r, func() []problem {
			return []problem{{"Content-Transfer-Encoding " + clip(cte, 40) + " read as " + strings.ReplaceAll(strings.ReplaceAll(strings.TrimSpace(strings.ToLower(cte)), "-", ""), " ", ""), true}}
		}
	default:
		// Inspected as it stands; a client might decode it after all.
		return r, func() []problem {
			return []problem{{"unknown Content-Transfer-Encoding " + clip(cte, 40) + "; content kept raw", false}}
		}
	}
}

// uuReader decodes the lines of one uuencoded body (after "begin", or the
// whole part for Content-Transfer-Encoding x-uuencode).
type uuReader struct {
	br      *bufio.Reader
	out     []byte
	bad     int
	started bool
	done    bool
}

func newUUReader(r io.Reader) *uuReader { return &uuReader{br: bufio.NewReaderSize(r, 8<<10)} }

func (u *uuReader) Read(p []byte) (int, error) {
	for len(u.out) == 0 {
		if u.done {
			return 0, io.EOF
		}
		line, err := u.br.ReadString('\n')
		if err != nil {
			u.done = true
			if err != io.EOF {
				return 0, err
			}
		}
		l := strings.TrimRight(line, "\r\n")
		switch {
		case !u.started && strings.HasPrefix(l, "begin "):
			u.started = true
			continue
		case l == "end":
			u.done = true
			continue
		case l == "" || l == "`":
			continue
		}
		u.started = true
		dec, ok := uuDecodeLine(u.out[:0], l)
		if !ok {
			u.bad++
			continue
		}
		u.out = dec
	}
	n := copy(p, u.out)
	u.out = u.out[n:]
	return n, nil
}

// uuDecodeLine decodes one uuencoded line ("M" + 60 chars …).
func uuDecodeLine(dst []byte, l string) ([]byte, bool) {
	if len(l) == 0 {
		return dst, false
	}
	n := int((l[0] - ' ') & 0x3f)
	if n == 0 {
		return dst, true
	}
	data := l[1:]
	need := (n + 2) / 3 * 4
	if len(data) < need {
		// Tolerate stripped trailing spaces.
		data += strings.Repeat(" ", need-len(data))
	}
	for i := 0; i+3 < len(data); i += 4 {
		if n <= 0 {
			break
		}
		c := [4]byte{}
		for j := 0; j < 4; j++ {
			ch := data[i+j]
			if ch < ' ' || ch > '`' {
				return dst, false
			}
			c[j] = (ch - ' ') & 0x3f
		}
		b := [3]byte{c[0]<<2 | c[1]>>4, c[1]<<4 | c[2]>>2, c[2]<<6 | c[3]}
		k := min(3, n)
		dst = append(dst, b[:k]...)
		n -= k
	}
	return dst, true
}

// uuBlock is one "begin mode name" … "end" block found in text.
type uuBlock struct {
	name  string
	start int // offset of the begin line
	end   int // offset after the end line (or the text)
}

// findUUBlocks locates uuencoded files in a text body.
func findUUBlocks(text []byte, max int) []uuBlock {
	var out []uuBlock
	off := 0
	for off < len(text) && len(out) < max {
		i := bytes.Index(text[off:], []byte("begin "))
		if i < 0 {
			break
		}
		at := off + i
		off = at + 6
		if at > 0 && text[at-1] != '\n' {
			continue
		}
		eol := bytes.IndexByte(text[at:], '\n')
		if eol < 0 {
			break // a begin line with nothing after it
		}
		fields := strings.Fields(string(text[at : at+eol]))
		if len(fields) < 3 || len(fields[1]) < 3 || len(fields[1]) > 4 || strings.Trim(fields[1], "01234567") != "" {
			continue
		}
		// The next line must look like uuencode ("M" for full lines).
		rest := text[at+eol+1:]
		if len(rest) == 0 || rest[0] < '!' || rest[0] > 'M' {
			continue
		}
		end := bytes.Index(rest, []byte("\nend"))
		stop := len(text)
		if end >= 0 {
			stop = at + eol + 1 + end + 4
		}
		name := strings.Join(fields[2:], " ")
		out = append(out, uuBlock{name: name, start: at, end: stop})
		off = stop
	}
	return out
}
