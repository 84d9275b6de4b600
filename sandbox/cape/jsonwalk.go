package cape

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// scanner is a minimal pull parser over a JSON stream, for report.json: it
// reads the few values the client needs and skips the rest byte by byte,
// without building them, so a report of hundreds of megabytes costs one
// buffer of memory and a few hundred MB/s of CPU. (encoding/json's Token
// stream does the same at about 25 MB/s; encoding/json/v2 with its
// SkipValue is still an experiment in Go 1.26.)
//
// Each read method consumes exactly one JSON value and tolerates a value of
// another type than expected: it is skipped. Structure is checked where
// values are read; inside skipped values only nesting and strings are
// tracked.
type scanner struct {
	r *bufio.Reader
}

func newScanner(r io.Reader) *scanner { return &scanner{r: bufio.NewReaderSize(r, 64<<10)} }

// fail wraps a read error: a premature end is bad JSON, anything else (a
// network error, errTooLarge) passes through.
func (s *scanner) fail(err error) error {
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: unexpected end of input", errSyntax)
	}
	return err
}

func syntaxf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errSyntax}, args...)...)
}

// peek returns the next non-space byte without consuming it.
func (s *scanner) peek() (byte, error) {
	for {
		c, err := s.r.ReadByte()
		if err != nil {
			return 0, s.fail(err)
		}
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			s.r.UnreadByte()
			return c, nil
		}
	}
}

// next consumes and returns the next non-space byte.
func (s *scanner) next() (byte, error) {
	c, err := s.peek()
	if err == nil {
		s.r.ReadByte()
	}
	return c, err
}

// skip consumes one value.
func (s *scanner) skip() error {
	c, err := s.peek()
	if err != nil {
		return err
	}
	switch {
	case c == '{' || c == '[':
		return s.skipComposite()
	case c == '"':
		s.r.ReadByte()
		return s.skipString()
	}
	_, err = s.scalar()
	return err
}

// special marks the bytes skipComposite must look at.
var special = func() (t [256]bool) {
	for _, c := range []byte(`"\\{}[]`) {
		t[c] = true
	}
	return t
}()

// skipComposite consumes an object or array, scanning the read buffer
// directly: this is where almost all of a report's bytes go.
func (s *scanner) skipComposite() error {
	depth, inString, escaped := 0, false, false
	for {
		buf, err := s.buffered()
		if err != nil {
			return s.fail(err)
		}
		i := 0
		if escaped { // the byte after a backslash that ended the last buffer
			i, escaped = 1, false
		}
		for ; i < len(buf); i++ {
			c := buf[i]
			if !special[c] {
				continue
			}
			if inString {
				switch c {
				case '"':
					inString = false
				case '\\':
					if i++; i == len(buf) {
						escaped = true
					}
				}
				continue
			}
			switch c {
			case '"':
				inString = true
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					s.r.Discard(i + 1)
					return nil
				}
			}
		}
		s.r.Discard(len(buf))
	}
}

// buffered returns the unread buffered bytes, reading more if there are none.
func (s *scanner) buffered() ([]byte, error) {
	if s.r.Buffered() == 0 {
		if _, err := s.r.Peek(1); err != nil {
			return nil, err
		}
	}
	return s.r.Peek(s.r.Buffered())
}

// skipString consumes the rest of a string whose opening quote was read.
func (s *scanner) skipString() error {
	for {
		c, err := s.r.ReadByte()
		if err != nil {
			return s.fail(err)
		}
		switch c {
		case '"':
			return nil
		case '\\':
			if _, err := s.r.ReadByte(); err != nil {
				return s.fail(err)
			}
		}
	}
}

// scalar consumes a number or literal and returns its text, or "" when it
// is longer than 64 bytes (valid JSON, but not a value worth reading).
func (s *scanner) scalar() (string, error) {
	var b [64]byte
	n, long := 0, false
	for {
		c, err := s.r.ReadByte()
		if err == io.EOF && (n > 0 || long) {
			break
		}
		if err != nil {
			return "", s.fail(err)
		}
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c == '-' || c == '+' || c == '.' || c == 'E') {
			s.r.UnreadByte()
			break
		}
		if n == len(b) {
			long = true
			continue
		}
		b[n] = c
		n++
	}
	switch {
	case long:
		return "", nil
	case n == 0:
		c, _ := s.r.ReadByte()
		return "", syntaxf("unexpected %q", c)
	}
	return string(b[:n]), nil
}

