package archive

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// The 7z subprocess fallback covers what no Go reader here handles: UDF,
// CAB with LZX or Quantum, CHM, WIM, VHD/VHDX, ARJ, LZH, cpio, MS-DOS
// SZDD, MSI, and zip members in old or rare methods (implode, shrink,
// deflate64, PPMd). It only ever runs "7z l -slt" (list) and "7z e -so"
// (one named member to stdout): nothing is extracted to disk, so no
// archive-chosen name reaches the file system. The archive is spilled to a
// temporary file of our own naming. Wildcards are off (-spd), a password
// goes in on stdin (never on the command line, where other local users
// could read it), stdin is otherwise empty so 7z cannot wait on a prompt,
// each run has a time limit and is killed when ctx ends, and output is
// bounded by the entry reader's limits like any other content.

const defaultCLITimeout = 30 * time.Second

// cliSession is the spilled archive and the 7z binary for one Walk.
type cliSession struct {
	bin  string
	path string
}

// sevenZip returns the 7z binary to use, or "" when the fallback is off
// or 7z is not installed.
func (w *walker) sevenZip() string {
	switch w.opt.SevenZipPath {
	case "-":
		return ""
	case "":
		p, err := exec.LookPath("7z")
		if err != nil {
			return ""
		}
		return p
	}
	return w.opt.SevenZipPath
}

func (w *walker) cliAvailable() bool { return w.sevenZip() != "" }

// cliOpen spills the archive for 7z, once per Walk.
func (w *walker) cliOpen() (*cliSession, error) {
	if w.cli != nil {
		return w.cli, nil
	}
	bin := w.sevenZip()
	if bin == "" {
		return nil, errors.New("7z not available")
	}
	f, err := os.CreateTemp(w.tempDir(), "mailguard-archive-*."+cliExt(w.format))
	if err != nil {
		return nil, err
	}
	w.cli = &cliSession{bin: bin, path: f.Name()}
	_, err = io.Copy(f, &ctxReader{ctx: w.ctx, r: io.NewSectionReader(w.ra, 0, w.size)})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return w.cli, err
}

// cliClose removes the spilled archive.
func (w *walker) cliClose() {
	if w.cli != nil {
		_ = os.Remove(w.cli.path)
		w.cli = nil
	}
}

// cliExt gives the spilled file an extension 7z recognises.
func cliExt(f Format) string {
	switch f {
	case Zip, CAB, CHM, ARJ, LZH, CPIO, WIM, VHD, VHDX, MSI, UDF:
		return string(f)
	case MSLZ:
		return "ex_"
	case ISO:
		return "iso"
	}
	return "bin"
}

func (w *walker) cliTimeout() time.Duration {
	if w.opt.SevenZipTimeout > 0 {
		return w.opt.SevenZipTimeout
	}
	return defaultCLITimeout
}

// cliEntry is one member as 7z lists it.
type cliEntry struct {
	Entry
	dup bool // another member has the same name: 7z cannot tell them apart
}

// walkCLI lists the archive with 7z and streams each member.
func walkCLI(w *walker) error {
	s, err := w.cliOpen()
	if err != nil {
		w.unsupported(fmt.Sprintf("%s: no Go reader, and the 7z fallback is unusable (%v)", w.format, err))
		return nil
	}
	entries, err := w.cliList(s)
	if err != nil {
		if ctxErr := w.ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		w.problem(classify(err), "", "7z list: "+err.Error())
		return nil
	}
	for _, ce := range entries {
		if err := w.cliVisit(ce); err != nil {
			return err
		}
	}
	return nil
}

