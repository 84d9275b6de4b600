package attach

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/jhillyerd/enmime/v2/mediatype"
)

// The MIME tree is found by a single-pass boundary walker of our own, not
// by enmime: enmime's cost grows super-linearly with nesting and part
// count, it drops malformed parts (SkipMalformedParts) or fails the whole
// message, and it holds every part in memory. The walker reads the
// message once, line by line, with a stack of open boundaries; its cost
// is linear in the message size times the (bounded) nesting depth, it
// never drops a part, and it records what was wrong. Leaves are then
// decoded one at a time; enmime interprets their headers and converts
// the charsets of text bodies.

// maxHeaderBytes bounds one entity's header block.
const maxHeaderBytes = 256 << 10

type entityKind int

const (
	kindLeaf entityKind = iota
	kindMultipart
)

// entity is one MIME entity found by the structure scan.
type entity struct {
	id        string // "1.2.3" like enmime's PartID; "" for the root
	rawHeader []byte
	fields    []hfield
	kind      entityKind
	ctype     string // lower-case media type, "" if absent
	params    map[string]string
	boundary  string
	bodyStart int64
	bodyEnd   int64
	children  []*entity
	depth     int
	nchild    int
}

type hfield struct {
	name  string // lower case
	value string // unfolded, raw bytes as string
}

func (e *entity) get(name string) string {
	for _, f := range e.fields {
		if f.name == name {
			return f.value
		}
	}
	return ""
}

func (e *entity) getAll(name string) []string {
	var out []string
	for _, f := range e.fields {
		if f.name == name {
			out = append(out, f.value)
		}
	}
	return out
}

// mimeScan is the result of scanning one message's structure.
type mimeScan struct {
	root     *entity
	problems []problem
	parts    int
	cut      bool // a limit stopped the scan; the rest was not parsed
}

type frame struct {
	ent      *entity
	boundary string
	closed   bool
	strays   int // lines starting with "--" that were no delimiter of it
}

type scanState int

const (
	stHeader scanState = iota
	stBody
	stIgnore // preamble or epilogue
)

// mimeScanner is the state of one structure scan.
type mimeScanner struct {
	s         *mimeScan
	maxParts  int
	maxDepth  int
	stack     []*frame
	cur       *entity // entity whose header or body is being read
	state     scanState
	prevEOL   int64 // terminator length of the previous line
	hdr       bytes.Buffer
	hdrOver   bool
	lineStart bool
	caseNoted bool // a case-folded delimiter was reported
}

