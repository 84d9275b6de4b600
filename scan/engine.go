package scan

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"time"

	yara "github.com/hillu/go-yara/v4"
)

// DefaultTimeout is the per-scan timeout of an Engine created with a zero
// timeout.
const DefaultTimeout = 10 * time.Second

// DefaultMaxBuffer is the largest object Scan reads into memory when the
// io.ReaderAt is not a file it can memory-map.
const DefaultMaxBuffer = 64 << 20

// yaraErrScanTimeout is libyara's ERROR_SCAN_TIMEOUT.
const yaraErrScanTimeout = yara.Error(26)

// Engine scans with the current rule set. It is safe for concurrent use:
// each scan borrows a go-yara scanner (one per goroutine, as go-yara
// requires) from a pool that belongs to the rule set it was created for.
// Swap installs a new rule set atomically; scans already running finish
// with the old one, which is freed when its last scan returns.
//
// The exported fields are options; set them before the first scan.
type Engine struct {
	// Timeout bounds one scan (the context's deadline may shorten it).
	Timeout time.Duration
	// MaxBuffer is the largest object read into memory by Scan when the
	// io.ReaderAt cannot be memory-mapped; larger ones are scanned in
	// blocks (see Scan). Zero means DefaultMaxBuffer.
	MaxBuffer int64
	// MaxIdle is the number of idle scanners kept for reuse. Zero means
	// twice GOMAXPROCS.
	MaxIdle int

	mu     sync.Mutex
	cur    *ruleSet
	closed bool
}

// ruleSet is one compiled rule set with its scanner pool and the number of
// scans using it. Guarded by Engine.mu.
type ruleSet struct {
	rules   *Rules
	refs    int
	retired bool
	idle    []*yara.Scanner
}

// NewEngine returns an engine scanning with r (nil: no rules, every scan
// matches nothing) and the given per-scan timeout (zero: DefaultTimeout).
// The engine owns r from now on.
func NewEngine(r *Rules, timeout time.Duration) *Engine {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	e := &Engine{Timeout: timeout}
	if r != nil {
		e.cur = &ruleSet{rules: r}
	}
	return e
}

// Swap installs r (nil: no rules) for all scans that start from now on.
// The engine owns r from now on; the previous rule set is freed as soon as
// no running scan uses it.
func (e *Engine) Swap(r *Rules) {
	e.mu.Lock()
	old := e.cur
	if old != nil && old.rules == r {
		e.mu.Unlock()
		return
	}
	e.cur = nil
	if r != nil && !e.closed {
		e.cur = &ruleSet{rules: r}
	}
	freeS, freeR := retire(old)
	e.mu.Unlock()
	destroy(freeS, freeR)
	if e.closed && r != nil {
		r.Close()
	}
}

// Close frees the current rule set once running scans have finished;
// later scans return ErrClosed.
func (e *Engine) Close() {
	e.mu.Lock()
	e.closed = true
	freeS, freeR := retire(e.cur)
	e.cur = nil
	e.mu.Unlock()
	destroy(freeS, freeR)
}

// Rules reports the current rule set's files and rule count (nil, 0 when
// there are no rules).
func (e *Engine) Rules() (files []string, count int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cur == nil {
		return nil, 0
	}
	return e.cur.rules.Files(), e.cur.rules.Count()
}

// retire marks rs as replaced and returns what can be freed now. Called
// with e.mu held.
func retire(rs *ruleSet) ([]*yara.Scanner, *Rules) {
	if rs == nil {
		return nil, nil
	}
	rs.retired = true
	if rs.refs > 0 {
		return nil, nil // the last release frees it
	}
	idle := rs.idle
	rs.idle = nil
	return idle, rs.rules
}

func destroy(scanners []*yara.Scanner, r *Rules) {
	for _, s := range scanners {
		s.Destroy()
	}
	r.Close()
}

func (e *Engine) maxIdle() int {
	if e.MaxIdle > 0 {
		return e.MaxIdle
	}
	return 2 * runtime.GOMAXPROCS(0)
}