func (w *walker) cliVisit(ce cliEntry) error {
	e := ce.Entry
	switch {
	case e.Dir, e.Link != "":
		return w.emit(e, nil)
	case ce.dup:
		w.problem(ProblemCorrupt, e.Name, "another member has the same name; 7z cannot extract it alone")
		return w.emit(e, nil)
	}
	var pw *string
	if e.Encrypted {
		i, err := w.unlock(func(cand string, remembered bool) (bool, error) {
			n := int64(confirmBytes)
			if remembered {
				n = 1
			}
			return w.cliTry(e.Name, cand, n), nil
		})
		if err != nil {
			return err
		}
		if i < 0 {
			e.Locked = true
			return w.emit(e, nil)
		}
		pw = &w.keys.cands[i].Value
		e.Decrypted, e.PasswordSource = true, w.source(i)
	}
	return w.cliEmit(e, pw)
}

// cliEmit streams one member through 7z to fn.
func (w *walker) cliEmit(e Entry, pw *string) error {
	p, err := w.cliExtract(e.Name, pw)
	if err != nil {
		w.problem(ProblemCorrupt, e.Name, "7z: "+err.Error())
		return w.emit(e, nil)
	}
	defer p.Close()
	var r io.Reader = p
	if e.Size > 0 {
		r = &exactReader{r: p, want: e.Size}
	}
	return w.emit(e, r)
}

// cliTry reports whether pw decrypts the first n bytes of member name.
func (w *walker) cliTry(name, pw string, n int64) bool {
	p, err := w.cliExtract(name, &pw)
	if err != nil {
		return false
	}
	defer p.Close()
	_, err = io.CopyN(io.Discard, p, n)
	return err == nil || errors.Is(err, io.EOF)
}

// cliCommand prepares a 7z run with a time limit.
func (w *walker) cliCommand(pw *string, args ...string) (*exec.Cmd, context.CancelFunc, *tailBuffer) {
	ctx, cancel := context.WithTimeout(w.ctx, w.cliTimeout())
	cmd := exec.CommandContext(ctx, w.cli.bin, args...)
	cmd.Dir = w.tempDir()
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	if pw != nil {
		cmd.Stdin = strings.NewReader(*pw + "\n")
	}
	stderr := &tailBuffer{max: 4096}
	cmd.Stderr = stderr
	cmd.WaitDelay = time.Second
	return cmd, cancel, stderr
}

// cliArgs inserts a type switch where the format needs one: an ISO/UDF
// bridge image is read as UDF, the view Windows shows.
func (w *walker) cliArgs(cmd string, args ...string) []string {
	if w.format == UDF {
		return append([]string{cmd, "-tudf"}, args...)
	}
	return append([]string{cmd}, args...)
}

// cliList runs "7z l -slt" and parses the technical listing.
func (w *walker) cliList(s *cliSession) ([]cliEntry, error) {
	cmd, cancel, stderr := w.cliCommand(nil, w.cliArgs("l", "-slt", "-bd", "-sccUTF-8", "--", s.path)...)
	defer cancel()
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	start := time.Now()
	entries, perr := w.parseListing(io.LimitReader(out, 64<<20))
	_, _ = io.Copy(io.Discard, out)
	werr := cmd.Wait()
	switch {
	case werr != nil && time.Since(start) >= w.cliTimeout():
		return nil, &kindError{ProblemTimeout, fmt.Errorf("7z listing took longer than %v", w.cliTimeout())}
	case werr != nil && len(entries) == 0:
		return nil, cliError(werr, stderr.String())
	case werr != nil:
		w.problem(ProblemCorrupt, "", "7z list: "+cliError(werr, stderr.String()).Error())
	}
	return entries, perr
}

// parseListing reads "7z l -slt" output: an archive block, a dashed line,
// then one "Key = Value" block per member.
func (w *walker) parseListing(r io.Reader) ([]cliEntry, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var entries []cliEntry
	seen := map[string]int{}
	inMembers := false
	var cur map[string]string
	flush := func() {
		if cur == nil || cur["Path"] == "" {
			cur = nil
			return
		}
		ce := cliEntry{Entry: listedEntry(cur)}
		if i, ok := seen[ce.Name]; ok {
			ce.dup, entries[i].dup = true, true
		} else {
			seen[ce.Name] = len(entries)
		}
		entries = append(entries, ce)
		cur = nil
	}
	for sc.Scan() {
		line := sc.Text()
		if !inMembers {
			inMembers = strings.HasPrefix(line, "----------")
			continue
		}
		if line == "" {
			flush()
			if w.lim.MaxEntries >= 0 && len(entries) > w.lim.MaxEntries {
				break
			}
			continue
		}
		k, v, ok := strings.Cut(line, " = ")
		if !ok {
			continue
		}
		if cur == nil {
			cur = map[string]string{}
		}
		cur[k] = v
	}
	flush()
	return entries, sc.Err()
}

