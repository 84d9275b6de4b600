package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mailguard/mailguard/policy"
	"github.com/mailguard/mailguard/sandbox"
	"github.com/mailguard/mailguard/sandbox/sandboxtest"
	"github.com/mailguard/mailguard/store"
	"github.com/mailguard/mailguard/store/sqlite"
)

func TestParseStates(t *testing.T) {
	check := func(in string, want []store.State, wantErr bool) {
		t.Helper()
		got, err := parseStates(in)
		var ue usageError
		if wantErr != errors.As(err, &ue) {
			t.Fatalf("parseStates(%q) err = %v, want error %v", in, err, wantErr)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("parseStates(%q) (-want +got):\n%s", in, diff)
		}
	}
	check("all", nil, false)
	check("", nil, false)
	check("review", []store.State{store.Held, store.Quarantined}, false)
	check("held,quarantined", []store.State{store.Held, store.Quarantined}, false)
	check("delivered, bounced", []store.State{store.Delivered, store.Bounced}, false)
	check("hedl", nil, true)
	check("held,", nil, true)
	check("held' OR 1=1 --", nil, true)
}

func TestFmtAge(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 45 * time.Second: "45s", 12*time.Minute + 59*time.Second: "12m",
		3*time.Hour + 5*time.Minute: "3h05m", 52 * time.Hour: "2d04h",
	} {
		if got := fmtAge(d); got != want {
			t.Errorf("fmtAge(%s) = %q, want %q", d, got, want)
		}
	}
}

func TestValidAddress(t *testing.T) {
	for a, want := range map[string]bool{
		"soc@corp.example": true, "a+b@x.example": true, "用户@例子.example": true,
		"": false, "nobody": false, "@corp.example": false, "a@": false, "a b@x.example": false,
		"a@x.example>\r\nRCPT TO:<b@y.example": false, "<a@x.example>": false, "a@x.example,b@y.example": false,
		strings.Repeat("a", 320) + "@x.example": false,
	} {
		if got := validAddress(a); got != want {
			t.Errorf("validAddress(%q) = %v, want %v", a, got, want)
		}
	}
}

