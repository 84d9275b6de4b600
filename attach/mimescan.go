package attach

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
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
	problems []string
	parts    int
	cut      bool // a limit stopped the scan; the rest was not parsed
}

type frame struct {
	ent      *entity
	boundary string
	closed   bool
}

type scanState int

const (
	stHeader scanState = iota
	stBody
	stIgnore // preamble or epilogue
)

// scanMIME parses the structure of the message in ra[0:size].
func scanMIME(ra io.ReaderAt, size int64, maxParts, maxDepth int) *mimeScan {
	s := &mimeScan{root: &entity{}}
	br := bufio.NewReaderSize(io.NewSectionReader(ra, 0, size), 64<<10)
	var (
		stack     []*frame
		cur       = s.root
		state     = stHeader
		off       int64
		lineStart = true
		prevEOL   int64 // length of the previous line's terminator
		hdr       bytes.Buffer
		hdrOver   bool
	)
	s.parts = 1
	problem := func(format string, a ...any) {
		if len(s.problems) < 50 {
			s.problems = append(s.problems, fmt.Sprintf(format, a...))
		}
	}
	endHeader := func(bodyAt int64) {
		cur.rawHeader = append([]byte(nil), hdr.Bytes()...)
		hdr.Reset()
		hdrOver = false
		cur.fields = parseHeaderBlock(cur.rawHeader, func(p string) { problem("part %s: %s", partName(cur), p) })
		cur.classify(func(p string) { problem("part %s: %s", partName(cur), p) })
		cur.bodyStart = bodyAt
		cur.bodyEnd = bodyAt
		if cur.kind == kindMultipart {
			if len(stack) >= maxDepth {
				problem("part %s: multipart nesting deeper than %d; kept as an opaque part", partName(cur), maxDepth)
				s.cut = true
				cur.kind = kindLeaf
			} else {
				stack = append(stack, &frame{ent: cur, boundary: cur.boundary})
				state = stIgnore
				return
			}
		}
		state = stBody
	}
	for {
		line, err := br.ReadSlice('\n')
		full := err != bufio.ErrBufferFull
		if len(line) > 0 {
			start := off
			off += int64(len(line))
			if lineStart && len(stack) > 0 && len(line) > 2 && line[0] == '-' && line[1] == '-' {
				if i, closing := matchBoundary(stack, line); i >= 0 {
					end := start - prevEOL
					if state == stHeader && cur != nil {
						// A part whose header runs into the next boundary.
						problem("part %s: header not terminated by an empty line", partName(cur))
						cur.rawHeader = append([]byte(nil), hdr.Bytes()...)
						hdr.Reset()
						hdrOver = false
						cur.fields = parseHeaderBlock(cur.rawHeader, func(p string) { problem("part %s: %s", partName(cur), p) })
						cur.classify(func(p string) { problem("part %s: %s", partName(cur), p) })
						cur.kind = kindLeaf
						cur.bodyStart, cur.bodyEnd = start, start
					}
					if cur != nil && state == stBody {
						cur.bodyEnd = max(end, cur.bodyStart)
					}
					for j := len(stack) - 1; j > i; j-- {
						if !stack[j].closed {
							problem("part %s: boundary %q not closed", partName(stack[j].ent), stack[j].boundary)
						}
						stack[j].ent.bodyEnd = end
					}
					stack = stack[:i+1]
					f := stack[i]
					if closing {
						f.closed = true
						f.ent.bodyEnd = end
						stack = stack[:i]
						state, cur = stIgnore, nil
					} else if s.parts >= maxParts {
						problem("more than %d MIME parts; the rest of the message was not parsed", maxParts)
						s.cut = true
						return s
					} else {
						s.parts++
						f.ent.nchild++
						child := &entity{id: childID(f.ent, f.ent.nchild), depth: f.ent.depth + 1}
						f.ent.children = append(f.ent.children, child)
						cur, state = child, stHeader
					}
					lineStart = full
					prevEOL = 0
					if !full {
						// Skip the rest of an overlong boundary line.
						for err == bufio.ErrBufferFull {
							line, err = br.ReadSlice('\n')
							off += int64(len(line))
						}
						lineStart, prevEOL = true, eolLen(line)
					} else {
						prevEOL = eolLen(line)
					}
					if err != nil && err != bufio.ErrBufferFull {
						break
					}
					continue
				}
			}
			if state == stHeader && cur != nil {
				if lineStart && isBlankLine(line) {
					endHeader(off)
				} else if !hdrOver {
					if hdr.Len()+len(line) > maxHeaderBytes {
						problem("part %s: header block larger than %d bytes; truncated", partName(cur), maxHeaderBytes)
						hdrOver = true
					} else {
						hdr.Write(line)
					}
				}
			}
			lineStart = full
			if full {
				prevEOL = eolLen(line)
			} else {
				prevEOL = 0
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			break
		}
	}
	// End of input.
	if cur != nil {
		switch state {
		case stHeader:
			// Header without a body (or a message that is all header).
			endHeader(off)
			if cur.kind == kindMultipart && len(stack) > 0 && stack[len(stack)-1].ent == cur {
				problem("part %s: multipart without any part", partName(cur))
			}
		case stBody:
			cur.bodyEnd = off
		}
	}
	for j := len(stack) - 1; j >= 0; j-- {
		if !stack[j].closed {
			problem("part %s: boundary %q not closed", partName(stack[j].ent), stack[j].boundary)
		}
		stack[j].ent.bodyEnd = off
	}
	return s
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
func parseHeaderBlock(raw []byte, problem func(string)) []hfield {
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
		problem(fmt.Sprintf("%d malformed header line(s)", bad))
	}
	return fields
}

// classify reads Content-Type and decides whether the entity is multipart.
func (e *entity) classify(problem func(string)) {
	ct := e.get("content-type")
	if ct == "" {
		return
	}
	mtype, params, invalid, err := mediatype.Parse(ct)
	if err != nil {
		problem(fmt.Sprintf("unparsable Content-Type %q", clip(ct, 80)))
		// Salvage the media type token.
		mtype = strings.ToLower(strings.TrimSpace(strings.SplitN(ct, ";", 2)[0]))
		params = map[string]string{}
	}
	if len(invalid) > 0 {
		problem(fmt.Sprintf("Content-Type has malformed parameters %q", invalid))
	}
	e.ctype = strings.ToLower(mtype)
	e.params = params
	if strings.HasPrefix(e.ctype, "multipart/") {
		b := params["boundary"]
		if b == "" {
			problem("multipart without boundary; treated as a single part")
			return
		}
		if len(b) > 200 {
			problem("boundary longer than 200 characters")
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