// acquire borrows a scanner for the current rule set. It returns a nil
// ruleSet when there are no rules.
func (e *Engine) acquire() (*ruleSet, *yara.Scanner, error) {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, nil, ErrClosed
	}
	rs := e.cur
	if rs == nil {
		e.mu.Unlock()
		return nil, nil, nil
	}
	rs.refs++
	var s *yara.Scanner
	if n := len(rs.idle); n > 0 {
		s, rs.idle = rs.idle[n-1], rs.idle[:n-1]
	}
	e.mu.Unlock()
	if s == nil {
		var err error
		if s, err = yara.NewScanner(rs.rules.y); err != nil {
			e.release(rs, nil)
			return nil, nil, fmt.Errorf("scan: new yara scanner: %w", err)
		}
	}
	return rs, s, nil
}

// release returns s to rs's pool (or frees it) and frees rs when it was
// retired and this was its last scan.
func (e *Engine) release(rs *ruleSet, s *yara.Scanner) {
	var free []*yara.Scanner
	var rules *Rules
	e.mu.Lock()
	rs.refs--
	if s != nil {
		if !rs.retired && len(rs.idle) < e.maxIdle() {
			rs.idle = append(rs.idle, s)
		} else {
			free = append(free, s)
		}
	}
	if rs.retired && rs.refs == 0 {
		free = append(free, rs.idle...)
		rs.idle, rules = nil, rs.rules
	}
	e.mu.Unlock()
	destroy(free, rules)
}

// ScanBytes scans b with the current rules.
//
// On timeout it returns ErrTimeout; when ctx ends first it returns an
// error wrapping ctx.Err(). Either way the matches are discarded: YARA
// evaluates conditions only after all data has been searched.
func (e *Engine) ScanBytes(ctx context.Context, b []byte, v Vars) ([]Match, error) {
	return e.run(ctx, v, func(s *yara.Scanner) error { return s.ScanMem(b) })
}

// Scan scans the first size bytes of ra with the current rules.
//
// How the data reaches YARA, in order of preference:
//   - an *os.File, or an *io.SectionReader over one, is memory-mapped
//     (nothing is copied; the kernel pages the file in as YARA reads it);
//   - up to MaxBuffer bytes are read into one buffer;
//   - anything larger is fed to YARA in 4 MiB blocks that overlap by
//     64 KiB, so memory stays bounded. A string longer than 64 KiB that
//     spans a block boundary is then not found, and modules that parse
//     file headers (pe, elf, dotnet) only see the first block.
//
// Errors are as for ScanBytes; a read error or a short ra is an error too.
func (e *Engine) Scan(ctx context.Context, ra io.ReaderAt, size int64, v Vars) ([]Match, error) {
	if size < 0 {
		return nil, fmt.Errorf("scan: negative size %d", size)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("scan: %w", err)
	}
	if f, off, ok := fileOf(ra); ok && size > 0 {
		if data, unmap, err := mapFile(f, off, size); err == nil {
			defer unmap()
			return e.ScanBytes(ctx, data, v)
		}
		// Not mappable (pipe, special file, short file): read it instead.
	}
	limit := e.MaxBuffer
	if limit <= 0 {
		limit = DefaultMaxBuffer
	}
	if size <= limit {
		buf := make([]byte, size)
		if n, err := ra.ReadAt(buf, 0); int64(n) < size {
			return nil, fmt.Errorf("scan: read %d of %d bytes: %w", n, size, err)
		}
		return e.ScanBytes(ctx, buf, v)
	}
	it := &blockIter{ra: ra, size: size}
	m, err := e.run(ctx, v, func(s *yara.Scanner) error { return s.ScanMemBlocks(it) })
	if err == nil && it.err != nil {
		return nil, fmt.Errorf("scan: read block: %w", it.err)
	}
	return m, err
}

