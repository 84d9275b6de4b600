package attach

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
	"time"

	"github.com/mailguard/mailguard/reason"
)

// Walk inspects one message: its MIME tree, every file in it and in the
// containers inside, the passwords its text announces, and the content
// features of each file. The error is only ctx's cancellation or a spill
// I/O failure; everything hostile becomes a finding. The caller must
// Close the Result (it owns spill files) even when an error is returned.
func Walk(ctx context.Context, r io.ReaderAt, size int64, opt Options) (*Result, error) {
	lim := opt.Limits.withDefaults()
	res := &Result{
		Files:    []*File{},
		Findings: []reason.Finding{},
		Complete: true,
		spill:    &spillDir{parent: opt.TempDir},
	}
	bctx, cancel := context.WithTimeout(ctx, lim.MaxDuration)
	defer cancel()
	w := &walker{ctx: bctx, outer: ctx, lim: lim, opt: opt, res: res, start: time.Now()}
	err := w.guard(func() error { return w.walkMessage(r, size, nil, 0) })
	w.finishText()
	if err != nil {
		var se errSpill
		switch {
		case errors.As(err, &se):
			return res, err
		case ctx.Err() != nil:
			return res, ctx.Err()
		}
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	return res, nil
}

// WalkFile inspects one file as if it were attached to a message: its true
// type, features and everything inside it. name is the file's name (for
// display and extension checks). Errors are as for Walk.
func WalkFile(ctx context.Context, name string, r io.ReaderAt, size int64, opt Options) (*Result, error) {
	lim := opt.Limits.withDefaults()
	res := &Result{Files: []*File{}, Findings: []reason.Finding{}, Complete: true, spill: &spillDir{parent: opt.TempDir}}
	bctx, cancel := context.WithTimeout(ctx, lim.MaxDuration)
	defer cancel()
	w := &walker{ctx: bctx, outer: ctx, lim: lim, opt: opt, res: res, start: time.Now()}
	err := w.guard(func() error {
		f, err := w.addFile(fileSpec{name: name}, io.NewSectionReader(r, 0, size))
		if err == nil && f != nil {
			err = w.inspect(f)
		}
		return err
	})
	w.finishText()
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	return res, err
}

// walker is the state of one Walk.
type walker struct {
	ctx   context.Context // with the wall-clock budget
	outer context.Context // the caller's
	lim   Limits
	opt   Options
	res   *Result
	start time.Time

	nfiles    int
	nbytes    int64
	mimeParts int

	text      strings.Builder // NFKC text for Result.Text
	bodyPW    []string        // candidates from the message text, in order found
	announced bool

	bombSaid, depthSaid, timeSaid bool

	paths map[string]int // paths handed out, to keep them unique
}

// uniquePath returns p, or p with " (n)" appended when an earlier file
// (two attachments of the same name, say) already has that path.
func (w *walker) uniquePath(p string) string {
	if w.paths == nil {
		w.paths = map[string]int{}
	}
	n := w.paths[p]
	w.paths[p] = n + 1
	if n == 0 {
		return p
	}
	for {
		n++
		q := fmt.Sprintf("%s (%d)", p, n)
		if w.paths[q] == 0 {
			w.paths[q] = 1
			return q
		}
	}
}

// stopped reports whether the walk must stop adding work: the caller
// cancelled or the budget is spent. The first time the budget runs out it
// records a finding.
func (w *walker) stopped() bool {
	if w.outer.Err() != nil {
		return true
	}
	if w.ctx.Err() != nil {
		if !w.timeSaid {
			w.timeSaid = true
			w.res.Complete = false
			w.res.Findings = append(w.res.Findings, reason.Finding{Tag: reason.ArchiveBomb,
				Detail: fmt.Sprintf("wall-clock budget of %v spent; the rest was not inspected", w.lim.MaxDuration)})
		}
		return true
	}
	return false
}

// bomb records a tree-wide limit (files, bytes) once at message level and
// on the file concerned.
func (w *walker) bomb(f *File, detail string) {
	w.res.Complete = false
	if f != nil {
		f.addFinding(reason.ArchiveBomb, detail)
	}
	if !w.bombSaid {
		w.bombSaid = true
		w.res.Findings = append(w.res.Findings, reason.Finding{Tag: reason.ArchiveBomb, Detail: detail})
	}
}

func (f *File) addFinding(tag reason.Tag, detail string) {
	f.add(reason.Finding{Tag: tag, Detail: detail, Path: f.Path})
}

// openedWith marks a document (not an archive: see archiveFindings)
// decrypted with a password from src, and says where the password came
// from when that was the message or the conversation.
func (f *File) openedWith(src PasswordSource, what string) {
	f.Decrypted, f.PasswordSource = true, src
	switch src {
	case SourceBody:
		f.addFinding(reason.PasswordFoundBody, what+" decrypted with a password found in the message text")
	case SourceThread:
		f.addFinding(reason.PasswordFoundThread, what+" decrypted with a password from the conversation")
	}
}

// addDefect adds a malformed_mime finding; minor: see problem.
func (f *File) addDefect(detail string, minor bool) {
	f.add(reason.Finding{Tag: reason.MalformedMIME, Detail: detail, Path: f.Path, Minor: minor})
}

func (f *File) add(fd reason.Finding) {
	for _, g := range f.Findings {
		if g.Tag == fd.Tag && g.Detail == fd.Detail {
			return
		}
	}
	if len(f.Findings) >= 64 {
		return
	}
	f.Findings = append(f.Findings, fd)
}

func (f *File) has(tag reason.Tag) bool {
	for _, g := range f.Findings {
		if g.Tag == tag {
			return true
		}
	}
	return false
}

// fileSpec says how a new file node is attached to the tree.
type fileSpec struct {
	parent  *File
	name    string // as given (hostile)
	display string // path component(s) when name is empty or special
	derived bool
	inArc   bool   // the parent is an archive or disk image (lnk_in_container)
	hint    int64  // expected size, to size the memory buffer (0: unknown)
	ctype   string // declared Content-Type, a hint for text-like content only
}

// addFile stores the content of r as a new file node and appends it to the
// tree. It returns nil (with findings recorded) when a tree-wide limit
// refuses the file.
func (w *walker) addFile(spec fileSpec, r io.Reader) (*File, error) {
	if w.stopped() {
		return nil, nil
	}
	if w.nfiles >= w.lim.MaxFiles {
		w.bomb(spec.parent, fmt.Sprintf("more than %d files in the message; the rest was not inspected", w.lim.MaxFiles))
		return nil, nil
	}
	room := w.lim.MaxTotalBytes - w.nbytes
	if room <= 0 {
		w.bomb(spec.parent, fmt.Sprintf("more than %d bytes extracted from the message; the rest was not inspected", w.lim.MaxTotalBytes))
		return nil, nil
	}
	f := &File{Name: spec.name, PasswordSource: SourceNone, Derived: spec.derived, Findings: []reason.Finding{}}
	comp := spec.display
	if comp == "" {
		comp = sanitizePath(spec.name)
	}
	if spec.parent != nil {
		f.Path = spec.parent.Path + "/" + comp
		f.Depth = spec.parent.Depth + 1
	} else {
		f.Path = comp
	}
	f.Path = w.uniquePath(f.Path)
	f.parent = spec.parent
	f.inArchive = spec.inArc
	f.declared = spec.ctype
	s := newSink(w.res.spill, w.lim.MemoryFileBytes, min(w.lim.MaxFileBytes, room))
	if spec.hint > 0 && spec.hint <= w.lim.MemoryFileBytes {
		s.buf.Grow(int(spec.hint))
	}
	cerr := copyInto(s, r)
	if err := s.finish(f); err != nil {
		return nil, err
	}
	w.nfiles++
	w.nbytes += f.Size
	w.res.Files = append(w.res.Files, f)
	if f.Truncated {
		limit := "file size limit"
		if room < w.lim.MaxFileBytes {
			limit = "message byte limit"
		}
		w.bomb(f, fmt.Sprintf("%s cut at %d bytes (%s)", f.Path, f.Size, limit))
	}
	if cerr != nil && !errors.Is(cerr, context.Canceled) && !errors.Is(cerr, context.DeadlineExceeded) {
		f.readErr = clip(cerr.Error(), 200)
	}
	return f, nil
}

// addBytes is addFile for content already in memory (derived files,
// embedded objects).
func (w *walker) addBytes(spec fileSpec, b []byte) (*File, error) {
	return w.addFile(spec, bytesReader(b))
}

// safely runs one per-file parser; a panic becomes a malformed_mime
// finding on the file (STYLE.md §6.7) instead of crashing the gateway.
func (w *walker) safely(f *File, what string, fn func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			w.res.Panics = append(w.res.Panics, fmt.Sprintf("%s parser on %s: %v\n%s", what, f.Path, v, debug.Stack()))
			f.addFinding(reason.MalformedMIME, fmt.Sprintf("%s parser failed on hostile input: %v", what, v))
			w.res.Complete = false
			err = nil
		}
	}()
	return fn()
}

