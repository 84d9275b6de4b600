package attach

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/mailguard/mailguard/reason"
)

// walkMessage scans one message (the top level, or an attached one whose
// File is parent), then decodes its bodies and attachments. depth is the
// Depth its attachments get.
func (w *walker) walkMessage(ra io.ReaderAt, size int64, parent *File, depth int) error {
	budget := w.lim.MaxMIMEParts - w.mimeParts
	if budget < 1 {
		budget = 1
	}
	sc := scanMIME(ra, size, budget, w.lim.MaxMIMEDepth)
	w.mimeParts += sc.parts
	if sc.cut {
		w.res.Complete = false
	}
	w.defects(parent, "", sc.problems)
	if parent == nil {
		w.res.Header = decodeHeader(sc.root)
		w.addText(w.res.Header.Subject)
		w.scanSubject(w.res.Header.Subject)
	}
	var leaves []*entity
	collectLeaves(sc.root, &leaves)
	var attachments []*entity
	for _, e := range leaves {
		if isBody(e) {
			if err := w.guard(func() error { return w.body(ra, e, parent) }); err != nil {
				return err
			}
			continue
		}
		attachments = append(attachments, e)
	}
	for _, e := range attachments {
		if w.stopped() {
			return nil
		}
		if err := w.guard(func() error { return w.attachment(ra, e, parent) }); err != nil {
			return err
		}
	}
	return nil
}

func collectLeaves(e *entity, out *[]*entity) {
	if e.kind == kindMultipart {
		for _, c := range e.children {
			collectLeaves(c, out)
		}
		return
	}
	*out = append(*out, e)
}

// isBody reports text parts meant to be read as the message: text/plain
// or text/html (or no Content-Type), not marked as an attachment and
// without a file name.
func isBody(e *entity) bool {
	switch e.ctype {
	case "", "text/plain", "text/html":
	default:
		return false
	}
	return disposition(e) != "attachment" && partFilename(e) == ""
}

// partReader returns the transfer-decoded content of a leaf.
func partReader(ra io.ReaderAt, e *entity) (io.Reader, func() []problem) {
	n := max(0, e.bodyEnd-e.bodyStart)
	sec := io.NewSectionReader(ra, e.bodyStart, n)
	// Buffered: the message may be a file, and decoders read in small steps.
	return decodeTransfer(e.get("content-transfer-encoding"), bufio.NewReaderSize(sec, readBufSize(n)))
}

// readBufSize is the buffer for reading n bytes of a message: 64 KiB, or
// less when n is smaller (most parts are: a 64 KiB buffer per part made
// most of the garbage of small messages).
func readBufSize(n int64) int {
	return int(min(max(n, 16), 64<<10))
}

// attachment stores one non-body leaf as a file and inspects it.
func (w *walker) attachment(ra io.ReaderAt, e *entity, parent *File) error {
	name := partFilename(e)
	display := ""
	if name == "" {
		display = "part" + partName(e)
		if ext := extForType(e.ctype); ext != "" {
			display += "." + ext
		}
	}
	r, report := partReader(ra, e)
	hint := e.bodyEnd - e.bodyStart
	if strings.EqualFold(strings.TrimSpace(e.get("content-transfer-encoding")), "base64") {
		hint = hint * 3 / 4
	}
	f, err := w.addFile(fileSpec{parent: parent, name: name, display: display, hint: hint + 512, ctype: e.ctype}, r)
	if err != nil || f == nil {
		return err
	}
	for _, p := range report() {
		f.addDefect("part "+partName(e)+": "+p.text, p.minor)
	}
	return w.inspect(f)
}

// extForType names unnamed parts so that the tree stays readable.
func extForType(ct string) string {
	switch ct {
	case "message/rfc822", "message/global":
		return "eml"
	case "application/ms-tnef", "application/vnd.ms-tnef":
		return "dat"
	}
	return ""
}

