package tests

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// eventField is one field of the event schema (docs/events.md): its JSON
// type and the events it may appear in ("*": every event).
type eventField struct {
	typ    string // string, int, number, strings, object, time
	events string
}

const stateEvents = "queued held quarantined rejected"

// eventSchema is schema v1 as docs/events.md documents it.
var eventSchema = map[string]eventField{
	"v":          {"int", "*"},
	"ts":         {"time", "*"},
	"event":      {"string", "*"},
	"msg_id":     {"string", "*"},
	"message_id": {"string", "inspected " + stateEvents},
	"direction":  {"string", "received inspected " + stateEvents},
	"client_ip":  {"string", "received inspected " + stateEvents},
	"helo":       {"string", "received"},
	"mail_from":  {"string", "received inspected " + stateEvents},
	"rcpts":      {"strings", "received inspected released " + stateEvents},
	"from":       {"string", "inspected " + stateEvents},
	"subject":    {"string", "inspected " + stateEvents},
	"size":       {"int", "received"},
	"action":     {"string", "inspected " + stateEvents},
	"reasons":    {"strings", "inspected " + stateEvents},
	"score":      {"number", "inspected " + stateEvents},
	"auth":       {"object", "inspected " + stateEvents},
	"sha256":     {"strings", "inspected sandbox_submitted sandbox_verdict " + stateEvents},
	"hold_until": {"time", "held"},
	"rcpt":       {"string", "delivered bounced"},
	"code":       {"int", "delivered bounced"},
	"relay":      {"string", "delivered bounced"},
	"attempt":    {"int", "delivered bounced"},
	"detail":     {"string", "delivered bounced sandbox_verdict held rejected deleted"},
	"dsn_id":     {"string", "bounced"},
	"actor":      {"string", "released deleted"},
	"note":       {"string", "released deleted"},
	"task_id":    {"string", "sandbox_submitted sandbox_verdict"},
	"malscore":   {"number", "sandbox_verdict"},
}

// eventRequired are the fields each event always has besides v, ts,
// event and msg_id.
var eventRequired = map[string][]string{
	"received":          {"direction", "rcpts", "size"},
	"inspected":         {"action", "reasons", "score", "direction"},
	"queued":            {"action"},
	"held":              {"action"},
	"quarantined":       {"action"},
	"rejected":          {"action"},
	"delivered":         {"rcpt", "code"},
	"bounced":           {"rcpt"},
	"released":          {"actor", "rcpts"},
	"deleted":           {"actor"},
	"sandbox_submitted": {"sha256"},
	"sandbox_verdict":   {"sha256", "detail"},
}

// lifecycle says which event may follow which for one message ("" is the
// start). Held messages are inspected again when a verdict arrives or
// their deadline passes, held and quarantined ones by `quarantine unlock`;
// an inspection that failed goes from received straight to rejected
// (tempfail) or held (rules.on_error = "hold").
var lifecycle = map[string]string{
	"":                  "received",
	"received":          "sandbox_submitted inspected rejected held",
	"sandbox_submitted": "sandbox_submitted inspected",
	"inspected":         stateEvents,
	"queued":            "delivered bounced",
	"held":              "sandbox_submitted sandbox_verdict inspected released deleted",
	"sandbox_verdict":   "sandbox_verdict sandbox_submitted inspected released deleted",
	"quarantined":       "sandbox_submitted inspected released deleted", // inspected again: quarantine unlock
	"rejected":          "deleted",
	"released":          "delivered bounced",
	"delivered":         "delivered bounced",
	"bounced":           "delivered bounced",
	"deleted":           "",
}

// checkEventLines checks every line against the schema and every
// message's events against the lifecycle, and returns the events seen.
func checkEventLines(t *testing.T, lines []string) map[string]bool {
	t.Helper()
	seen := map[string]bool{}
	last := map[string]string{}
	dsn := map[string]bool{} // DSNs are born queued: their first event is a delivery
	for i, l := range lines {
		var e map[string]any
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Errorf("line %d is not JSON: %v: %s", i+1, err, l)
			continue
		}
		kind, _ := e["event"].(string)
		id, _ := e["msg_id"].(string)
		if _, ok := eventRequired[kind]; !ok || id == "" || e["v"] != float64(1) {
			t.Errorf("line %d: event %q, msg_id %q, v %v", i+1, kind, id, e["v"])
			continue
		}
		seen[kind] = true
		for k, v := range e {
			f, ok := eventSchema[k]
			switch {
			case !ok:
				t.Errorf("line %d (%s): field %q is not in the schema", i+1, kind, k)
			case f.events != "*" && !slices.Contains(strings.Fields(f.events), kind):
				t.Errorf("line %d (%s): field %q does not belong in this event", i+1, kind, k)
			case !eventTyped(f.typ, v):
				t.Errorf("line %d (%s): field %q = %#v, want %s", i+1, kind, k, v, f.typ)
			}
		}
		for _, k := range eventRequired[kind] {
			if _, ok := e[k]; !ok {
				t.Errorf("line %d (%s): required field %q missing: %s", i+1, kind, k, l)
			}
		}
		prev, known := last[id]
		if !known && dsn[id] && (kind == "delivered" || kind == "bounced") {
			prev = "queued"
		}
		if !slices.Contains(strings.Fields(lifecycle[prev]), kind) {
			t.Errorf("line %d: %s after %q for %s is not a lifecycle transition", i+1, kind, prev, id)
		}
		last[id] = kind
		if d, _ := e["dsn_id"].(string); d != "" {
			dsn[d] = true
		}
	}
	return seen
}