// guard is the last line of defence: a panic anywhere in the walk (the
// per-file parsers have their own recover) becomes a malformed_mime
// finding and an incomplete result, never a crashed gateway.
func (w *walker) guard(fn func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			w.res.Complete = false
			w.res.Panics = append(w.res.Panics, fmt.Sprintf("message walk: %v\n%s", v, debug.Stack()))
			w.res.Findings = append(w.res.Findings, reason.Finding{Tag: reason.MalformedMIME,
				Detail: fmt.Sprintf("message parser failed on hostile input: %v", v)})
			err = nil
		}
	}()
	return fn()
}

// inspect types one file, checks its name, extracts its features and walks
// its children. Errors are only cancellation and spill failures.
func (w *walker) inspect(f *File) error {
	head, tail := f.head(sniffBytes), f.tail(512)
	f.Type = detectType(head, tail, f.Name)
	if (f.declared == "message/rfc822" || f.declared == "message/global" || extOf(f.Name) == "eml") &&
		(f.Type == "text/plain" || f.Type == "application/octet-stream") {
		// A message whose header is too short for sniffing; the
		// declaration or the name says what it is.
		f.Type = typeEML
	}
	if f.Name != "" {
		for _, g := range nameFindings(f.Name, f.Path) {
			f.addFinding(g.Tag, g.Detail)
		}
	}
	if f.readErr != "" {
		f.addFinding(reason.UnsupportedContainer, "content ends early: "+f.readErr)
	}
	if k := executableKind(f.Type, f.Name); k != "" {
		f.Features.Executable = k
		f.addFinding(reason.ExecAttachment, fmt.Sprintf("%s (%s)", k, f.Type))
		if f.inArchive {
			f.addFinding(reason.LNKInContainer, fmt.Sprintf("executable %s inside %s", k, f.parent.Path))
		}
	}
	if f.Derived {
		return nil
	}
	if w.stopped() {
		return nil
	}
	return w.features(f, head)
}