func TestParseNow(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"":                          now,
		"10d":                       now.Add(240 * time.Hour),
		"+36h":                      now.Add(36 * time.Hour),
		"-2h":                       now.Add(-2 * time.Hour),
		"2027-01-01T00:00:00Z":      time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
		"2027-01-01T09:00:00+09:00": time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		got, err := parseNow(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseNow(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"tomorrow", "10", "2027-01-01"} {
		if _, err := parseNow(bad, now); err == nil {
			t.Errorf("parseNow(%q) succeeded", bad)
		}
	}
}

// TestProgress: the bar draws on a terminal and clears itself; elsewhere
// it writes nothing.
func TestProgress(t *testing.T) {
	var b bytes.Buffer
	p := &progress{w: &b, on: true, total: 4}
	p.set(2, 1)
	p.set(3, 1) // within 100ms of the last draw: skipped
	p.set(4, 2) // the last one always draws
	p.done()
	want := "\r[###############...............] 2/4 messages, 1 matched" +
		"\r[##############################] 4/4 messages, 2 matched\r\x1b[K"
	if b.String() != want {
		t.Errorf("bar output:\n%q\nwant\n%q", b.String(), want)
	}
	b.Reset()
	p = newProgress(&b, 4) // a buffer is not a terminal
	p.set(4, 4)
	p.note("hunt: x: failed")
	p.done()
	if b.String() != "hunt: x: failed\n" {
		t.Errorf("off a terminal: %q", b.String())
	}
}

// TestPendingTasks: the files a held message waits for come from its
// stored report; task IDs and states from the live task table.
func TestPendingTasks(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	sum := func(c byte) string { return strings.Repeat(string(c), 64) }
	rep := map[string]any{"sandbox": []map[string]any{
		{"path": "queued.exe", "sha256": sum('a'), "state": "pending"},
		{"path": "a.zip/submitted.js", "sha256": sum('b'), "state": "pending"},
		{"path": "judged.doc", "sha256": sum('c'), "state": "pending"},
		{"path": "cached.pdf", "sha256": sum('d'), "state": "done", "task_id": "7"},
	}}
	dec, _ := json.Marshal(rep)
	sb := sandboxtest.NewMemStore()
	sb.AddTask(ctx, sandbox.Task{Key: sum('a'), SHA256: sum('a'), Created: now, NextPoll: now, LastError: "sandbox down", Attempts: 0})
	sb.AddTask(ctx, sandbox.Task{Key: sum('b'), SHA256: sum('b'), ID: "42", Submitted: now.Add(-5 * time.Minute),
		Attempts: 2, Created: now, NextPoll: now})
	sb.PutVerdict(ctx, sandbox.Verdict{Key: sum('c'), SHA256: sum('c'), TaskID: "41", State: sandbox.StateDone}, now.Add(time.Hour))
	m := &store.Message{ID: "m1", State: store.Held, Decision: dec, ReceivedAt: now.Add(-90 * time.Minute), HoldUntil: now.Add(time.Hour)}
	at := now.Add(-5 * time.Minute)
	want := []pendingTask{
		{Path: "queued.exe", SHA256: sum('a'), State: "queued", LastError: "sandbox down"},
		{Path: "a.zip/submitted.js", SHA256: sum('b'), TaskID: "42", State: "submitted", SubmittedAt: &at, Attempts: 2},
		{Path: "judged.doc", SHA256: sum('c'), TaskID: "41", State: "done"},
	}
	if diff := cmp.Diff(want, pendingTasks(ctx, m, now, sb)); diff != "" {
		t.Errorf("pending tasks (-want +got):\n%s", diff)
	}
	it := itemOf(ctx, m, now, sb)
	if it.Waiting != "1h30m" || it.WaitingSeconds != 5400 || len(it.SandboxPending) != 3 || it.HoldUntil == nil {
		t.Errorf("list item of a held message: %+v", it)
	}
	if got := pendingLine(want[1], now); got != "sandbox: a.zip/submitted.js  task 42  submitted 5m ago, 2 attempts" {
		t.Errorf("pending line = %q", got)
	}
	if got := pendingLine(want[0], now); got != "sandbox: queued.exe  queued for upload (last error: sandbox down)" {
		t.Errorf("pending line = %q", got)
	}
	if it := itemOf(ctx, &store.Message{ID: "m2", State: store.Quarantined, Decision: dec}, now, sb); it.SandboxPending != nil || it.Waiting != "" {
		t.Errorf("a quarantined message waits for nothing: %+v", it)
	}
}

// hostile is text from a message that must not reach the terminal as is.
const hostile = "Invoice \x1b]0;pwned\x07\x1b[2J\r\u202egpj.exe\u202c\x00"

func controlFree(t *testing.T, out string) {
	t.Helper()
	for _, r := range out {
		if (r < 0x20 && r != '\n') || r == 0x7f || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) {
			t.Fatalf("output carries %U:\n%q", r, out)
		}
	}
}

