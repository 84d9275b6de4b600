package archive

import (
	"archive/zip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/nwaples/rardecode/v2"
)

// errStop ends a format loop when an archive-wide limit was reached; Walk
// turns it into a nil error (the Problem is recorded).
var errStop = errors.New("archive: walk stopped by a limit")

// archiveRatio is the allowance kind of the archive-wide ratio cap; it is
// reported as ProblemRatio.
const archiveRatio ProblemKind = "archive_ratio"

// maxProblems bounds Result.Problems, so an archive of a million corrupt
// entries cannot grow the result without end.
const maxProblems = 1000

// walker is the state of one Walk: the limits, the budget used so far, the
// password candidates and the result being built. Format readers call
// emit for each entry and problem for what they find.
type walker struct {
	ctx    context.Context
	format Format
	ra     io.ReaderAt
	size   int64
	opt    Options
	lim    Limits
	fn     func(Entry, io.Reader) error
	res    Result
	keys   keyring

	skipped int64                // bytes decoded but not delivered (solid blocks)
	stopped bool                 // an archive-wide limit ended the walk
	cli     *cliSession          // the spilled archive, when 7z is used
	once    map[ProblemKind]bool // archive-wide problems already reported
}

func newWalker(ctx context.Context, f Format, ra io.ReaderAt, size int64, opt Options,
	fn func(Entry, io.Reader) error) *walker {
	lim := opt.Limits.withDefaults()
	return &walker{
		ctx: ctx, format: f, ra: ra, size: size, opt: opt, lim: lim, fn: fn,
		res:  Result{Format: f},
		keys: keyring{cands: opt.Passwords, good: -1, maxFailed: lim.MaxAttempts, maxTime: lim.MaxPasswordTime},
		once: map[ProblemKind]bool{},
	}
}

// withDefaults fills zero fields with the Default values.
func (l Limits) withDefaults() Limits {
	if l.MaxEntries == 0 {
		l.MaxEntries = DefaultMaxEntries
	}
	if l.MaxEntryBytes == 0 {
		l.MaxEntryBytes = DefaultMaxEntryBytes
	}
	if l.MaxTotalBytes == 0 {
		l.MaxTotalBytes = DefaultMaxTotalBytes
	}
	if l.MaxRatio == 0 {
		l.MaxRatio = DefaultMaxRatio
	}
	if l.MaxAttempts == 0 {
		l.MaxAttempts = DefaultMaxAttempts
	}
	if l.MaxPasswordTime == 0 {
		l.MaxPasswordTime = DefaultMaxPasswordTime
	}
	if l.MaxDictionary == 0 {
		l.MaxDictionary = DefaultMaxDictionary
	}
	return l
}

// fnPanic carries a panic raised by the caller's fn through the walker's
// recover, so that it is re-raised instead of being reported as a problem.
type fnPanic struct{ v any }

// run calls the format reader, turning a panic inside a library into a
// corrupt-archive problem. A panic in fn is the caller's and is re-raised.
func (w *walker) run(walk func(*walker) error) (err error) {
	if walk == nil {
		switch w.format {
		case ACE, ALZ, EGG, ZOO, StuffIt:
			w.res.Unsupported = fmt.Sprintf("%s: no reader for this archive format", w.format)
		default:
			w.res.Unsupported = fmt.Sprintf("%s: unknown format", w.format)
		}
		return nil
	}
	if err := w.ctx.Err(); err != nil {
		return err
	}
	if w.ra == nil || w.size < 0 {
		w.problem(ProblemCorrupt, "", "no content")
		return nil
	}
	defer w.cliClose()
	defer func() {
		if v := recover(); v != nil {
			if fp, ok := v.(fnPanic); ok {
				panic(fp.v)
			}
			w.problem(ProblemCorrupt, "", fmt.Sprintf("%s reader failed: %v", w.format, v))
			err = w.ctx.Err()
		}
	}()
	err = walk(w)
	if errors.Is(err, errStop) {
		err = nil
	}
	if err == nil {
		err = w.ctx.Err()
	}
	return err
}

// problem records a problem; details are trimmed so that hostile names
// and library messages cannot grow the result without bound.
func (w *walker) problem(kind ProblemKind, entry, detail string) {
	switch n := len(w.res.Problems); {
	case n > maxProblems:
		return
	case n == maxProblems:
		kind, entry, detail = ProblemCorrupt, "", "further problems omitted"
	}
	w.res.Problems = append(w.res.Problems, Problem{Kind: kind, Entry: clip(entry, 1024), Detail: clip(detail, 512)})
}

// problemOnce records an archive-wide problem the first time it occurs.
func (w *walker) problemOnce(kind ProblemKind, detail string) {
	if w.once[kind] {
		return
	}
	w.once[kind] = true
	w.problem(kind, "", detail)
}

