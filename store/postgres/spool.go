package postgres

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/jackc/pgx/v5"
)

// buffer holds content on its way into or out of the database: up to
// limit bytes in memory, the rest in a temporary file that is unlinked as
// soon as it is created (nothing is left behind by a crash, and no other
// process can open it). Memory stays bounded by limit whatever the size.
type buffer struct {
	dir   string
	limit int
	mem   []byte
	f     *os.File
	size  int64
}

func (s *DB) newBuffer() *buffer { return &buffer{dir: s.tmp, limit: s.chunk} }

// Write appends p.
func (b *buffer) Write(p []byte) (int, error) {
	if b.f == nil && len(b.mem)+len(p) <= b.limit {
		b.mem = append(b.mem, p...)
		b.size += int64(len(p))
		return len(p), nil
	}
	if b.f == nil {
		f, err := os.CreateTemp(b.dir, "mailguard-pg-*")
		if err != nil {
			return 0, err
		}
		if err := os.Remove(f.Name()); err != nil {
			f.Close()
			return 0, err
		}
		b.f = f
		if _, err := b.f.Write(b.mem); err != nil {
			return 0, err
		}
		b.mem = nil
	}
	n, err := b.f.Write(p)
	b.size += int64(n)
	return n, err
}

// readFrom copies r into b. It returns errors of r unwrapped (the caller
// maps a client's bare LF, oversize or timeout to a reply) and wraps
// errors of the buffer itself.
func (b *buffer) readFrom(r io.Reader, chunk int) (int64, error) {
	p := make([]byte, min(chunk, 64<<10))
	for {
		n, err := r.Read(p)
		if n > 0 {
			if _, werr := b.Write(p[:n]); werr != nil {
				return b.size, fmt.Errorf("store: spool temp file: %w", werr)
			}
		}
		if err == io.EOF {
			return b.size, nil
		}
		if err != nil {
			return b.size, err
		}
	}
}

// Close releases the temporary file, if any.
func (b *buffer) Close() error {
	if b.f != nil {
		return b.f.Close()
	}
	return nil
}

// reader hands the content over to a reader: *os.File when it spilled to
// disk, an in-memory file otherwise; both are io.ReaderAt too, which
// inspection and rendering need.
func (b *buffer) reader() (io.ReadSeekCloser, error) {
	if b.f == nil {
		return memFile{bytes.NewReader(b.mem)}, nil
	}
	if _, err := b.f.Seek(0, io.SeekStart); err != nil {
		b.f.Close()
		return nil, err
	}
	return b.f, nil
}

// memFile is a small message read whole into memory.
type memFile struct{ *bytes.Reader }

// Close implements io.Closer.
func (memFile) Close() error { return nil }

// writeChunks stores the content of b as rows (key, seq, data) of table:
// one INSERT for content that fits one chunk (then b is in memory), COPY
// chunk by chunk for more, so that only one chunk is in memory at a time.
// Empty content is one empty chunk: chunk 0 always exists.
func (s *DB) writeChunks(ctx context.Context, tx pgx.Tx, table, keyCol, key string, b *buffer) error {
	if b.f == nil && len(b.mem) <= s.chunk {
		data := b.mem
		if data == nil {
			data = []byte{}
		}
		_, err := tx.Exec(ctx, `INSERT INTO `+table+` (`+keyCol+`, seq, data) VALUES ($1, 0, $2)`, key, data)
		return err
	}
	// CopyFrom encodes each row before it asks for the next one, so one
	// reused chunk buffer is enough.
	src := &streamSource{key: key, b: b, size: s.chunk}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{table}, []string{keyCol, "seq", "data"}, src)
	if err == nil {
		err = src.err
	}
	return err
}

// streamSource reads a buffer chunk by chunk for CopyFrom.
type streamSource struct {
	key  string
	b    *buffer
	size int
	p    []byte
	seq  int
	off  int64
	err  error
}

func (s *streamSource) Next() bool {
	if s.err != nil || s.off >= s.b.size {
		return false
	}
	n := min(int64(s.size), s.b.size-s.off)
	if s.p == nil {
		s.p = make([]byte, s.size)
	}
	if s.b.f == nil {
		copy(s.p, s.b.mem[s.off:s.off+n])
	} else if m, err := s.b.f.ReadAt(s.p[:n], s.off); int64(m) != n {
		s.err = fmt.Errorf("store: spool temp file: %w", err)
		return false
	}
	s.p = s.p[:n]
	s.off += n
	return true
}

func (s *streamSource) Values() ([]any, error) {
	v := []any{s.key, s.seq, s.p}
	s.seq++
	return v, nil
}

func (s *streamSource) Err() error { return s.err }

// chunkSink writes each scanned bytea chunk straight into a buffer
// (pgtype.BytesScanner), without a copy per chunk.
type chunkSink struct{ b *buffer }

// ScanBytes implements pgtype.BytesScanner.
func (c chunkSink) ScanBytes(v []byte) error {
	_, err := c.b.Write(v)
	return err
}

// readChunks streams the chunks of key from table into a buffer and hands
// it over as a reader; found is false when there is no chunk at all. All
// chunks come from one statement, hence one snapshot.
func (s *DB) readChunks(ctx context.Context, table, keyCol, key string) (io.ReadSeekCloser, bool, error) {
	rows, err := s.pool.Query(ctx, `SELECT data FROM `+table+` WHERE `+keyCol+` = $1 ORDER BY seq`, key)
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	b := s.newBuffer()
	found := false
	for rows.Next() {
		found = true
		if err := rows.Scan(chunkSink{b}); err != nil {
			b.Close()
			return nil, false, fmt.Errorf("store: read %s: %w", key, err)
		}
	}
	if err := rows.Err(); err != nil {
		b.Close()
		return nil, false, err
	}
	if !found {
		b.Close()
		return nil, false, nil
	}
	r, err := b.reader()
	return r, true, err
}