// TestShowTextHostile: nothing that came with the message can drive the
// operator's terminal, in show or in the list.
func TestShowTextHostile(t *testing.T) {
	rep := map[string]any{
		"rule":     hostile,
		"explain":  []map[string]any{{"reason": "malware_yara", "rule": "r", "detail": hostile, "path": hostile}},
		"files":    []map[string]any{{"path": hostile, "type": hostile, "findings": []map[string]any{{"tag": "exec_attachment", "detail": hostile}}}},
		"findings": []map[string]any{{"tag": "malware_yara", "detail": "yara: " + hostile, "path": hostile}},
		"sandbox":  []map[string]any{{"path": hostile, "state": "done", "task_id": hostile, "family": hostile, "malstatus": hostile, "signatures": []string{hostile}}},
		"errors":   []string{hostile},
	}
	dec, _ := json.Marshal(rep)
	m := &store.Message{ID: "m1", State: store.Quarantined, Subject: hostile, From: hostile, MailFrom: hostile,
		HELO: hostile, MessageID: hostile, Rcpts: []string{hostile}, Decision: dec}
	var b bytes.Buffer
	showText(&b, &shown{m: m, audits: []store.Audit{{Actor: "op", Action: "export", Note: hostile}}, content: true})
	controlFree(t, b.String())
	for _, want := range []string{"YARA matches:", "Sandbox:", "Audit:", "gpj.exe"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("show lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	printTable(&b, []listItem{itemOf(context.Background(), m, time.Now(), nil)})
	controlFree(t, b.String())
}

// FuzzShowText: any stored report and subject print without a panic and
// without control characters.
func FuzzShowText(f *testing.F) {
	f.Add([]byte(`{"rule":"q","explain":[{"reason":"clean"}],"sandbox":[{"path":"a","state":"pending","sha256":"x"}]}`), "見積書")
	f.Add([]byte(`{"files":[{"path":"a/b","depth":99999,"findings":[{"tag":"x"}]}]}`), hostile)
	f.Add([]byte(`{"findings":[{"tag":"malware_yara","detail":"yara: a (high)"}],"auth":{"dkim":[{}]}}`), "")
	f.Add([]byte(`not json`), "\xff\xfe")
	f.Add([]byte(`{"files":[{"path":"a","depth":-3}]}`), "")
	f.Fuzz(func(t *testing.T, decision []byte, subject string) {
		m := &store.Message{ID: "m", State: store.Held, Subject: subject, Decision: decision}
		var b bytes.Buffer
		showText(&b, &shown{m: m, pending: []pendingTask{{Path: subject, TaskID: subject, State: "submitted"}}})
		controlFree(t, b.String())
	})
}

// BenchmarkHuntYARA measures `hunt --yara` over stored messages: each has
// a text body and a deflated zip attachment (90 KB of CSV inside, the
// marker at its end) that the walk must open; one op is one message walked
// and scanned, and every message must match. With MAILGUARD_HUNT_BENCH_DIR
// set, the store is built there and kept, so that the yara command line
// can be run over the same spool for comparison.
func BenchmarkHuntYARA(b *testing.B) {
	dir := os.Getenv("MAILGUARD_HUNT_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	pol := filepath.Join(dir, "policy.hcl")
	os.WriteFile(pol, []byte("gateway {\n  listen = [\"127.0.0.1:0\"]\n}\nstore { path = \"var\" }\n"), 0o644)
	rules := filepath.Join(dir, "hunt.yar")
	os.WriteFile(rules, []byte(`rule HuntTarget { strings: $a = "hunt-target-5b1e" condition: $a }`), 0o644)
	p, diags := policy.Load(pol)
	if diags.HasErrors() {
		b.Fatal(policy.FormatDiagnostics(diags))
	}
	os.RemoveAll(p.Store.Path)
	st, err := sqlite.Open(p.Store.Path, sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	msg := benchMessage()
	ids := make([]string, b.N)
	for i := range ids {
		ids[i] = fmt.Sprintf("bench%07d", i)
		if _, err := st.Accept(context.Background(), &store.Message{ID: ids[i]}, strings.NewReader(msg)); err != nil {
			b.Fatal(err)
		}
	}
	hf := huntFlags{yara: listFlag{rules}, jobs: min(runtime.GOMAXPROCS(0), 4)}
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	hits, err := huntYARA(context.Background(), p, st, ids, hf, io.Discard)
	b.StopTimer()
	if err != nil || len(hits) != b.N {
		b.Fatalf("%d of %d messages matched (%v)", len(hits), b.N, err)
	}
}

// benchMessage is a message with a text body and a zip attachment whose
// only file ends with the marker.
func benchMessage() string {
	var zb bytes.Buffer
	zw := zip.NewWriter(&zb)
	w, _ := zw.Create("figures.csv")
	for i := range 4000 {
		fmt.Fprintf(w, "%d;%d;%d;quarterly\n", i, i*7, i*13)
	}
	io.WriteString(w, "hunt-target-5b1e\n")
	zw.Close()
	enc := base64.StdEncoding.EncodeToString(zb.Bytes())
	var body strings.Builder
	for len(enc) > 76 {
		body.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	body.WriteString(enc + "\r\n")
	return "From: a@partner.example\r\nTo: b@corp.example\r\nSubject: figures\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\n" +
		strings.Repeat("Please find the figures attached.\r\n", 20) + "--b1\r\nContent-Type: application/zip; name=f.zip\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n" + body.String() + "--b1--\r\n"
}

func TestMboxFromLine(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
	}{
		{"From sender@example.org Mon Jun  2 10:00:00 2025\nFrom: a@b\n\nhi\n", 49},
		{"From sender@example.org Mon Jun  2 10:00:00 2025\r\nReceived: x\r\n\r\n", 50},
		{"From: a@b\n\nhi\n", 0},
		{"From someone\nnot a header line\n", 0},
		{"Subject: x\n\n", 0},
	} {
		if got := mboxFromLine(strings.NewReader(c.in)); got != c.want {
			t.Errorf("mboxFromLine(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}