// listedEntry converts one listing block.
func listedEntry(m map[string]string) Entry {
	e := Entry{Name: m["Path"], Size: -1, CompressedSize: -1, Method: strings.ToLower(m["Method"])}
	if n, err := strconv.ParseInt(m["Size"], 10, 64); err == nil {
		e.Size = n
	}
	if n, err := strconv.ParseInt(m["Packed Size"], 10, 64); err == nil && n > 0 {
		e.CompressedSize = n
	}
	if t, err := time.Parse("2006-01-02 15:04:05", strings.SplitN(m["Modified"], ".", 2)[0]); err == nil {
		e.Modified = t
	}
	e.Dir = m["Folder"] == "+" || strings.HasPrefix(m["Attributes"], "D")
	e.Encrypted = m["Encrypted"] == "+"
	if l := m["Symbolic Link"]; l != "" {
		e.Link = l
	}
	return e
}

// procReader is a 7z process's stdout; Close kills the process.
type procReader struct {
	cmd    *exec.Cmd
	out    io.ReadCloser
	cancel context.CancelFunc
	stderr *tailBuffer
	start  time.Time
	limit  time.Duration
	done   bool
}

// cliExtract starts "7z e -so" for one member.
func (w *walker) cliExtract(name string, pw *string) (*procReader, error) {
	if _, err := w.cliOpen(); err != nil {
		return nil, err
	}
	cmd, cancel, stderr := w.cliCommand(pw, w.cliArgs("e", "-so", "-bd", "-spd", "-sccUTF-8", "-y", "--", w.cli.path, name)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, err
	}
	return &procReader{cmd: cmd, out: out, cancel: cancel, stderr: stderr, start: time.Now(), limit: w.cliTimeout()}, nil
}

func (p *procReader) Read(b []byte) (int, error) {
	if p.done {
		return 0, io.EOF
	}
	n, err := p.out.Read(b)
	if err == nil || !errors.Is(err, io.EOF) {
		return n, err
	}
	p.done = true
	werr := p.cmd.Wait()
	switch {
	case werr == nil:
		return n, io.EOF
	case time.Since(p.start) >= p.limit:
		return n, &kindError{ProblemTimeout, fmt.Errorf("7z took longer than %v", p.limit)}
	}
	return n, cliError(werr, p.stderr.String())
}

// Close stops the process if it is still running.
func (p *procReader) Close() error {
	p.cancel()
	if !p.done {
		p.done = true
		_ = p.cmd.Wait()
	}
	return nil
}

// cliError classifies a failed 7z run by its message.
func cliError(err error, stderr string) error {
	msg := strings.TrimSpace(stderr)
	if i := strings.LastIndex(msg, "ERROR:"); i >= 0 {
		msg = strings.TrimSpace(msg[i+len("ERROR:"):])
	}
	msg = clip(strings.Join(strings.Fields(msg), " "), 200)
	kind := ProblemCorrupt
	switch {
	case strings.Contains(msg, "Wrong password"), strings.Contains(msg, "CRC Failed"), strings.Contains(msg, "Data Error"):
		kind = ProblemChecksum
	case strings.Contains(msg, "Unsupported"):
		kind = ProblemUnsupportedMethod
	case strings.Contains(msg, "Unexpected end"), strings.Contains(msg, "Headers Error"):
		kind = ProblemTruncated
	}
	return &kindError{kind, fmt.Errorf("7z: %v: %s", err, msg)}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(bytes.ToValidUTF8(t.b, nil)) }