// scanMIME parses the structure of the message in ra[0:size] in one pass.
func scanMIME(ra io.ReaderAt, size int64, maxParts, maxDepth int) *mimeScan {
	sc := &mimeScanner{s: &mimeScan{root: &entity{}, parts: 1}, maxParts: maxParts, maxDepth: maxDepth, lineStart: true}
	sc.cur = sc.s.root
	br := bufio.NewReaderSize(io.NewSectionReader(ra, 0, size), readBufSize(size))
	var off int64
	for {
		line, err := br.ReadSlice('\n')
		full := err != bufio.ErrBufferFull
		if len(line) > 0 {
			start := off
			off += int64(len(line))
			if sc.lineStart && len(sc.stack) > 0 && len(line) > 2 && line[0] == '-' && line[1] == '-' {
				i, closing := matchBoundary(sc.stack, line)
				if i < 0 {
					sc.stack[len(sc.stack)-1].strays++
				}
				if i < 0 && !sc.caseNoted && foldedBoundary(sc.stack, line) {
					// Boundaries are case-sensitive (RFC 2046), but not
					// to every reader: one may see parts here that were
					// not read as parts.
					sc.caseNoted = true
					sc.problem("part %s: a delimiter line differs from the boundary only in letter case", partName(sc.cur))
				}
				if i >= 0 {
					if !sc.boundary(i, closing, start) {
						return sc.s
					}
					// Skip the rest of an overlong boundary line.
					for err == bufio.ErrBufferFull {
						line, err = br.ReadSlice('\n')
						off += int64(len(line))
					}
					sc.lineStart, sc.prevEOL = true, eolLen(line)
					if err != nil {
						break
					}
					continue
				}
			}
			if sc.state == stHeader && sc.cur != nil {
				sc.headerLine(line, off)
			}
			sc.lineStart = full
			sc.prevEOL = 0
			if full {
				sc.prevEOL = eolLen(line)
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			break
		}
	}
	sc.eof(off)
	return sc.s
}

// problem is one defect of a message's structure or encoding.
//
// A minor one is a defect that every common reader resolves the same way
// and that mailguard read past, so that what it inspected is what the
// recipient's client shows: a missing final boundary at the end of the
// message, junk in base64, a bad quoted-printable escape, a line in the
// header that is not a field. The rest are ambiguous: mail clients may
// read the message differently from mailguard (a multipart whose boundary
// cannot be read, two differing Content-Type fields, padding inside
// base64), or mailguard could not read all of it (limits, parsers that
// failed). Both are malformed_mime findings; only the ambiguous ones
// quarantine by themselves (the built-in rule "builtin-malformed").
type problem struct {
	text  string
	minor bool
}

// problem records an ambiguous defect.
func (sc *mimeScanner) problem(format string, a ...any) { sc.add(false, format, a...) }

// minor records a minor defect.
func (sc *mimeScanner) minor(format string, a ...any) { sc.add(true, format, a...) }

func (sc *mimeScanner) add(minor bool, format string, a ...any) {
	if len(sc.s.problems) < 50 {
		sc.s.problems = append(sc.s.problems, problem{fmt.Sprintf(format, a...), minor})
	}
}

// parseHeader turns the collected header block into the current entity's
// fields and media type.
func (sc *mimeScanner) parseHeader() {
	e := sc.cur
	e.rawHeader = append([]byte(nil), sc.hdr.Bytes()...)
	sc.hdr.Reset()
	sc.hdrOver = false
	report := func(p problem) { sc.add(p.minor, "part %s: %s", partName(e), p.text) }
	e.fields = parseHeaderBlock(e.rawHeader, report)
	e.classify(report)
}

// headerLine collects one header line, or ends the header at a blank line.
func (sc *mimeScanner) headerLine(line []byte, next int64) {
	if sc.lineStart && isBlankLine(line) {
		sc.endHeader(next)
		return
	}
	if sc.hdrOver {
		return
	}
	if sc.hdr.Len()+len(line) > maxHeaderBytes {
		sc.problem("part %s: header block larger than %d bytes; truncated", partName(sc.cur), maxHeaderBytes)
		sc.hdrOver = true
		return
	}
	sc.hdr.Write(line)
}

// endHeader finishes the current entity's header; a multipart opens a new
// boundary frame unless the nesting limit is reached.
func (sc *mimeScanner) endHeader(bodyAt int64) {
	sc.parseHeader()
	e := sc.cur
	e.bodyStart, e.bodyEnd = bodyAt, bodyAt
	if e.kind == kindMultipart {
		if len(sc.stack) < sc.maxDepth {
			sc.stack = append(sc.stack, &frame{ent: e, boundary: e.boundary})
			sc.state = stIgnore
			return
		}
		sc.problem("part %s: multipart nesting deeper than %d; kept as an opaque part", partName(e), sc.maxDepth)
		sc.s.cut = true
		e.kind = kindLeaf
	}
	sc.state = stBody
}

// boundary handles a delimiter line of frame i starting at offset start.
// It returns false when the part limit stops the scan.
func (sc *mimeScanner) boundary(i int, closing bool, start int64) bool {
	end := start - sc.prevEOL // the CRLF before a delimiter belongs to it
	if sc.state == stHeader && sc.cur != nil {
		sc.minor("part %s: header not terminated by an empty line", partName(sc.cur))
		sc.parseHeader()
		sc.cur.kind = kindLeaf
		sc.cur.bodyStart, sc.cur.bodyEnd = start, start
	}
	if sc.cur != nil && sc.state == stBody {
		sc.cur.bodyEnd = max(end, sc.cur.bodyStart)
	}
	for j := len(sc.stack) - 1; j > i; j-- {
		if !sc.stack[j].closed {
			// Ended by its parent's delimiter, as RFC 2046 readers do.
			sc.minor("part %s: boundary %q not closed", partName(sc.stack[j].ent), sc.stack[j].boundary)
		}
		sc.stack[j].ent.bodyEnd = end
	}
	sc.stack = sc.stack[:i+1]
	f := sc.stack[i]
	if closing {
		f.closed = true
		f.ent.bodyEnd = end
		sc.stack = sc.stack[:i]
		sc.state, sc.cur = stIgnore, nil
		return true
	}
	if sc.s.parts >= sc.maxParts {
		sc.problem("more than %d MIME parts; the rest of the message was not parsed", sc.maxParts)
		sc.s.cut = true
		return false
	}
	sc.s.parts++
	f.ent.nchild++
	child := &entity{id: childID(f.ent, f.ent.nchild), depth: f.ent.depth + 1}
	f.ent.children = append(f.ent.children, child)
	sc.cur, sc.state = child, stHeader
	return true
}

// eof closes whatever is open at the end of the input.
func (sc *mimeScanner) eof(off int64) {
	if sc.cur != nil {
		switch sc.state {
		case stHeader:
			// A header without a body, or a message that is all header.
			sc.endHeader(off)
			if n := len(sc.stack); sc.cur.kind == kindMultipart && n > 0 && sc.stack[n-1].ent == sc.cur {
				sc.minor("part %s: multipart without any part", partName(sc.cur))
			}
		case stBody:
			sc.cur.bodyEnd = off
		}
	}
	for j := len(sc.stack) - 1; j >= 0; j-- {
		switch fr := sc.stack[j]; {
		case fr.ent.nchild == 0 && fr.strays == 0:
			// Not a line of its body looks like a delimiter: no reader
			// finds parts in it. It is read as one part (a list that
			// dropped the attachments leaves such messages).
			sc.minor("part %s: boundary %q never appears; the body was read as one part", partName(fr.ent), fr.boundary)
			fr.ent.kind = kindLeaf
		case fr.ent.nchild == 0:
			// Lines that look like delimiters, none of them this one:
			// readers that match more loosely find parts mailguard did
			// not read.
			sc.problem("part %s: boundary %q never appears, but other delimiter-like lines do; the content was not read as parts", partName(fr.ent), fr.boundary)
		case !fr.closed:
			// Every reader ends it at the end of the message.
			sc.minor("part %s: boundary %q not closed", partName(fr.ent), fr.boundary)
		}
		sc.stack[j].ent.bodyEnd = off
	}
}

func partName(e *entity) string {
	if e == nil || e.id == "" {
		return "0"
	}
	return e.id
}

func childID(parent *entity, n int) string {
	if parent.id == "" {
		return fmt.Sprint(n)
	}
	return fmt.Sprintf("%s.%d", parent.id, n)
}

func eolLen(line []byte) int64 {
	n := len(line)
	if n >= 2 && line[n-2] == '\r' && line[n-1] == '\n' {
		return 2
	}
	if n >= 1 && line[n-1] == '\n' {
		return 1
	}
	return 0
}

func isBlankLine(line []byte) bool {
	return len(bytes.TrimRight(line, "\r\n")) == 0
}

// foldedBoundary reports a line that would be a delimiter of an open
// multipart if letter case were ignored.
func foldedBoundary(stack []*frame, line []byte) bool {
	rest := line[2:]
	for _, f := range stack {
		if len(rest) >= len(f.boundary) && bytes.EqualFold(rest[:len(f.boundary)], []byte(f.boundary)) {
			tail := bytes.TrimPrefix(rest[len(f.boundary):], []byte("--"))
			if len(bytes.Trim(tail, " \t\r\n")) == 0 {
				return true
			}
		}
	}
	return false
}

// matchBoundary finds the innermost open multipart whose boundary the line
// is (RFC 2046 §5.1.1: "--" boundary, optional "--", then only white space).
func matchBoundary(stack []*frame, line []byte) (int, bool) {
	rest := line[2:]
	for i := len(stack) - 1; i >= 0; i-- {
		b := stack[i].boundary
		if !bytes.HasPrefix(rest, []byte(b)) {
			continue
		}
		tail := rest[len(b):]
		closing := false
		if bytes.HasPrefix(tail, []byte("--")) {
			closing = true
			tail = tail[2:]
		}
		if len(bytes.Trim(tail, " \t\r\n")) == 0 {
			return i, closing
		}
	}
	return -1, false
}

// parseHeaderBlock splits a raw header block into unfolded fields. Lines
// that are neither fields nor continuations are reported and skipped.
func parseHeaderBlock(raw []byte, report func(problem)) []hfield {
	var fields []hfield
	bad := 0
	for _, line := range bytes.SplitAfter(raw, []byte("\n")) {
		l := strings.TrimRight(string(line), "\r\n")
		if l == "" {
			continue
		}
		if l[0] == ' ' || l[0] == '\t' {
			if len(fields) > 0 {
				fields[len(fields)-1].value += " " + strings.TrimSpace(l)
				continue
			}
			bad++
			continue
		}
		i := strings.IndexByte(l, ':')
		if i <= 0 || strings.ContainsAny(l[:i], " \t") && strings.TrimSpace(l[:i]) == "" {
			bad++
			continue
		}
		name := strings.ToLower(strings.TrimSpace(l[:i]))
		if strings.ContainsAny(name, " \t") {
			bad++
			continue
		}
		fields = append(fields, hfield{name: name, value: strings.TrimSpace(l[i+1:])})
	}
	if bad > 0 {
		// Skipped; a reader that ends the header there instead shows
		// the rest as text, which hides nothing that was not inspected.
		report(problem{fmt.Sprintf("%d malformed header line(s)", bad), true})
	}
	for _, name := range []string{"content-type", "content-transfer-encoding", "content-disposition"} {
		if d := differing(fields, name); d > 1 {
			report(problem{fmt.Sprintf("%d differing %s fields; mailguard read the first, clients may read another", d, name), false})
		}
	}
	return fields
}

// differing counts the distinct values (case and white space aside) of
// the fields called name.
func differing(fields []hfield, name string) int {
	var seen []string
	for _, f := range fields {
		if f.name != name {
			continue
		}
		v := strings.ToLower(strings.Join(strings.Fields(f.value), " "))
		if !slices.Contains(seen, v) {
			seen = append(seen, v)
		}
	}
	return len(seen)
}

// classify reads Content-Type and decides whether the entity is multipart.
//
// A Content-Type that cannot be read fully is a minor defect on a single
// part (its content is inspected whatever its type says) and an ambiguous
// one on a multipart, whose boundary decides what the parts are.
func (e *entity) classify(report func(problem)) {
	ct := e.get("content-type")
	if ct == "" {
		return
	}
	mtype, params, invalid, err := mediatype.Parse(ct)
	if err != nil {
		// Salvage the media type token.
		mtype = strings.ToLower(strings.TrimSpace(strings.SplitN(ct, ";", 2)[0]))
		params = map[string]string{}
	}
	multi := strings.HasPrefix(strings.ToLower(mtype), "multipart/")
	if err != nil {
		report(problem{fmt.Sprintf("unparsable Content-Type %q", clip(ct, 80)), !multi})
	}
	if len(invalid) > 0 {
		report(problem{fmt.Sprintf("Content-Type has malformed parameters %q", invalid), !multi})
	}
	e.ctype = strings.ToLower(mtype)
	e.params = params
	if multi {
		b := params["boundary"]
		if b == "" {
			if err == nil { // else already reported
				report(problem{"multipart without boundary; treated as a single part", false})
			}
			return
		}
		if len(b) > 200 {
			report(problem{"boundary longer than 200 characters", false})
		}
		e.kind = kindMultipart
		e.boundary = b
	}
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
