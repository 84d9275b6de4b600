package tests

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ---- the CAPE emulator as a process ----

// capeEmu is a running `capeemu` (built by TestMain into binDir): the CAPE
// REST API on one port and its control endpoint on another.
type capeEmu struct {
	t        *testing.T
	listen   string // API host:port
	control  string // control host:port
	verdicts string // verdicts file
	args     []string
	cmd      *exec.Cmd
	out      *syncBuffer
	done     chan struct{}
}

// startCapeEmu writes verdicts (sha256 or "*" → verdict object, see
// cmd/capeemu) and starts the emulator with extra flags such as "-delay".
func startCapeEmu(t *testing.T, verdicts map[string]any, args ...string) *capeEmu {
	t.Helper()
	e := &capeEmu{t: t, listen: freePort(t), control: freePort(t), args: args}
	e.verdicts = filepath.Join(t.TempDir(), "verdicts.json")
	b, err := json.Marshal(verdicts)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.verdicts, b, 0o644); err != nil {
		t.Fatal(err)
	}
	e.start()
	t.Cleanup(func() {
		e.stop()
		if t.Failed() {
			t.Logf("capeemu output:\n%s", tail(e.out.String(), 20))
		}
	})
	return e
}

func (e *capeEmu) start() {
	e.t.Helper()
	e.out = &syncBuffer{}
	args := append([]string{"-listen", e.listen, "-control", e.control, "-verdicts", e.verdicts}, e.args...)
	e.cmd = exec.Command(filepath.Join(binDir, "capeemu"), args...)
	e.cmd.Stdout, e.cmd.Stderr = e.out, e.out
	if err := e.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.done = make(chan struct{})
	go func() { e.cmd.Wait(); close(e.done) }()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(e.out.String(), "capeemu: control") {
		select {
		case <-e.done:
			e.t.Fatalf("capeemu exited at start:\n%s", e.out.String())
		default:
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("capeemu did not start:\n%s", e.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *capeEmu) stop() {
	if e.cmd == nil || e.cmd.Process == nil {
		return
	}
	select {
	case <-e.done:
		return
	default:
	}
	e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.done:
	case <-time.After(10 * time.Second):
		e.cmd.Process.Kill()
		<-e.done
	}
}

// url is the API base for the policy's sandbox.url.
func (e *capeEmu) url() string { return "http://" + e.listen + "/apiv2/" }

// emuCounters is what GET /counters answers.
type emuCounters struct {
	Requests    map[string]int `json:"requests"`
	Submissions map[string]int `json:"submissions"`
	Tasks       int            `json:"tasks"`
}

// total is the number of uploads of every content together.
func (c emuCounters) total() int {
	n := 0
	for _, v := range c.Submissions {
		n += v
	}
	return n
}

// polls is the number of requests about tasks (status, view, report).
func (c emuCounters) polls() int {
	n := 0
	for route, v := range c.Requests {
		if strings.HasPrefix(route, "tasks/") && route != "tasks/create/file" {
			n += v
		}
	}
	return n
}

// statusPolls is the number of requests about submitted tasks.
func (c emuCounters) statusPolls() int {
	return c.Requests["tasks/status"] + c.Requests["tasks/view"] + c.Requests["tasks/get/report"]
}

func (e *capeEmu) counters() emuCounters {
	e.t.Helper()
	resp, err := http.Get("http://" + e.control + "/counters")
	if err != nil {
		e.t.Fatalf("capeemu counters: %v", err)
	}
	defer resp.Body.Close()
	var c emuCounters
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		e.t.Fatalf("capeemu counters: %v", err)
	}
	return c
}

// knob posts to the control endpoint, e.g. knob("/down?mode=refuse", "").
func (e *capeEmu) knob(path, body string) {
	e.t.Helper()
	resp, err := http.Post("http://"+e.control+path, "application/json", strings.NewReader(body))
	if err != nil {
		e.t.Fatalf("capeemu %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		e.t.Fatalf("capeemu %s: %s %s", path, resp.Status, b)
	}
}

// waitCounters waits until ok(counters) holds and returns those counters.
func (e *capeEmu) waitCounters(what string, ok func(emuCounters) bool, d time.Duration) emuCounters {
	e.t.Helper()
	deadline := time.Now().Add(d)
	for {
		c := e.counters()
		if ok(c) {
			return c
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("capeemu: %s not seen within %s; counters %+v", what, d, c)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sandboxBlock is the policy block for the emulator: fast polling (the
// production default waits a minute before the first poll) and a request
// budget that never throttles a test. extra lines go inside the block.
func sandboxBlock(e *capeEmu, extra ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "sandbox \"cape\" {\n  url = %q\n  poll_interval = \"1s\"\n  requests_per_minute = 600\n", e.url())
	for _, l := range extra {
		b.WriteString("  " + l + "\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// ---- messages with attachments ----

// sum is the lowercase hex SHA-256 of b.
func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// fakeExe is a small Windows executable nobody has seen: an MZ header with
// a PE signature and seed-specific bytes, so each seed has its own hash.
func fakeExe(seed string) []byte {
	b := make([]byte, 1024)
	copy(b, "MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff")
	b[0x3c] = 0x80 // e_lfanew
	copy(b[0x40:], "This program cannot be run in DOS mode.\r\r\n$")
	copy(b[0x80:], "PE\x00\x00\x4c\x01\x03\x00")
	copy(b[0x200:], "mailguard e2e sample "+seed)
	return b
}

// attachmentMessage is a multipart message with a text part and one
// base64 attachment, CRLF line endings.
func attachmentMessage(subject, msgID, name string, content []byte) string {
	var b strings.Builder
	b.WriteString("From: Mallory Partner <mallory@partner.example>\r\nTo: Bob <bob@corp.example>\r\n")
	b.WriteString("Subject: " + subject + "\r\nDate: Mon, 23 Nov 2026 10:00:00 +0900\r\n")
	b.WriteString("Message-ID: <" + msgID + ">\r\nMIME-Version: 1.0\r\n")
	b.WriteString("Content-Type: multipart/mixed; boundary=\"=_mg_e2e\"\r\n\r\n")
	b.WriteString("This is a multi-part message in MIME format.\r\n--=_mg_e2e\r\n")
	b.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	b.WriteString("Please run the attached tool before the meeting.\r\n.a line with a leading dot\r\n  indented  \r\n\r\n")
	b.WriteString("--=_mg_e2e\r\nContent-Type: application/octet-stream; name=\"" + name + "\"\r\n")
	b.WriteString("Content-Disposition: attachment; filename=\"" + name + "\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	enc := base64.StdEncoding.EncodeToString(content)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n--=_mg_e2e--\r\n")
	return b.String()
}

// ---- the review CLI ----

// listEntry is one element of `quarantine list --json`.
type listEntry struct {
	ID         string     `json:"id"`
	MessageID  string     `json:"message_id"`
	State      string     `json:"state"`
	From       string     `json:"from"`
	To         []string   `json:"to"`
	Subject    string     `json:"subject"`
	ReceivedAt time.Time  `json:"received_at"`
	Action     string     `json:"action"`
	Reasons    []string   `json:"reasons"`
	HoldUntil  *time.Time `json:"hold_until"`
	Waiting    string     `json:"waiting"`
	// SandboxPending are the files a held message waits for.
	SandboxPending []pendingEntry `json:"sandbox_pending"`
	// Raw keeps every field, for failure messages.
	Raw map[string]any `json:"-"`
}

// pendingEntry is one element of a held message's sandbox_pending.
type pendingEntry struct {
	SHA256      string     `json:"sha256"`
	TaskID      string     `json:"task_id"`
	State       string     `json:"state"` // queued, submitted
	SubmittedAt *time.Time `json:"submitted_at"`
	LastError   string     `json:"last_error"`
}

// pending returns the held message's pending task for sha, if listed.
func (e listEntry) pending(sha string) (pendingEntry, bool) {
	for _, p := range e.SandboxPending {
		if p.SHA256 == sha {
			return p, true
		}
	}
	return pendingEntry{}, false
}

// list runs `quarantine list --state STATE --json`.
func (g *gateway) list(t *testing.T, state string) []listEntry {
	t.Helper()
	out, err := g.mg("quarantine", "list", "--state", state, "--json")
	if err != nil {
		t.Fatalf("quarantine list: %v", err)
	}
	var entries []listEntry
	var raw []map[string]any
	if err := json.Unmarshal([]byte(out), &entries); err != nil {
		t.Fatalf("quarantine list --json: %v\n%s", err, out)
	}
	json.Unmarshal([]byte(out), &raw)
	for i := range entries {
		entries[i].Raw = raw[i]
	}
	return entries
}

// entry returns the listed message id in state, if any.
func (g *gateway) entry(t *testing.T, state, id string) (listEntry, bool) {
	t.Helper()
	for _, e := range g.list(t, state) {
		if e.ID == id {
			return e, true
		}
	}
	return listEntry{}, false
}

// waitState waits until message id is in state (as `quarantine list
// --state all` says) and returns its entry.
func (g *gateway) waitState(t *testing.T, id, state string, d time.Duration) listEntry {
	t.Helper()
	deadline := time.Now().Add(d)
	var last listEntry
	for {
		if e, ok := g.entry(t, "all", id); ok {
			last = e
			if e.State == state {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("message %s is %q after %s, want %q (%+v)", id, last.State, d, state, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// decision runs `quarantine show --json` and decodes the decision.
func (g *gateway) decision(t *testing.T, id string) map[string]any {
	t.Helper()
	out, err := g.mg("quarantine", "show", "--json", id)
	if err != nil {
		t.Fatalf("quarantine show: %v", err)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("quarantine show --json: %v\n%s", err, out)
	}
	return doc
}

// sendMessage writes msg to a file and sends it with swaks, requiring 250;
// it returns the mailguard ID.
func sendMessage(t *testing.T, addr, msg string, extra ...string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "m.eml")
	if err := os.WriteFile(file, []byte(msg), 0o644); err != nil {
		t.Fatal(err)
	}
	out := send(t, addr, "mallory@partner.example", "bob@corp.example", file, extra...)
	id := queuedID(out)
	if id == "" {
		t.Fatalf("no queued ID in:\n%s", out)
	}
	return id
}

// ---- smtp-sink dumps ----

// message returns the dump of the message with X-Mailguard-Id id, if
// it arrived.
func (s *sink) message(id string) (string, bool) {
	for _, m := range s.messages() {
		if strings.Contains(m, "\nX-Mailguard-Id: "+id+"\n") {
			return m, true
		}
	}
	return "", false
}

// waitMessage waits for the message with X-Mailguard-Id id.
func (s *sink) waitMessage(t *testing.T, id string, d time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if m, ok := s.message(id); ok {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("message %s did not reach the downstream within %s", id, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var sinkEnvelopeField = regexp.MustCompile(`^X-(Client-Addr|Client-Proto|Helo-Args|Mail-Args|Rcpt-Args): `)

// splitSinkDump splits an smtp-sink dump into the header fields mailguard
// prepended (unfolded, "Name: value" each) and the content that followed
// them, with the LF line endings smtp-sink writes. smtp-sink's own
// envelope and Received fields are dropped.
func splitSinkDump(t *testing.T, dump string) (prepended []string, rest string) {
	t.Helper()
	lines := strings.SplitAfter(dump, "\n")
	i := 0
	for i < len(lines) && sinkEnvelopeField.MatchString(lines[i]) {
		i++
	}
	// smtp-sink's Received field, folded over continuation lines.
	if i < len(lines) && strings.HasPrefix(lines[i], "Received: ") && strings.Contains(strings.Join(lines[i:min(i+3, len(lines))], ""), "(smtp-sink)") {
		i++
		for i < len(lines) && (strings.HasPrefix(lines[i], "\t") || strings.HasPrefix(lines[i], " ")) {
			i++
		}
	}
	// mailguard's fields end with X-Mailguard-Reasons (and its folds).
	for i < len(lines) {
		l := lines[i]
		i++
		if strings.HasPrefix(l, "\t") || strings.HasPrefix(l, " ") {
			if len(prepended) == 0 {
				t.Fatalf("continuation line before any field in dump:\n%s", dump)
			}
			prepended[len(prepended)-1] += " " + strings.TrimSpace(l)
			continue
		}
		if len(prepended) > 0 && strings.HasPrefix(prepended[len(prepended)-1], "X-Mailguard-Reasons:") {
			i--
			break
		}
		prepended = append(prepended, strings.TrimRight(l, "\n"))
	}
	// smtp-sink writes the content without the SMTP dot-stuffing, with LF
	// line endings, and one more LF after it.
	rest = strings.Join(lines[i:], "")
	if !strings.HasSuffix(rest, "\n\n") {
		t.Fatalf("smtp-sink dump does not end with its extra empty line:\n%q", dump)
	}
	return prepended, rest[:len(rest)-1]
}

// fieldNames returns the names of header fields given as "Name: value".
func fieldNames(fields []string) []string {
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i], _, _ = strings.Cut(f, ":")
	}
	return out
}

// checkByteForByte requires that the delivered dump carries exactly what
// mailguard stored for id (which the caller checked against what was sent)
// after mailguard's prepended fields, and returns those fields.
func checkByteForByte(t *testing.T, g *gateway, id, dump string) []string {
	t.Helper()
	stored, err := g.mg("quarantine", "export", id)
	if err != nil {
		t.Fatalf("quarantine export %s: %v", id, err)
	}
	prepended, rest := splitSinkDump(t, dump)
	if want := strings.ReplaceAll(stored, "\r\n", "\n"); rest != want {
		t.Errorf("delivered content of %s differs from what was stored\n--- got\n%q\n--- want\n%q", id, rest, want)
	}
	if got, want := strings.Join(fieldNames(prepended), ","), "Received,X-Mailguard-Id,X-Mailguard-Action,X-Mailguard-Reasons"; got != want {
		t.Errorf("prepended fields of %s = %s, want %s:\n%s", id, got, want, strings.Join(prepended, "\n"))
	}
	return prepended
}

// checkStored requires that mailguard stored exactly the sent bytes (plus
// the empty line swaks adds before the final dot).
func checkStored(t *testing.T, g *gateway, id, sent string) {
	t.Helper()
	stored, err := g.mg("quarantine", "export", id)
	if err != nil {
		t.Fatalf("quarantine export %s: %v", id, err)
	}
	if !bytes.Equal([]byte(stored), []byte(sent+"\r\n")) {
		t.Errorf("stored bytes of %s differ from what was sent:\n%q", id, stored)
	}
}

// field returns the value of a "Name: value" entry of fields.
func field(fields []string, name string) string {
	for _, f := range fields {
		if n, v, ok := strings.Cut(f, ":"); ok && strings.EqualFold(n, name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// eventTime returns the time of the first event of that kind for id.
func (g *gateway) eventTime(t *testing.T, id, kind string) time.Time {
	t.Helper()
	for _, l := range g.events() {
		var e struct {
			TS    time.Time `json:"ts"`
			Event string    `json:"event"`
			MsgID string    `json:"msg_id"`
		}
		if json.Unmarshal([]byte(l), &e) == nil && e.MsgID == id && e.Event == kind {
			return e.TS
		}
	}
	t.Fatalf("no %s event for %s", kind, id)
	return time.Time{}
}

// hasEvent reports whether the event log has an event of that kind for id.
func (g *gateway) hasEvent(id, kind string) bool {
	for _, l := range g.events() {
		var e struct {
			Event string `json:"event"`
			MsgID string `json:"msg_id"`
		}
		if json.Unmarshal([]byte(l), &e) == nil && e.MsgID == id && e.Event == kind {
			return true
		}
	}
	return false
}
