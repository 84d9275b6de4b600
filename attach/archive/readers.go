package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// Small readers shared by the format readers.

// exactReader reports content that ends before its declared size.
type exactReader struct {
	r    io.Reader
	want int64
	n    int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	e.n += int64(n)
	if errors.Is(err, io.EOF) && e.n < e.want {
		return n, &kindError{ProblemTruncated, fmt.Errorf("content of %d bytes, declared %d", e.n, e.want)}
	}
	return n, err
}

// countReader counts the bytes read through it.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// ctxReader stops a copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// errReader fails every read with err.
type errReader struct{ err error }

func (e *errReader) Read([]byte) (int, error) { return 0, e.err }

// noEOF turns a premature io.EOF into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// safeRead calls r.Read, turning a panic inside a decoder (some panic on
// crafted data, e.g. a division by zero in PPMd) into a corrupt-content
// error, so that one entry fails and the walk goes on.
func safeRead(r io.Reader, p []byte) (n int, err error) {
	defer func() {
		if v := recover(); v != nil {
			n, err = 0, &kindError{ProblemCorrupt, fmt.Errorf("decoder failed: %v", v)}
		}
	}()
	return r.Read(p)
}

// safeReader is an io.Reader whose decoder panics become errors.
type safeReader struct{ r io.Reader }

func (s safeReader) Read(p []byte) (int, error) { return safeRead(s.r, p) }