// readString reads a string value of at most max bytes (the rest is
// dropped), "" for another type.
func (s *scanner) readString(max int) (string, error) {
	c, err := s.peek()
	if err != nil {
		return "", err
	}
	if c != '"' {
		return "", s.skip()
	}
	s.r.ReadByte()
	var b []byte
	add := func(p ...byte) {
		if len(b)+len(p) <= max {
			b = append(b, p...)
		}
	}
	for {
		c, err := s.r.ReadByte()
		if err != nil {
			return "", s.fail(err)
		}
		switch c {
		case '"':
			return strings.ToValidUTF8(string(b), "\uFFFD"), nil
		case '\\':
			r, err := s.escape()
			if err != nil {
				return "", err
			}
			add(utf8.AppendRune(nil, r)...)
		default:
			add(c)
		}
	}
}

// escape reads an escape sequence after its backslash.
func (s *scanner) escape() (rune, error) {
	c, err := s.r.ReadByte()
	if err != nil {
		return 0, s.fail(err)
	}
	switch c {
	case '"', '\\', '/':
		return rune(c), nil
	case 'b':
		return '\b', nil
	case 'f':
		return '\f', nil
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 't':
		return '\t', nil
	case 'u':
		r, err := s.hex4()
		if err != nil || !utf16.IsSurrogate(r) {
			return r, err
		}
		// A surrogate pair is two escapes; a lone half is U+FFFD.
		if b, _ := s.r.Peek(2); string(b) != `\u` {
			return utf8.RuneError, nil
		}
		s.r.Discard(2)
		r2, err := s.hex4()
		return utf16.DecodeRune(r, r2), err
	}
	return 0, syntaxf("bad escape \\%c", c)
}

func (s *scanner) hex4() (rune, error) {
	var b [4]byte
	if _, err := io.ReadFull(s.r, b[:]); err != nil {
		return 0, s.fail(err)
	}
	n, err := strconv.ParseUint(string(b[:]), 16, 32)
	if err != nil {
		return 0, syntaxf("bad \\u escape %q", b)
	}
	return rune(n), nil
}

// readNumber reads a number; ok is false for null or another type.
func (s *scanner) readNumber() (float64, bool, error) {
	c, err := s.peek()
	if err != nil {
		return 0, false, err
	}
	if c != '-' && (c < '0' || c > '9') {
		return 0, false, s.skip()
	}
	text, err := s.scalar()
	if err != nil {
		return 0, false, err
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil {
		return 0, false, nil // out of range or odd: not a usable number
	}
	return f, true, nil
}

// readBool reads a boolean; anything else is false.
func (s *scanner) readBool() (bool, error) {
	c, err := s.peek()
	if err != nil {
		return false, err
	}
	if c != 't' && c != 'f' {
		return false, s.skip()
	}
	lit, err := s.scalar()
	return lit == "true", err
}

// readInt reads a number as an int bounded to ±1e6.
func (s *scanner) readInt() (int, error) {
	f, ok, err := s.readNumber()
	if !ok {
		return 0, err
	}
	return int(max(-1e6, min(1e6, f))), nil
}

// walkObject calls fn for each key of an object value; fn must consume the
// value. Another type is skipped, unless top is set, where it is an error.
func (s *scanner) walkObject(top bool, fn func(key string) error) error {
	c, err := s.peek()
	if err != nil {
		return err
	}
	if c != '{' {
		if top {
			return syntaxf("not a JSON object")
		}
		return s.skip()
	}
	s.r.ReadByte()
	if c, err = s.peek(); err != nil || c == '}' {
		s.r.ReadByte()
		return err
	}
	for {
		if c, err := s.peek(); err != nil {
			return err
		} else if c != '"' {
			return syntaxf("object key expected, got %q", c)
		}
		key, err := s.readString(256)
		if err != nil {
			return err
		}
		if c, err := s.next(); err != nil {
			return err
		} else if c != ':' {
			return syntaxf("':' expected after key %q", key)
		}
		if err := fn(key); err != nil {
			return err
		}
		switch c, err := s.next(); {
		case err != nil:
			return err
		case c == '}':
			return nil
		case c != ',':
			return syntaxf("',' or '}' expected, got %q", c)
		}
	}
}

// walkArray calls fn for each element of an array value; fn must consume
// the element. Another type is skipped.
func (s *scanner) walkArray(fn func() error) error {
	c, err := s.peek()
	if err != nil {
		return err
	}
	if c != '[' {
		return s.skip()
	}
	s.r.ReadByte()
	if c, err = s.peek(); err != nil || c == ']' {
		s.r.ReadByte()
		return err
	}
	for {
		if err := fn(); err != nil {
			return err
		}
		switch c, err := s.next(); {
		case err != nil:
			return err
		case c == ']':
			return nil
		case c != ',':
			return syntaxf("',' or ']' expected, got %q", c)
		}
	}
}

// readStrings reads a list of strings, keeping at most maxListItems.
func (s *scanner) readStrings() ([]string, error) {
	var out []string
	err := s.walkArray(func() error {
		v, err := s.readString(maxText)
		if v != "" && len(out) < maxListItems {
			out = append(out, v)
		}
		return err
	})
	return out, err
}