// features dispatches on the true type.
func (w *walker) features(f *File, head []byte) error {
	switch {
	case f.Type == typeEML:
		return w.container(f, "message", func() error { return w.walkNested(f) })
	case f.Type == typeLNK:
		return w.safely(f, "lnk", func() error { w.lnk(f); return nil })
	case f.Type == typeTNEF:
		return w.container(f, "tnef", func() error { return w.tnef(f) })
	case isOLE(head):
		return w.container(f, "ole", func() error { return w.ole(f) })
	case f.Type == "application/pdf":
		return w.container(f, "pdf", func() error { return w.pdf(f) })
	case f.Type == typeOneNote:
		return w.container(f, "onenote", func() error { return w.onenote(f) })
	case isHTMLType(f.Type, f.Name):
		return w.safely(f, "html", func() error { w.htmlFile(f); return nil })
	case f.Type == typeBinHex:
		return w.container(f, "binhex", func() error { return w.binhex(f) })
	case f.Type == typeSIS:
		f.Features.Unsupported = "sis"
		f.addFinding(reason.UnsupportedContainer, "sis: Symbian installation package not opened")
		return nil
	case f.Type == "text/rtf" || f.Type == "application/rtf":
		return w.container(f, "rtf", func() error { return w.rtf(f) })
	}
	if isOOXML(f) {
		return w.container(f, "ooxml", func() error { return w.ooxml(f) })
	}
	return w.archive(f)
}

// container runs fn for a file whose children are files, after checking
// the depth limit, inside a recover.
func (w *walker) container(f *File, what string, fn func() error) error {
	if f.Depth+1 > w.lim.MaxDepth {
		w.tooDeep(f, what)
		return nil
	}
	return w.safely(f, what, fn)
}

func (w *walker) tooDeep(f *File, what string) {
	w.res.Complete = false
	f.addFinding(reason.ArchiveDepth, fmt.Sprintf("%s at depth %d not opened (limit %d)", what, f.Depth, w.lim.MaxDepth))
	if !w.depthSaid {
		w.depthSaid = true
		w.res.Findings = append(w.res.Findings, reason.Finding{Tag: reason.ArchiveDepth,
			Detail: fmt.Sprintf("containers nested deeper than %d", w.lim.MaxDepth), Path: f.Path})
	}
}

// walkNested walks an attached message (.eml, message/rfc822).
func (w *walker) walkNested(f *File) error {
	ra, size, err := f.ReaderAt()
	if err != nil {
		return errSpill{err}
	}
	return w.walkMessage(ra, size, f, f.Depth+1)
}

// passwords returns the candidates for archives: the message's own first,
// then the caller's, deduplicated and capped at MaxPasswords.
func (w *walker) passwords() []Password {
	var out []Password
	seen := map[string]bool{}
	add := func(p Password) {
		if p.Value == "" || seen[p.Value] || len(out) >= w.lim.MaxPasswords {
			return
		}
		seen[p.Value] = true
		out = append(out, p)
	}
	for _, v := range w.bodyPW {
		add(Password{Value: v, Source: SourceBody})
	}
	for _, p := range w.opt.Passwords {
		if p.Source == "" || p.Source == SourceNone {
			p.Source = SourcePolicy
		}
		add(p)
	}
	return out
}