// body decodes one body part: it becomes a Result.Bodies file (UTF-8),
// feeds Result.Text and the password scan, is checked for HTML smuggling
// and for uuencoded files.
func (w *walker) body(ra io.ReaderAt, e *entity, parent *File) error {
	r, report := partReader(ra, e)
	limit := min(int64(w.lim.MaxTextBytes)*4, w.lim.MaxTotalBytes-w.nbytes)
	if limit <= 0 {
		w.bomb(nil, fmt.Sprintf("more than %d bytes extracted from the message; the rest was not inspected", w.lim.MaxTotalBytes))
		return nil
	}
	hint := e.bodyEnd - e.bodyStart // the decoded body is not longer
	raw, _ := readAllHint(io.LimitReader(r, limit+1), min(hint, limit)+1)
	cut := int64(len(raw)) > limit
	if cut {
		raw = raw[:limit]
	}
	if cs := strings.ToLower(e.params["charset"]); !strings.HasPrefix(cs, "utf-16") && !strings.HasPrefix(cs, "utf-32") &&
		!strings.HasPrefix(cs, "ucs-") && binaryBody(raw) {
		// Declared as text but a program, archive or document: no
		// client shows it as text that could be read, and a client that
		// lists it as an attachment hands it to whatever opens it. It is
		// inspected as the file it is.
		f, err := w.addFile(fileSpec{parent: parent, display: "part" + partName(e) + ".bin", hint: int64(len(raw))}, bytes.NewReader(raw))
		if err != nil || f == nil {
			return err
		}
		for _, p := range report() {
			f.addDefect("part "+partName(e)+": "+p.text, p.minor)
		}
		return w.inspect(f)
	}
	ctype := e.ctype
	if ctype == "" {
		ctype = "text/plain"
	}
	text := toUTF8(e.params["charset"], raw)
	where := "body " + partName(e)
	if parent != nil {
		where = parent.Path + " body " + partName(e)
	}
	data := raw
	if text != string(raw) { // converted to UTF-8 (the comparison does not copy)
		data = []byte(text)
	}
	f := &File{Path: where, Type: ctype, PasswordSource: SourceNone, Findings: []reason.Finding{}, data: data}
	f.Size = int64(len(f.data))
	f.SHA256 = sha256Hex(f.data)
	w.nbytes += f.Size
	w.res.Bodies = append(w.res.Bodies, f)
	w.defects(parent, where+": ", report())
	if cut {
		w.msgFinding(parent, reason.MalformedMIME, fmt.Sprintf("%s: body longer than %d bytes; only the start was analysed", where, limit))
	}
	plain := text
	if ctype == "text/html" {
		if ind := smugglingIndicators([]byte(text)); len(ind) > 0 {
			w.msgFinding(parent, reason.HTMLSmuggling, where+": "+strings.Join(ind, ", "))
		}
		plain = htmlToText(text)
	}
	w.addText(plain)
	w.scanText(plain)
	if ctype == "text/plain" && bytes.Contains(raw, []byte("begin ")) {
		return w.uuFiles(raw, parent)
	}
	return nil
}

// binaryBody reports decoded body bytes that are not text: a NUL in the
// first 4 KiB (no 8-bit text charset has one; the caller leaves UTF-16
// and UTF-32 out), or the start of a PDF or RTF document.
func binaryBody(b []byte) bool {
	head := b[:min(len(b), 4096)]
	return bytes.IndexByte(head, 0) >= 0 || bytes.HasPrefix(b, []byte("%PDF-")) || bytes.HasPrefix(b, []byte("{\\rtf"))
}

// readAllHint reads r to its end into a buffer of size bytes to start
// with (io.ReadAll starts at 512 and copies at each step of growth).
func readAllHint(r io.Reader, size int64) ([]byte, error) {
	var b bytes.Buffer
	b.Grow(int(max(size, 0)) + bytes.MinRead)
	_, err := b.ReadFrom(r)
	return b.Bytes(), err
}

// defects adds the problems as malformed_mime findings of the message (top
// level) or of the attached message's file: one finding for the ambiguous
// ones and one, marked minor, for the rest.
func (w *walker) defects(parent *File, prefix string, ps []problem) {
	for _, minor := range []bool{false, true} {
		var texts []string
		for _, p := range ps {
			if p.minor == minor {
				texts = append(texts, prefix+p.text)
			}
		}
		if len(texts) == 0 {
			continue
		}
		detail := clip(strings.Join(texts, "; "), 2000)
		if parent != nil {
			parent.addDefect(detail, minor)
			continue
		}
		w.res.Findings = append(w.res.Findings, reason.Finding{Tag: reason.MalformedMIME, Detail: detail, Minor: minor})
	}
}

// msgFinding adds a finding to the message (top level) or to the attached
// message's file.
func (w *walker) msgFinding(parent *File, tag reason.Tag, detail string) {
	if parent != nil {
		parent.addFinding(tag, clip(detail, 2000))
		return
	}
	w.res.Findings = append(w.res.Findings, reason.Finding{Tag: tag, Detail: clip(detail, 2000)})
}

// uuFiles extracts "begin 644 name" blocks of a text body as files.
func (w *walker) uuFiles(raw []byte, parent *File) error {
	for _, b := range findUUBlocks(raw, 100) {
		u := newUUReader(bytes.NewReader(raw[b.start:b.end]))
		f, err := w.addFile(fileSpec{parent: parent, name: b.name}, u)
		if err != nil || f == nil {
			return err
		}
		if u.bad > 0 {
			f.addFinding(reason.MalformedMIME, "uuencoded block with malformed lines skipped")
		}
		if err := w.inspect(f); err != nil {
			return err
		}
	}
	return nil
}

// addText appends NFKC-normalised text to Result.Text within its bound.
func (w *walker) addText(s string) {
	room := w.lim.MaxTextBytes - w.text.Len()
	if room <= 0 || s == "" {
		return
	}
	s = nfkc(s)
	if len(s) > room {
		s = strings.ToValidUTF8(s[:room], "")
	}
	if w.text.Len() > 0 {
		w.text.WriteByte('\n')
	}
	w.text.WriteString(s)
}

func (w *walker) finishText() {
	w.res.Text = w.text.String()
	w.res.Passwords = append([]string(nil), w.bodyPW...)
	w.res.PasswordAnnounced = w.announced
}