// run borrows a scanner, sets variables, deadline and cancellation, and
// runs do with it.
func (e *Engine) run(ctx context.Context, v Vars, do func(*yara.Scanner) error) ([]Match, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("scan: %w", err)
	}
	rs, s, err := e.acquire()
	if err != nil || rs == nil {
		return nil, err
	}
	defer e.release(rs, s)
	if err := defineVars(s, v); err != nil {
		return nil, err
	}
	col := &collector{info: rs.rules.info}
	s.SetCallback(col).SetFlags(0)
	budget, byCtx := e.budget(ctx)
	setTimeout(s, budget)
	aborted := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		abortScan(s)
		close(aborted)
	})
	err = do(s)
	if !stop() {
		<-aborted // the abort has run; the scanner is safe to reuse
	}
	s.SetCallback(nil)
	if err != nil {
		if errors.Is(err, yaraErrScanTimeout) {
			if cerr := ctx.Err(); cerr != nil {
				return nil, fmt.Errorf("scan: %w", cerr)
			}
			if byCtx { // the context's deadline, not the engine's, ran out
				return nil, fmt.Errorf("scan: %w", context.DeadlineExceeded)
			}
			return nil, ErrTimeout
		}
		return nil, fmt.Errorf("scan: yara: %w", err)
	}
	return col.matches, nil
}

// budget is the time one scan may take: the engine's timeout, or less
// when the context's deadline is nearer (then byCtx is true).
func (e *Engine) budget(ctx context.Context) (d time.Duration, byCtx bool) {
	d = e.Timeout
	if d <= 0 {
		d = DefaultTimeout
	}
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left < d {
			return max(left, time.Nanosecond), true
		}
	}
	return d, false
}

func defineVars(s *yara.Scanner, v Vars) error {
	for _, kv := range [...][2]string{
		{"filename", v.Filename},
		{"filepath", v.Filepath},
		{"extension", v.extension()},
		{"filetype", v.Filetype},
	} {
		if err := s.DefineVariable(kv[0], kv[1]); err != nil {
			return fmt.Errorf("scan: define %s: %w", kv[0], err)
		}
	}
	return nil
}

// collector gathers matches in the scan callback.
type collector struct {
	info    map[ruleKey]ruleInfo
	matches []Match
}

// RuleMatching implements yara.ScanCallback.
func (c *collector) RuleMatching(sc *yara.ScanContext, r *yara.Rule) (bool, error) {
	m := Match{Rule: r.Identifier(), Namespace: r.Namespace()}
	if info, ok := c.info[ruleKey{m.Namespace, m.Rule}]; ok {
		m.Tags = append([]string(nil), info.tags...)
		if len(info.meta) > 0 {
			m.Meta = make(map[string]any, len(info.meta))
			for k, v := range info.meta {
				m.Meta[k] = v
			}
		}
	}
	strs := r.Strings()
	for i := range strs {
		if stringMatched(sc, &strs[i]) {
			m.Strings = append(m.Strings, strs[i].Identifier())
		}
	}
	c.matches = append(c.matches, m)
	return false, nil
}

// blockIter feeds a large io.ReaderAt to YARA in overlapping blocks.
type blockIter struct {
	ra    io.ReaderAt
	size  int64
	block yara.MemoryBlock
	err   error // first read error
}

const (
	blockSize    = 4 << 20
	blockOverlap = 64 << 10
)

// First implements yara.MemoryBlockIterator: the block at offset 0.
func (it *blockIter) First() *yara.MemoryBlock { return it.at(0) }

// Next implements yara.MemoryBlockIterator: the next block, starting
// blockOverlap bytes before the end of the current one, or nil at the end.
func (it *blockIter) Next() *yara.MemoryBlock {
	end := int64(it.block.Base) + int64(it.block.Size)
	if end >= it.size {
		return nil
	}
	return it.at(end - blockOverlap)
}

// Filesize implements yara.MemoryBlockIteratorWithFilesize, so filesize is
// the whole object's size, not the first block's.
func (it *blockIter) Filesize() uint64 { return uint64(it.size) }

func (it *blockIter) at(base int64) *yara.MemoryBlock {
	n := min(int64(blockSize), it.size-base)
	it.block = yara.MemoryBlock{Base: uint64(base), Size: uint64(n), FetchData: it.fetch}
	return &it.block
}

func (it *blockIter) fetch(buf []byte) {
	buf = buf[:it.block.Size] // go-yara's buffer may be longer than the block
	n, err := it.ra.ReadAt(buf, int64(it.block.Base))
	if n < len(buf) {
		clear(buf[n:])
		if it.err == nil {
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			it.err = err
		}
	}
}
