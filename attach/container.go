package attach

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/mailguard/mailguard/attach/archive"
	"github.com/mailguard/mailguard/reason"
)

// errTreeFull ends an archive walk when a tree-wide limit refused a file.
var errTreeFull = errors.New("attach: tree limit reached")

// archive opens a container that attach/archive recognises; a disk image
// it does not recognise is reported unsupported.
func (w *walker) archive(f *File) error {
	ra, size, err := f.ReaderAt()
	if err != nil {
		return errSpill{err}
	}
	format := archive.Sniff(ra, size)
	if format == "" {
		switch f.Type {
		case typeISO, typeUDF, typeVHD, typeVHDX:
			f.addFinding(reason.UnsupportedContainer, "disk image "+f.Type+" not readable")
			f.Features.Unsupported = f.Type
		}
		return nil
	}
	return w.archiveAs(f, string(format))
}

// archiveAs walks one container with attach/archive: each entry becomes a
// child (decrypted with the candidate passwords where possible) and is
// inspected in turn; the archive's problems become findings.
func (w *walker) archiveAs(f *File, format string) error {
	if f.Depth+1 > w.lim.MaxDepth {
		w.tooDeep(f, format+" container")
		return nil
	}
	ra, size, err := f.ReaderAt()
	if err != nil {
		return errSpill{err}
	}
	pws := w.passwords()
	apw := make([]archive.Password, len(pws))
	for i, p := range pws {
		apw[i] = archive.Password{Value: p.Value, Source: string(p.Source)}
	}
	opt := archive.Options{
		Limits: archive.Limits{
			MaxEntries:    w.lim.MaxFiles,
			MaxEntryBytes: w.lim.MaxFileBytes,
			MaxTotalBytes: max(1, w.lim.MaxTotalBytes-w.nbytes),
			MaxRatio:      w.lim.MaxRatio,
			MaxAttempts:   max(1, 2*w.lim.MaxPasswords),
		},
		Passwords: apw,
		Name:      f.Name,
		TempDir:   w.opt.TempDir,
	}
	f.Features.Container = format
	var (
		sources  = map[PasswordSource]bool{}
		nonFiles []string
		childErr error
	)
	res, werr := archive.Walk(w.ctx, archive.Format(format), ra, size, opt, func(e archive.Entry, r io.Reader) error {
		if e.Dir || e.Link != "" || r == nil {
			if t := traversal(e.Name); t != "" {
				f.addFinding(reason.PathTraversal, "entry "+t)
			}
			if e.Link != "" {
				if t := traversal(e.Link); t != "" {
					f.addFinding(reason.PathTraversal, "link target "+t)
				}
			}
			if e.Locked || e.Encrypted && !e.Decrypted {
				f.Encrypted = true
			}
			nonFiles = append(nonFiles, e.Name)
			return nil
		}
		child, err := w.addFile(fileSpec{parent: f, name: entryName(e.Name), inArc: true}, r)
		if err != nil {
			childErr = err
			return err
		}
		if child == nil {
			return errTreeFull
		}
		if e.Encrypted {
			f.Encrypted = true
			child.Encrypted = true
		}
		if e.Decrypted {
			child.Decrypted = true
			child.PasswordSource = PasswordSource(e.PasswordSource)
			sources[child.PasswordSource] = true
		}
		if err := w.inspect(child); err != nil {
			childErr = err
			return err
		}
		return nil
	})
	if childErr != nil {
		return childErr
	}
	if werr != nil && !errors.Is(werr, errTreeFull) && w.outer.Err() != nil {
		return werr
	}
	if werr != nil && w.ctx.Err() != nil {
		w.stopped()
	}
	w.archiveFindings(f, res, sources)
	return nil
}

// archiveFindings turns an archive Result into findings on the file.
func (w *walker) archiveFindings(f *File, res archive.Result, sources map[PasswordSource]bool) {
	if res.Unsupported != "" {
		f.Features.Unsupported = res.Unsupported
		f.addFinding(reason.UnsupportedContainer, clip(res.Unsupported, 200))
		w.res.Complete = false
	}
	if res.Encrypted {
		f.Encrypted = true
	}
	var bombs, broken []string
	for _, p := range res.Problems {
		s := problemText(p)
		switch {
		case p.Kind.Bomb():
			bombs = append(bombs, s)
		case p.Kind == archive.ProblemAttempts:
			// Reported with the locked entries below.
		default:
			broken = append(broken, s)
		}
	}
	if len(bombs) > 0 {
		w.bomb(f, clip(strings.Join(bombs, "; "), 1000))
	}
	if len(broken) > 0 {
		f.addFinding(reason.UnsupportedContainer, clip(string(res.Format)+" not fully readable: "+strings.Join(broken, "; "), 1000))
		w.res.Complete = false
	}
	if len(res.Locked) > 0 || res.HeadersEncrypted && res.Entries == 0 {
		f.Encrypted = true
		names := make([]string, 0, min(len(res.Locked), 50))
		for i, n := range res.Locked {
			if i >= 50 {
				break
			}
			names = append(names, sanitizePath(entryName(n)))
		}
		f.Features.Entries = names
		d := fmt.Sprintf("%d encrypted entries could not be decrypted", len(res.Locked))
		if res.HeadersEncrypted && res.Entries == 0 {
			d = "archive with encrypted names could not be decrypted"
		}
		if len(names) > 0 {
			d += ": " + strings.Join(names, ", ")
		}
		if res.HasProblem(archive.ProblemAttempts) {
			d += " (password attempt budget used up)"
		}
		f.addFinding(reason.EncryptedUnscannable, clip(d, 1500))
	}
	if len(sources) > 0 {
		var srcs []string
		for s := range sources {
			srcs = append(srcs, string(s))
		}
		sort.Strings(srcs)
		f.PasswordSource = PasswordSource(srcs[0])
		if len(res.Locked) == 0 {
			f.Decrypted = true
		}
		if sources[SourceBody] {
			f.PasswordSource = SourceBody
			f.addFinding(reason.PasswordFoundBody, "archive decrypted with a password found in the message text")
		}
		if sources[SourceThread] {
			if !sources[SourceBody] {
				f.PasswordSource = SourceThread
			}
			f.addFinding(reason.PasswordFoundThread, "archive decrypted with a password from the conversation")
		}
	} else if res.HeadersEncrypted && res.PasswordSource != "" {
		f.Decrypted = true
		f.PasswordSource = PasswordSource(res.PasswordSource)
	}
}

// entryName is an archive entry's name in UTF-8. Zip archives made by
// Windows in Japan store names in CP932 without the UTF-8 flag (and old
// RAR and tar archives in whatever the system used): names that are not
// UTF-8 go through decodeRaw, which tries Shift_JIS and EUC-JP before
// Windows-1252. CP932 must be decoded before the name is split into
// components: the second byte of 表, ソ or 能 is a back slash.
func entryName(name string) string {
	if utf8.ValidString(name) {
		return name
	}
	return decodeRaw(name)
}

func problemText(p archive.Problem) string {
	if p.Entry == "" {
		return string(p.Kind) + ": " + clip(p.Detail, 200)
	}
	return string(p.Kind) + ": " + sanitizePath(entryName(p.Entry)) + ": " + clip(p.Detail, 200)
}
