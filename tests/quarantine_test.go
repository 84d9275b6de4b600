package tests

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// quarantineRules make messages in each state by subject.
const quarantineRules = `
rule "q" {
  when   = matches("QUARANTINE", subject)
  action = "quarantine"
}
rule "h" {
  when   = matches("HOLD ME", subject)
  action = "hold"
}
rule "r" {
  when   = matches("REJECT ME", subject)
  action = "reject"
  reason = "blocked_sender"
}
`

// ---- helpers of the quarantine, hunt, event and retention tests ----

// sendExact speaks SMTP itself so that the bytes stored are exactly body
// (swaks adds a line): it dot-stuffs, sends, and returns the mailguard ID
// from the 250 reply, or "" and the reply when the message was refused.
func sendExact(t *testing.T, addr, from string, rcpts []string, body string) (string, string) {
	t.Helper()
	c := dialRaw(t, addr)
	c.reply()
	c.cmd("EHLO client.partner.example")
	if r := c.cmd("MAIL FROM:<" + from + "> BODY=8BITMIME"); !strings.HasPrefix(r, "250") {
		t.Fatalf("MAIL: %s", r)
	}
	for _, rc := range rcpts {
		if r := c.cmd("RCPT TO:<" + rc + ">"); !strings.HasPrefix(r, "250") {
			t.Fatalf("RCPT %s: %s", rc, r)
		}
	}
	if r := c.cmd("DATA"); !strings.HasPrefix(r, "354") {
		t.Fatalf("DATA: %s", r)
	}
	if !strings.HasSuffix(body, "\r\n") {
		body += "\r\n" // DATA ends with CRLF.CRLF: the stored message gains the CRLF
	}
	var b strings.Builder
	for _, line := range strings.SplitAfter(body, "\r\n") {
		if strings.HasPrefix(line, ".") {
			b.WriteString(".")
		}
		b.WriteString(line)
	}
	c.write(b.String() + ".\r\n")
	r := c.reply()
	c.cmd("QUIT")
	return queuedID(r), r
}

// crlf turns a readable message into wire form.
func crlf(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
}