// unsupported marks the format or a method as unopenable; the first reason
// wins.
func (w *walker) unsupported(reason string) {
	if w.res.Unsupported == "" {
		w.res.Unsupported = reason
	}
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// emit passes one entry to fn. r is the entry's content (nil for none); it
// is wrapped so that the limits hold however fn reads it. emit returns
// errStop once an archive-wide limit is reached, ctx's error, or fn's
// error (unless it is the entry reader's own EntryError).
func (w *walker) emit(e Entry, r io.Reader) error {
	if w.stopped {
		return errStop
	}
	if err := w.ctx.Err(); err != nil {
		return err
	}
	if w.lim.MaxEntries >= 0 && w.res.Entries >= w.lim.MaxEntries {
		w.problemOnce(ProblemTooManyEntries, fmt.Sprintf("more than %d entries", w.lim.MaxEntries))
		w.stopped = true
		return errStop
	}
	w.res.Entries++
	if e.Encrypted {
		w.res.Encrypted = true
	}
	if e.Locked {
		w.res.Locked = append(w.res.Locked, e.Name)
		r = nil
	}
	if e.Dir {
		r = nil
	}
	w.checkDeclared(e)
	var er *entryReader
	if r != nil {
		er = w.newEntryReader(e, r)
		r = er
	}
	err := w.callFn(e, r)
	if er != nil {
		er.closed = true
	}
	if err != nil {
		var ee *EntryError
		if !(errors.As(err, &ee) && er != nil && ee == er.fail) {
			return err
		}
	}
	if w.stopped {
		return errStop
	}
	return nil
}

// callFn calls fn, marking a panic in it as the caller's own.
func (w *walker) callFn(e Entry, r io.Reader) error {
	defer func() {
		if v := recover(); v != nil {
			panic(fnPanic{v})
		}
	}()
	return w.fn(e, r)
}

// entryCap is how much of an entry of the given size may be delivered.
func (w *walker) entryCap(size int64) int64 {
	if w.lim.MaxEntryBytes < 0 {
		return size
	}
	return min(size, w.lim.MaxEntryBytes)
}

// checkDeclared reports an entry whose declared sizes already betray a bomb.
func (w *walker) checkDeclared(e Entry) {
	if w.lim.MaxRatio <= 0 || e.Size <= ratioFloor || e.CompressedSize <= 0 {
		return
	}
	if r := float64(e.Size) / float64(e.CompressedSize); r > w.lim.MaxRatio {
		w.problem(ProblemRatio, e.Name, fmt.Sprintf("declares %d bytes from %d (ratio %.0f, limit %g)",
			e.Size, e.CompressedSize, r, w.lim.MaxRatio))
	}
}

// entryReader delivers one entry's content within the limits: the entry's
// own byte and ratio caps, the archive's total and ratio caps, and ctx.
type entryReader struct {
	w      *walker
	name   string
	r      io.Reader
	n      int64 // bytes delivered
	cap    int64 // per-entry cap, -1 for none
	capKin ProblemKind
	err    error       // sticky: io.EOF or fail
	fail   *EntryError // the error this reader returned, if any
	closed bool
}

func (w *walker) newEntryReader(e Entry, r io.Reader) *entryReader {
	er := &entryReader{w: w, name: e.Name, r: r, cap: -1}
	if w.lim.MaxEntryBytes >= 0 {
		er.cap, er.capKin = w.lim.MaxEntryBytes, ProblemTooLarge
	}
	if w.lim.MaxRatio > 0 && e.CompressedSize > 0 {
		rc := max(ratioFloor, int64(w.lim.MaxRatio*float64(e.CompressedSize)))
		if er.cap < 0 || rc < er.cap {
			er.cap, er.capKin = rc, ProblemRatio
		}
	}
	return er
}

// allowance returns how many more bytes may be delivered and the problem
// to report when that is exceeded; n < 0 means unlimited.
func (er *entryReader) allowance() (n int64, kind ProblemKind) {
	n = -1
	tighten := func(m int64, k ProblemKind) {
		if n < 0 || m < n {
			n, kind = max(m, 0), k
		}
	}
	if er.cap >= 0 {
		tighten(er.cap-er.n, er.capKin)
	}
	w := er.w
	if w.lim.MaxTotalBytes >= 0 {
		tighten(w.lim.MaxTotalBytes-w.res.Bytes-w.skipped, ProblemTotalSize)
	}
	if w.lim.MaxRatio > 0 && w.size > 0 {
		tighten(max(ratioFloor, int64(w.lim.MaxRatio*float64(w.size)))-w.res.Bytes, archiveRatio)
	}
	return n, kind
}

func (er *entryReader) Read(p []byte) (int, error) {
	if er.err != nil {
		return 0, er.err
	}
	if er.closed {
		return 0, errors.New("archive: entry reader used after fn returned")
	}
	if err := er.w.ctx.Err(); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	allow, kind := er.allowance()
	if allow == 0 {
		return 0, er.probe(kind)
	}
	if allow > 0 && int64(len(p)) > allow {
		p = p[:allow]
	}
	n, err := safeRead(er.r, p)
	er.n += int64(n)
	er.w.res.Bytes += int64(n)
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		er.err = io.EOF
	default:
		err = er.broken(err)
	}
	return n, err
}