func eventTyped(typ string, v any) bool {
	switch typ {
	case "string":
		_, ok := v.(string)
		return ok
	case "int":
		n, ok := v.(float64)
		return ok && n == float64(int64(n))
	case "number":
		_, ok := v.(float64)
		return ok
	case "time":
		s, _ := v.(string)
		_, err := time.Parse(time.RFC3339Nano, s)
		return err == nil
	case "strings":
		l, ok := v.([]any)
		for _, x := range l {
			if _, s := x.(string); !s {
				return false
			}
		}
		return ok
	case "object":
		m, ok := v.(map[string]any)
		for _, x := range m {
			if _, s := x.(string); !s {
				return false
			}
		}
		return ok
	}
	return false
}

// TestEventsDocumented keeps docs/events.md and the test's schema table
// saying the same thing.
func TestEventsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/events.md")
	if err != nil {
		t.Fatal(err)
	}
	for k := range eventSchema {
		if !strings.Contains(string(doc), "`"+k+"`") {
			t.Errorf("docs/events.md does not document the field %q", k)
		}
	}
	for k := range eventRequired {
		if !strings.Contains(string(doc), "`"+k+"`") {
			t.Errorf("docs/events.md does not document the event %q", k)
		}
	}
}

// TestEventLog runs every lifecycle transition through a running gateway
// and the CLI, rotates the log in the middle (rename + SIGHUP, as
// logrotate does), and checks every line of both files against the
// schema and every message's events against the lifecycle.
func TestEventLog(t *testing.T) {
	need(t, "smtp-sink")
	s := startSink(t, "")
	mal := "sandbox says: bad"
	cape := qStartCape(t, map[string]any{"*": map[string]any{"profile": "clean"},
		sha256Hex(mal): map[string]any{"profile": "malicious", "malscore": 8.0, "delay": "1s"}})
	g := startGateway(t, policyVars{Inbound: s.addr, Extra: quarantineRules + fmt.Sprintf(`
sandbox "cape" {
  url           = %q
  submit        = ["all"]
  poll_interval = "1s"
}
`, cape)})
	send := func(subject string, body string) string {
		t.Helper()
		id, _ := sendExact(t, g.addr, "alice@partner.example", []string{"bob@corp.example"},
			crlf("From: alice@partner.example\nSubject: "+subject+"\n\n"+body+"\n"))
		return id
	}
	delivered := send("plain", "x")
	send("QUARANTINE me", "x")
	sendExact(t, g.addr, "alice@partner.example", []string{"bob@corp.example"}, crlf("Subject: REJECT ME\n\nx\n"))
	g.qWaitState(delivered, "delivered", 30*time.Second)

	// Rotate: logrotate renames the file, then signals.
	logPath := filepath.Join(g.dir, "var", "events.jsonl")
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	g.cmd.Process.Signal(syscall.SIGHUP)
	if !g.waitLog(`"msg":"policy reloaded"`, 10*time.Second) {
		t.Fatal("no reload after SIGHUP")
	}
	held := send("HOLD ME", "x")
	g.qWaitState(held, "held", 10*time.Second)
	if _, errOut, code := g.mgIn("", "quarantine", "release", held, "--note", "ok"); code != 0 {
		t.Fatal(errOut)
	}
	del := send("QUARANTINE delete me", "x")
	if _, errOut, code := g.mgIn("", "quarantine", "delete", del); code != 0 {
		t.Fatal(errOut)
	}
	sb, _ := sendExact(t, g.addr, "alice@partner.example", []string{"bob@corp.example"}, withAttachment("sandbox", "x.exe", mal))
	g.qWaitState(held, "delivered", 30*time.Second)
	g.qWaitState(sb, "quarantined", 60*time.Second)
	// A permanent failure downstream: bounced, and a DSN (delivered into
	// the Maildir: there is no outbound relay).
	addr := s.addr
	s.stop()
	startSink(t, addr, "-f", "RCPT")
	bounced := send("bounce me", "x")
	g.qWaitState(bounced, "bounced", 30*time.Second)
	if !g.waitEvent(bounced, "bounced", 10*time.Second) {
		t.Fatal("no bounced event")
	}
	time.Sleep(2 * time.Second) // the DSN's delivery

	old := readLines(t, logPath+".1")
	cur := readLines(t, logPath)
	for _, l := range old {
		if strings.Contains(l, `"msg_id":"`+held+`"`) {
			t.Errorf("an event after the rotation went to the rotated file: %s", l)
		}
	}
	if !slices.ContainsFunc(old, func(l string) bool { return strings.Contains(l, delivered) }) ||
		!slices.ContainsFunc(cur, func(l string) bool { return strings.Contains(l, held) }) {
		t.Errorf("rotation: %d lines before, %d after", len(old), len(cur))
	}
	seen := checkEventLines(t, append(old, cur...))
	for kind := range eventRequired {
		if !seen[kind] {
			t.Errorf("no %s event in the run", kind)
		}
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// TestEventLogSyslog: with log.syslog the same lines reach the local
// syslog socket. mailguard runs in a private mount namespace in which a
// socket of the test's is the system's syslog socket (Go's log/syslog
// dials /dev/log, /var/run/syslog or /var/run/log; none is configurable),
// so the machine's syslog is neither needed nor touched.
func TestEventLogSyslog(t *testing.T) {
	need(t, "unshare", "mount", "smtp-sink")
	if os.Geteuid() != 0 {
		t.Skip("a private mount namespace needs root")
	}
	if _, err := os.Stat("/dev/log"); err == nil {
		t.Skip("/dev/log exists: log/syslog would use it before our socket")
	}
	s := startSink(t, "")
	sockDir, err := os.MkdirTemp("", "mgsyslog")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(sockDir, "syslog"), Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	got := make(chan string, 100)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(got)
				return
			}
			got <- string(buf[:n])
		}
	}()
	g := startWrapped(t, policyVars{Inbound: s.addr, Extra: quarantineRules},
		func(p string) string {
			return strings.Replace(p, `events = "./var/events.jsonl"`, "events = \"./var/events.jsonl\"\n  syslog = true", 1)
		},
		[]string{"unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
			`mount --bind "$1" /run && exec "$2" serve --config "$3"`, "sh", sockDir})
	id, _ := sendExact(t, g.addr, "alice@partner.example", []string{"bob@corp.example"}, crlf("Subject: QUARANTINE syslog\n\nx\n"))
	deadline := time.After(10 * time.Second)
	var msgs []string
	frame := regexp.MustCompile(`^<22>\w{3} [ \d]\d \d\d:\d\d:\d\d mailguard\[\d+\]: (\{.*\})\n?$`)
	for len(msgs) < 3 {
		select {
		case m := <-got:
			f := frame.FindStringSubmatch(m)
			if f == nil {
				t.Fatalf("syslog message not framed as mail.info from mailguard: %q", m)
			}
			msgs = append(msgs, f[1])
		case <-deadline:
			t.Fatalf("%d syslog messages within 10s, want received, inspected, quarantined: %q", len(msgs), msgs)
		}
	}
	file := g.events()
	for i, m := range msgs {
		if !strings.Contains(m, `"msg_id":"`+id+`"`) || i >= len(file) || m != file[i] {
			t.Errorf("syslog line %d differs from the event file:\n%s\n%v", i, m, file)
		}
	}
	checkEventLines(t, msgs)
}