// mgIn runs a mailguard command with stdin, returning stdout, stderr and
// the exit status.
func (g *gateway) mgIn(stdin string, args ...string) (string, string, int) {
	g.t.Helper()
	cmd := exec.Command(mailguard, append(args, "--config", g.policy)...)
	cmd.Dir = g.dir
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		g.t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// mgJSON runs a command that prints JSON and decodes it into v.
func (g *gateway) mgJSON(v any, args ...string) {
	g.t.Helper()
	out, err := g.mg(args...)
	if err != nil {
		g.t.Fatalf("mailguard %v: %v", args, err)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		g.t.Fatalf("mailguard %v: %v\n%s", args, err, out)
	}
}

// qListed is the part of a list element the tests read.
type qListed struct {
	ID             string   `json:"id"`
	State          string   `json:"state"`
	Subject        string   `json:"subject"`
	Reasons        []string `json:"reasons"`
	WaitingSeconds int64    `json:"waiting_seconds"`
	SandboxPending []struct {
		Path, SHA256, State string
		TaskID              string `json:"task_id"`
	} `json:"sandbox_pending"`
}

func (g *gateway) qList(args ...string) map[string]qListed {
	g.t.Helper()
	var items []qListed
	g.mgJSON(&items, append([]string{"quarantine", "list", "--json"}, args...)...)
	out := map[string]qListed{}
	for _, it := range items {
		out[it.ID] = it
	}
	return out
}

// waitState waits until message id is in state.
func (g *gateway) qWaitState(id, state string, d time.Duration) {
	g.t.Helper()
	deadline := time.Now().Add(d)
	for {
		if it, ok := g.qList("--state", "all")[id]; ok && it.State == state {
			return
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("%s did not reach state %s within %s (list: %+v)", id, state, d, g.qList("--state", "all")[id])
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// startCape runs the CAPE emulator with verdicts by SHA-256 ("*" for the
// rest) and returns its API URL.
func qStartCape(t *testing.T, verdicts map[string]any) string {
	t.Helper()
	dir := t.TempDir()
	vf := filepath.Join(dir, "verdicts.json")
	b, _ := json.Marshal(verdicts)
	os.WriteFile(vf, b, 0o644)
	cmd := exec.Command(filepath.Join(binDir, "capeemu"), "-listen", freePort(t), "-verdicts", vf)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if !strings.HasPrefix(line, "capeemu: api ") {
		t.Fatalf("capeemu: %q %v", line, err)
	}
	return strings.TrimSpace(strings.TrimPrefix(line, "capeemu: api "))
}

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// withAttachment builds a message with one base64 attachment.
func withAttachment(subject, name, content string) string {
	return crlf(fmt.Sprintf(`From: Alice Partner <alice@partner.example>
To: bob@corp.example
Subject: %s
Message-ID: <%s@partner.example>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b1"

--b1
Content-Type: text/plain; charset=utf-8

please see the attachment
--b1
Content-Type: application/octet-stream; name="%s"
Content-Disposition: attachment; filename="%s"
Content-Transfer-Encoding: base64

%s
--b1--
`, subject, sha256Hex(subject)[:12], name, name, base64Lines(content)))
}

// base64Lines encodes s as MIME wants it: 76 characters a line.
func base64Lines(s string) string {
	enc := base64.StdEncoding.EncodeToString([]byte(s))
	var b strings.Builder
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\n")
		enc = enc[76:]
	}
	b.WriteString(enc)
	return b.String()
}

func osUser(t *testing.T) string {
	t.Helper()
	if s := os.Getenv("SUDO_USER"); s != "" {
		return s
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return u.Username
}

// ---- tests ----

// japaneseSubjects are the same subject in the four forms Japanese mail
// uses; every one must list and show as the same decoded text.
var japaneseSubjects = []struct{ tag, raw string }{
	{"2047", "QUARANTINE [2047] =?ISO-2022-JP?B?GyRCOCtAUT1xGyhC?="},
	{"iso2022", "QUARANTINE [iso2022] \x1b$B8+@Q=q\x1b(B"},
	{"sjis", "QUARANTINE [sjis] \x8c\xa9\x90\xcf\x8f\x91"},
	{"utf8", "QUARANTINE [utf8] 見積書"},
}

// TestQuarantineList: filters, the JSON contract, Japanese subjects in
// every encoding, and held mail with the sandbox tasks it waits for.
func TestQuarantineList(t *testing.T) {
	need(t, "smtp-sink")
	s := startSink(t, "")
	pending := "a sample the sandbox never finishes"
	cape := qStartCape(t, map[string]any{"*": map[string]any{"profile": "clean"},
		sha256Hex(pending): map[string]any{"never_finish": true}})
	g := startGateway(t, policyVars{Inbound: s.addr, Extra: quarantineRules + fmt.Sprintf(`
sandbox "cape" {
  url           = %q
  submit        = ["all"]
  poll_interval = "1s"
}
`, cape)})
	ids := map[string]string{}
	for _, js := range japaneseSubjects {
		id, r := sendExact(t, g.addr, "alice@partner.example", []string{"bob@corp.example"},
			crlf("From: alice@partner.example\nTo: bob@corp.example\nSubject: "+js.raw+"\n\nbody\n"))
		if id == "" {
			t.Fatalf("%s: %s", js.tag, r)
		}
		ids[js.tag] = id
	}
	ids["hold"], _ = sendExact(t, g.addr, "carol@other.example", []string{"dave@corp.example"},
		crlf("From: carol@other.example\nSubject: HOLD ME\n\nbody\n"))
	ids["sandbox"], _ = sendExact(t, g.addr, "alice@partner.example", []string{"bob@corp.example"},
		withAttachment("for the sandbox", "tool.bin", pending))
	ids["deliver"], _ = sendExact(t, g.addr, "alice@partner.example", []string{"erin@corp.example"},
		crlf("From: alice@partner.example\nSubject: hello\n\nbody\n"))
	if id, r := sendExact(t, g.addr, "alice@partner.example", []string{"bob@corp.example"},
		crlf("Subject: REJECT ME\n\nx\n")); id != "" || !strings.HasPrefix(r, "550") {
		t.Fatalf("REJECT ME: %q %s", id, r)
	}
	g.qWaitState(ids["deliver"], "delivered", 30*time.Second)

	// Default: held and quarantined only.
	review := g.qList()
	want := []string{ids["2047"], ids["iso2022"], ids["sjis"], ids["utf8"], ids["hold"], ids["sandbox"]}
	if got := mapsKeys(review); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
		t.Errorf("default list = %v, want %v", got, want)
	}
	for _, js := range japaneseSubjects {
		wantSubj := "QUARANTINE [" + js.tag + "] 見積書"
		if got := review[ids[js.tag]].Subject; got != wantSubj {
			t.Errorf("%s subject in JSON = %q, want %q", js.tag, got, wantSubj)
		}
	}
	checkListFilters(t, g, ids)
	checkListContract(t, g)
	checkTableSubjects(t, g, ids)
	checkHeldPending(t, g, ids, sha256Hex(pending))
}

// mapsKeys returns the keys of m, sorted.
func mapsKeys[V any](m map[string]V) []string {
	out := []string{}
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func checkListFilters(t *testing.T, g *gateway, ids map[string]string) {
	t.Helper()
	check := func(want []string, args ...string) {
		t.Helper()
		got := mapsKeys(g.qList(args...))
		if want == nil {
			want = []string{}
		}
		if !slices.Equal(got, slices.Sorted(slices.Values(want))) {
			t.Errorf("list %v = %v, want %v", args, got, want)
		}
	}
	jp := []string{ids["2047"], ids["iso2022"], ids["sjis"], ids["utf8"]}
	rejected := mapsKeys(g.qList("--state", "rejected"))
	if len(rejected) != 1 {
		t.Fatalf("rejected messages: %v", rejected)
	}
	check(jp, "--state", "quarantined")
	check([]string{ids["hold"], ids["sandbox"]}, "--state", "held")
	check([]string{ids["deliver"]}, "--state", "delivered")
	check(append(slices.Clone(jp), ids["hold"], ids["sandbox"], ids["deliver"], rejected[0]), "--state", "all", "--rcpt", "corp.example")
	check([]string{ids["hold"]}, "--from", "CAROL@other")
	check([]string{ids["hold"]}, "--state", "all", "--rcpt", "dave@")
	check(rejected, "--state", "all", "--reason", "blocked_sender")
	check(nil, "--reason", "blocked_sender")
	check(nil, "--since", "1ms")
	check(append(slices.Clone(jp), ids["hold"], ids["sandbox"]), "--since", "1h")
	if _, errOut, code := g.mgIn("", "quarantine", "list", "--state", "hedl"); code != 2 || !strings.Contains(errOut, "hedl") {
		t.Errorf("list --state hedl: exit %d, %s", code, errOut)
	}
}

// checkListContract checks the DESIGN.md contract fields and their types
// on every element, whatever its state.
func checkListContract(t *testing.T, g *gateway) {
	t.Helper()
	out, err := g.mg("quarantine", "list", "--state", "all", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var items []map[string]any
	if err := json.Unmarshal([]byte(out), &items); err != nil {
		t.Fatal(err)
	}
	if len(items) < 8 {
		t.Fatalf("%d messages qListed, want at least 8", len(items))
	}
	isStrings := func(v any) bool {
		l, ok := v.([]any)
		for _, x := range l {
			if _, s := x.(string); !s {
				return false
			}
		}
		return ok
	}
	for _, it := range items {
		for _, k := range []string{"id", "message_id", "state", "from", "subject", "action"} {
			if _, ok := it[k].(string); !ok {
				t.Errorf("%v: %s is %T, want a string", it["id"], k, it[k])
			}
		}
		for _, k := range []string{"to", "reasons"} {
			if !isStrings(it[k]) {
				t.Errorf("%v: %s is %#v, want a list of strings", it["id"], k, it[k])
			}
		}
		ra, _ := it["received_at"].(string)
		if _, err := time.Parse(time.RFC3339, ra); err != nil {
			t.Errorf("%v: received_at %q is not RFC 3339", it["id"], ra)
		}
		if it["id"] == "" || it["state"] == "" || strings.ContainsAny(fmt.Sprint(it["message_id"]), "<>") {
			t.Errorf("bad element %v", it)
		}
	}
}

// checkTableSubjects: the table shows the decoded subjects and aligns its
// columns by display width (a Japanese character takes two columns).
func checkTableSubjects(t *testing.T, g *gateway, ids map[string]string) {
	t.Helper()
	out, err := g.mg("quarantine", "list", "--state", "quarantined")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	col := -1
	for _, l := range lines {
		i := strings.Index(l, "REASONS")
		if i < 0 {
			i = strings.Index(l, "clean")
		}
		if i < 0 {
			t.Fatalf("no reasons column in %q", l)
		}
		w := displayColumns(l[:i])
		if col >= 0 && w != col {
			t.Errorf("reasons column at %d, want %d:\n%s", w, col, out)
		}
		col = w
	}
	for _, js := range japaneseSubjects {
		if !regexp.MustCompile(ids[js.tag] + `.*QUARANTINE \[` + js.tag + `\] 見積書`).MatchString(out) {
			t.Errorf("table lacks the decoded %s subject:\n%s", js.tag, out)
		}
	}
}

// displayColumns counts terminal columns (CJK ideographs are wide).
func displayColumns(s string) int {
	n := 0
	for _, r := range s {
		if r >= 0x1100 && (r <= 0x115f || r >= 0x2e80 && r <= 0xa4cf || r >= 0xac00 && r <= 0xd7a3 ||
			r >= 0xf900 && r <= 0xfaff || r >= 0xfe30 && r <= 0xfe4f || r >= 0xff00 && r <= 0xff60 || r >= 0xffe0 && r <= 0xffe6) {
			n += 2
		} else {
			n++
		}
	}
	return n
}

// checkHeldPending: --state held shows how long each message waited and,
// for the one waiting for the sandbox, its task and file, in JSON and in
// the table.
func checkHeldPending(t *testing.T, g *gateway, ids map[string]string, sum string) {
	t.Helper()
	var it qListed
	deadline := time.Now().Add(30 * time.Second)
	for {
		it = g.qList("--state", "held")[ids["sandbox"]]
		if len(it.SandboxPending) == 1 && it.SandboxPending[0].TaskID != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("held message never showed a submitted sandbox task: %+v", it)
		}
		time.Sleep(300 * time.Millisecond)
	}
	p := it.SandboxPending[0]
	if p.SHA256 != sum || p.Path != "tool.bin" || p.State != "submitted" {
		t.Errorf("pending task = %+v, want tool.bin %s submitted", p, sum)
	}
	if it.WaitingSeconds < 1 {
		t.Errorf("waiting_seconds = %d", it.WaitingSeconds)
	}
	if h := g.qList("--state", "held")[ids["hold"]]; len(h.SandboxPending) != 0 || h.WaitingSeconds < 1 {
		t.Errorf("message held by a rule: %+v", h)
	}
	out, err := g.mg("quarantine", "list", "--state", "held")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(ids["sandbox"] + `\s+held \d+[smhd].*\n\s+sandbox: tool\.bin\s+task ` + regexp.QuoteMeta(p.TaskID) + `\s+submitted`)
	if !re.MatchString(out) {
		t.Errorf("table does not show the pending task under the held message:\n%s", out)
	}
	show, err := g.mg("quarantine", "show", ids["sandbox"])
	if err != nil || !regexp.MustCompile(`Sandbox:\n\s+tool\.bin\s+task `+regexp.QuoteMeta(p.TaskID)+` +submitted`).MatchString(show) ||
		!strings.Contains(show, "(waiting ") {
		t.Errorf("show of the held message:\n%s %v", show, err)
	}
}

// TestQuarantineShow: the text view names the rule of each reason, the
// YARA rules that matched (files and body parts) and the sandbox verdicts.
func TestQuarantineShow(t *testing.T) {
	need(t, "smtp-sink")
	s := startSink(t, "")
	mal := "sample the sandbox says is AgentTesla"
	cape := qStartCape(t, map[string]any{"*": map[string]any{"profile": "clean"},
		sha256Hex(mal): map[string]any{"profile": "malicious", "malscore": 9.1, "families": []string{"AgentTesla"},
			"signatures": []string{"injection_runpe"}, "delay": "1s"}})
	dir := t.TempDir()
	rules := filepath.Join(dir, "mark.yar")
	os.WriteFile(rules, []byte(`rule MarkerInBody { meta: severity = "high" strings: $a = "MARKER-7f3a" condition: $a }
rule MarkerInFile { strings: $a = "FILEMARK-91c2" condition: $a }
`), 0o644)
	g := startGateway(t, policyVars{Inbound: s.addr, Extra: quarantineRules + fmt.Sprintf(`
yara { rules = [%q] }
sandbox "cape" {
  url           = %q
  submit        = ["all"]
  poll_interval = "1s"
}
`, rules, cape)})
	yid, _ := sendExact(t, g.addr, "alice@partner.example", []string{"bob@corp.example"},
		strings.Replace(withAttachment("yara", "notes.txt", "text with FILEMARK-91c2 inside"),
			"please see the attachment", "please see MARKER-7f3a", 1))
	sid, _ := sendExact(t, g.addr, "alice@partner.example", []string{"bob@corp.example"},
		withAttachment("sandbox", "agent.exe", mal))
	g.qWaitState(yid, "quarantined", 30*time.Second)
	g.qWaitState(sid, "quarantined", 60*time.Second)

	out, err := g.mg("quarantine", "show", yid)
	if err != nil {
		t.Fatal(err)
	}
	for _, re := range []string{`Decision:\s+quarantine \(score [\d.]+\) by rule builtin-`, `malware_yara \[notes\.txt\]: yara: mark:MarkerInFile \(\w+\)\s+\(rule builtin-`,
		`YARA matches:\n(  .*\n)*  notes\.txt: mark:MarkerInFile`, `YARA matches:\n(  .*\n)*  [^\n:]+: mark:MarkerInBody \(high\)`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("show lacks %s:\n%s", re, out)
		}
	}
	out, err = g.mg("quarantine", "show", sid)
	if err != nil {
		t.Fatal(err)
	}
	for _, re := range []string{`malware_sandbox \[agent\.exe\]: sandbox task \d+: malscore 9\.1`,
		`Sandbox:\n  agent\.exe  done  task \d+  malscore 9\.1 \w+  family AgentTesla\n\s+signatures: injection_runpe`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("show lacks %s:\n%s", re, out)
		}
	}
	// The JSON view is the decision contract with the state and audit.
	var doc map[string]any
	g.mgJSON(&doc, "quarantine", "show", sid, "--json")
	for _, k := range []string{"action", "reasons", "score", "auth", "files", "sandbox", "audit", "state", "content_kept"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("show --json lacks %q", k)
		}
	}
}

// TestQuarantineRelease: releasing a held message while serve runs
// delivers it exactly once with X-Mailguard-Released; a second release is
// refused; two operators releasing at once cannot deliver twice; releases
// by filter ask for confirmation.
func TestQuarantineRelease(t *testing.T) {
	need(t, "smtp-sink")
	s := startSink(t, "")
	g := startGateway(t, policyVars{Inbound: s.addr, Extra: quarantineRules})
	held, _ := sendExact(t, g.addr, "alice@partner.example", []string{"bob@corp.example"}, crlf("Subject: HOLD ME\n\nbody\n"))
	g.qWaitState(held, "held", 10*time.Second)
	out, errOut, code := g.mgIn("", "quarantine", "release", held, "--note", "checked with the sender")
	if code != 0 || !strings.Contains(out, "released "+held) {
		t.Fatalf("release: exit %d\n%s%s", code, out, errOut)
	}
	_, errOut, code = g.mgIn("", "quarantine", "release", held)
	if code != 1 || !strings.Contains(errOut, "not held or quarantined") {
		t.Errorf("second release: exit %d, %s", code, errOut)
	}
	copies := func(id string) []string {
		var out []string
		for _, m := range s.messages() {
			if strings.Contains(m, "X-Mailguard-Id: "+id) {
				out = append(out, m)
			}
		}
		return out
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(copies(held)) == 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // a duplicate would come within the queue's retry
	got := copies(held)
	if len(got) != 1 {
		t.Fatalf("%d copies of the released message downstream, want 1", len(got))
	}
	if !regexp.MustCompile(`X-Mailguard-Released: by ` + regexp.QuoteMeta(osUser(t)) + ` at \d{4}-\d\d-\d\dT`).MatchString(got[0]) {
		t.Errorf("released copy lacks X-Mailguard-Released:\n%s", got[0])
	}
	g.qWaitState(held, "delivered", 10*time.Second)

	// Two operators release the same quarantined message at once.
	q, _ := sendExact(t, g.addr, "alice@partner.example", []string{"bob@corp.example"}, crlf("Subject: QUARANTINE race\n\nbody\n"))
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, codes[i] = g.mgIn("", "quarantine", "release", q, "--to", "soc@corp.example")
		}()
	}
	wg.Wait()
	if slices.Sorted(slices.Values(codes))[0] != 0 || codes[0] == codes[1] {
		t.Errorf("concurrent releases exited %v, want one success and one refusal", codes)
	}
	deadline = time.Now().Add(30 * time.Second)
	for len(copies(q)) == 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	if c := copies(q); len(c) != 1 || !strings.Contains(c[0], "soc@corp.example") {
		t.Errorf("release --to: %d copies: %q", len(c), c)
	}

	// --all-matching asks first; "n" (or no answer) changes nothing.
	q2, _ := sendExact(t, g.addr, "mallory@bad.example", []string{"bob@corp.example"}, crlf("Subject: QUARANTINE bulk\n\nbody\n"))
	_, errOut, code = g.mgIn("n\n", "quarantine", "release", "--all-matching", "--from", "mallory@")
	if code != 1 || !strings.Contains(errOut, "release 1 messages? [y/N]") || g.qList()[q2].State != "quarantined" {
		t.Errorf("unconfirmed bulk release: exit %d %s, state %s", code, errOut, g.qList()[q2].State)
	}
	out, _, code = g.mgIn("", "quarantine", "delete", "--all-matching", "--from", "mallory@", "--yes", "--note", "spam run")
	if code != 0 || !strings.Contains(out, "deleted "+q2) {
		t.Errorf("bulk delete --yes: exit %d %s", code, out)
	}
	if _, errOut, code := g.mgIn("", "quarantine", "release", q, "--to", "bad address\r\nRCPT TO:<x@y>"); code != 2 {
		t.Errorf("release --to with CRLF: exit %d %s", code, errOut)
	}
}