// probe tells an entry that ends exactly at a limit from one that goes on.
func (er *entryReader) probe(kind ProblemKind) error {
	var b [1]byte
	n, err := io.ReadFull(safeReader{er.r}, b[:])
	switch {
	case n == 0 && errors.Is(err, io.EOF):
		er.err = io.EOF
		return io.EOF
	case n == 0:
		return er.broken(err)
	}
	return er.limit(kind)
}

// limit stops delivery at a limit and records the problem.
func (er *entryReader) limit(kind ProblemKind) error {
	w := er.w
	var detail string
	name := er.name
	switch kind {
	case ProblemTooLarge:
		detail = fmt.Sprintf("content exceeds %d bytes; truncated", w.lim.MaxEntryBytes)
	case ProblemRatio:
		detail = fmt.Sprintf("expands beyond ratio %g; truncated at %d bytes", w.lim.MaxRatio, er.n)
	case ProblemTotalSize:
		detail = fmt.Sprintf("archive content exceeds %d bytes; walk stopped", w.lim.MaxTotalBytes)
		w.stopped = true
	case archiveRatio:
		kind = ProblemRatio
		detail = fmt.Sprintf("archive expands beyond ratio %g of its %d bytes; walk stopped", w.lim.MaxRatio, w.size)
		w.stopped = true
	}
	w.problem(kind, name, detail)
	er.fail = &EntryError{Entry: name, Kind: kind, Err: ErrLimit}
	er.err = er.fail
	return er.fail
}

// broken records a read error of the entry's content.
func (er *entryReader) broken(err error) error {
	if ctxErr := er.w.ctx.Err(); ctxErr != nil {
		er.err = ctxErr
		return ctxErr
	}
	kind := classify(err)
	er.w.problem(kind, er.name, err.Error())
	er.fail = &EntryError{Entry: er.name, Kind: kind, Err: err}
	er.err = er.fail
	return er.fail
}

// kindError lets a format reader say which problem an error is.
type kindError struct {
	kind ProblemKind
	err  error
}

func (e *kindError) Error() string { return e.err.Error() }
func (e *kindError) Unwrap() error { return e.err }

// errChecksum is returned by the readers here when a CRC or MAC does not
// match.
var errChecksum = errors.New("archive: checksum mismatch")

// classify maps a content read error to a problem kind.
func classify(err error) ProblemKind {
	var ke *kindError
	switch {
	case errors.As(err, &ke):
		return ke.kind
	case errors.Is(err, io.ErrUnexpectedEOF):
		return ProblemTruncated
	case errors.Is(err, errChecksum), errors.Is(err, zip.ErrChecksum), errors.Is(err, gzip.ErrChecksum),
		errors.Is(err, rardecode.ErrBadFileChecksum):
		return ProblemChecksum
	case errors.Is(err, zip.ErrAlgorithm):
		return ProblemUnsupportedMethod
	case strings.Contains(err.Error(), "checksum"):
		return ProblemChecksum
	}
	return ProblemCorrupt
}

// tempDir is where readers spill when a library or tool needs a file.
func (w *walker) tempDir() string {
	if w.opt.TempDir != "" {
		return w.opt.TempDir
	}
	return os.TempDir()
}

// dosTime converts an MS-DOS date and time (zip, CAB, RAR 4), or zero.
func dosTime(date, tm uint16) time.Time {
	if date == 0 {
		return time.Time{}
	}
	return time.Date(int(date>>9)+1980, time.Month(date>>5&0xf), int(date&0x1f),
		int(tm>>11), int(tm>>5&0x3f), int(tm&0x1f)*2, 0, time.UTC)
}

// skip decodes and discards up to n bytes (n < 0: to the end) of an entry
// that must be passed through, as in a solid block where the next entry
// depends on this one. The bytes count against MaxTotalBytes like
// delivered ones; when they would not fit, the walk stops instead.
func (w *walker) skip(name string, r io.Reader, n int64) error {
	if n == 0 {
		return nil
	}
	budget := int64(-1)
	if w.lim.MaxTotalBytes >= 0 {
		budget = max(w.lim.MaxTotalBytes-w.res.Bytes-w.skipped, 0)
	}
	if budget >= 0 && (n < 0 || n > budget) {
		w.problem(ProblemTotalSize, name, "the rest of this entry in its solid block is beyond the archive budget; walk stopped")
		w.stopped = true
		return errStop
	}
	buf := make([]byte, 64<<10)
	for done := int64(0); ; {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		k, err := r.Read(buf)
		w.skipped += int64(k)
		done += int64(k)
		if err != nil {
			return nil // the next entry will show what is wrong
		}
		if budget >= 0 && done > budget {
			w.problem(ProblemTotalSize, name, "this entry in its solid block goes on beyond the archive budget; walk stopped")
			w.stopped = true
			return errStop
		}
	}
}