// startWrapped starts mailguard serve like startGateway, but through a
// wrapper command (its last arguments are the binary and the policy) and
// with the policy text edited first.
func startWrapped(t *testing.T, v policyVars, edit func(string) string, wrap []string) *gateway {
	t.Helper()
	dir := t.TempDir()
	v.Listen = freePort(t)
	path := writePolicy(t, dir, v)
	b, _ := os.ReadFile(path)
	os.WriteFile(path, []byte(edit(string(b))), 0o644)
	g := &gateway{t: t, dir: dir, addr: v.Listen, policy: path, log: &syncBuffer{}}
	g.cmd = exec.Command(wrap[0], append(wrap[1:], mailguard, path)...)
	g.cmd.Dir, g.cmd.Stdout, g.cmd.Stderr = dir, g.log, g.log
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	g.done = make(chan struct{})
	go func() { g.cmd.Wait(); close(g.done) }()
	t.Cleanup(func() {
		g.stop()
		if t.Failed() {
			t.Logf("mailguard log:\n%s", tail(g.log.String(), 60))
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-g.done:
			t.Fatalf("mailguard exited at start:\n%s", g.log.String())
		default:
		}
		if c, err := net.DialTimeout("tcp", g.addr, 200*time.Millisecond); err == nil {
			c.Close()
			return g
		}
		if time.Now().After(deadline) {
			t.Fatalf("mailguard not listening:\n%s", g.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