// TestQuarantineExportDeleteAudit: export is byte for byte what was
// received; every operator action is in the audit trail of show (text and
// JSON) with the OS user and the note; a deleted message cannot be
// exported any more.
func TestQuarantineExportDeleteAudit(t *testing.T) {
	need(t, "smtp-sink")
	s := startSink(t, "")
	g := startGateway(t, policyVars{Inbound: s.addr, Extra: quarantineRules})
	body := crlf("From: alice@partner.example\nSubject: QUARANTINE export \x8c\xa9\x90\xcf\n\n" +
		".leading dot\n..two dots\n trailing space \n\tTab\n" + strings.Repeat("x", 990) + "\n\nlast line without newline")
	id, r := sendExact(t, g.addr, "alice@partner.example", []string{"bob@corp.example"}, body)
	if id == "" {
		t.Fatal(r)
	}
	out, errOut, code := g.mgIn("", "quarantine", "export", id, "--note", "for the CERT")
	if code != 0 {
		t.Fatalf("export: %d %s", code, errOut)
	}
	if out != body+"\r\n" && out != body {
		t.Errorf("export differs from what was received:\n%q\n%q", out, body)
	}
	if _, errOut, code := g.mgIn("", "quarantine", "delete", id, "--note", "phishing, reported"); code != 0 {
		t.Fatalf("delete: %s", errOut)
	}
	if _, errOut, code := g.mgIn("", "quarantine", "export", id); code != 1 || !strings.Contains(errOut, "no longer kept") {
		t.Errorf("export after delete: exit %d %s", code, errOut)
	}
	if _, errOut, code := g.mgIn("", "quarantine", "delete", id); code != 1 || !strings.Contains(errOut, "cannot delete a message in state deleted") {
		t.Errorf("second delete: exit %d %s", code, errOut)
	}
	who := osUser(t)
	show, err := g.mg("quarantine", "show", id)
	if err != nil {
		t.Fatal(err)
	}
	for _, re := range []string{`Audit:\n  \S+  ` + who + `  export: for the CERT\n  \S+  ` + who + `  delete: phishing, reported\n`,
		`Content:\s+not kept`, `State:\s+deleted`} {
		if !regexp.MustCompile(re).MatchString(show) {
			t.Errorf("show lacks %s:\n%s", re, show)
		}
	}
	var doc struct {
		Audit []struct{ Actor, Action, Note, At string }
	}
	g.mgJSON(&doc, "quarantine", "show", id, "--json")
	if len(doc.Audit) != 2 || doc.Audit[0].Action != "export" || doc.Audit[1].Action != "delete" ||
		doc.Audit[1].Actor != who || doc.Audit[1].Note != "phishing, reported" || doc.Audit[0].At == "" {
		t.Errorf("audit in show --json = %+v", doc.Audit)
	}
	// A release is audited with its recipients.
	h, _ := sendExact(t, g.addr, "alice@partner.example", []string{"bob@corp.example"}, crlf("Subject: HOLD ME\n\nx\n"))
	g.qWaitState(h, "held", 10*time.Second)
	if _, errOut, code := g.mgIn("", "quarantine", "release", h, "--to", "soc@corp.example", "--note", "analysis"); code != 0 {
		t.Fatal(errOut)
	}
	show, _ = g.mg("quarantine", "show", h)
	if !regexp.MustCompile(`Audit:\n  \S+  ` + who + `  release \(to soc@corp\.example\): analysis`).MatchString(show) {
		t.Errorf("release not audited:\n%s", show)
	}
}
