package tests

import (
	"strings"
	"testing"
	"time"
)

// TestSandboxMaliciousQuarantined: an executable nobody has seen is held
// while the sandbox (capeemu, a separate process) analyses it; the
// malicious verdict quarantines the message with malware_sandbox, and
// nothing reaches the downstream.
func TestSandboxMaliciousQuarantined(t *testing.T) {
	need(t, "swaks", "smtp-sink")
	exe := fakeExe("malicious")
	emu := startCapeEmu(t, map[string]any{
		"*":      map[string]any{"profile": "clean"},
		sum(exe): map[string]any{"profile": "malicious", "delay": "4s", "families": []string{"AgentTesla"}},
	})
	down := startSink(t, "")
	g := startGateway(t, policyVars{Inbound: down.addr, Extra: sandboxBlock(emu)})
	msg := attachmentMessage("tool for the meeting", "exe-1@partner.example", "setup.exe", exe)
	id := sendMessage(t, g.addr, msg)

	held, ok := g.entry(t, "held", id)
	if !ok {
		t.Fatalf("%s is not listed as held: %+v", id, g.list(t, "all"))
	}
	if held.HoldUntil == nil || !held.HoldUntil.After(time.Now()) || held.Waiting == "" {
		t.Errorf("held entry lacks a future hold_until or the wait time: %+v", held.Raw)
	}
	if held.MessageID != "exe-1@partner.example" || held.Subject != "tool for the meeting" {
		t.Errorf("held entry = %+v", held.Raw)
	}
	// Once uploaded, the list says which task the message waits for.
	emu.waitCounters("upload", func(c emuCounters) bool { return c.Submissions[sum(exe)] == 1 }, 10*time.Second)
	if e, _ := g.entry(t, "held", id); !pendingSubmitted(e, sum(exe)) {
		t.Errorf("held entry after the upload does not show the submitted task: %+v", e.Raw)
	}
	q := g.waitState(t, id, "quarantined", 30*time.Second)
	if !contains(q.Reasons, "malware_sandbox") {
		t.Errorf("quarantined with reasons %v, want malware_sandbox", q.Reasons)
	}
	d := g.decision(t, id)
	sb, _ := d["sandbox"].([]any)
	if len(sb) != 1 {
		t.Fatalf("decision sandbox = %v, want one file", d["sandbox"])
	}
	f := sb[0].(map[string]any)
	if score, _ := f["malscore"].(float64); f["sha256"] != sum(exe) || f["state"] != "done" || score < 5 || f["family"] != "AgentTesla" {
		t.Errorf("decision sandbox file = %v", f)
	}
	for _, ev := range []string{"held", "sandbox_submitted", "sandbox_verdict", "quarantined"} {
		if !g.waitEvent(id, ev, 5*time.Second) {
			t.Errorf("no %s event for %s", ev, id)
		}
	}
	if c := emu.counters(); c.Submissions[sum(exe)] != 1 {
		t.Errorf("submissions = %v, want 1 of the executable", c.Submissions)
	}
	time.Sleep(time.Second)
	if n := len(down.messages()); n != 0 {
		t.Errorf("%d messages reached the downstream, want none", n)
	}
}

// pendingSubmitted reports whether a held entry lists the file as
// submitted, with its task id and submission time.
func pendingSubmitted(e listEntry, sha string) bool {
	p, ok := e.pending(sha)
	return ok && p.State == "submitted" && p.TaskID != "" && p.SubmittedAt != nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// jscript is a script attachment (the "script" submit class).
func jscript(seed string) []byte {
	return []byte("var sh = new ActiveXObject('WScript.Shell');\r\nsh.Run('notepad.exe');\r\n// " + seed + "\r\n")
}

// TestSandboxCleanDeliveredByteForByte: a clean verdict releases the held
// message, and the downstream receives exactly what the client sent, after
// mailguard's prepended fields only.
func TestSandboxCleanDeliveredByteForByte(t *testing.T) {
	need(t, "swaks", "smtp-sink")
	emu := startCapeEmu(t, map[string]any{"*": map[string]any{"profile": "clean"}}, "-delay", "3s")
	down := startSink(t, "")
	g := startGateway(t, policyVars{Inbound: down.addr, Extra: sandboxBlock(emu)})
	msg := attachmentMessage("=?UTF-8?B?5pyI5qyh5aCx5ZGK?=", "js-1@partner.example", "report.js", jscript("clean"))
	id := sendMessage(t, g.addr, msg)
	if _, ok := g.entry(t, "held", id); !ok {
		t.Fatalf("%s is not held after DATA: %+v", id, g.list(t, "all"))
	}
	dump := down.waitMessage(t, id, 30*time.Second)
	checkStored(t, g, id, msg)
	fields := checkByteForByte(t, g, id, dump)
	if a := field(fields, "X-Mailguard-Action"); a != "deliver" {
		t.Errorf("X-Mailguard-Action = %q, want deliver", a)
	}
	if r := field(fields, "X-Mailguard-Reasons"); strings.Contains(r, "malware_sandbox") || strings.Contains(r, "sandbox_timeout") {
		t.Errorf("X-Mailguard-Reasons = %q", r)
	}
	g.waitState(t, id, "delivered", 10*time.Second)
	verdictAt, deliveredAt := g.eventTime(t, id, "sandbox_verdict"), g.eventTime(t, id, "delivered")
	if !deliveredAt.After(verdictAt) {
		t.Errorf("delivered at %v, before the verdict at %v", deliveredAt, verdictAt)
	}
	if n := len(down.messages()); n != 1 {
		t.Errorf("%d messages downstream, want 1", n)
	}
}

// TestSandboxSameFileOnce: the same attachment in two messages is
// submitted once, both messages wait for that one verdict, and a third
// message with it afterwards is decided from the verdict cache without a
// hold.
func TestSandboxSameFileOnce(t *testing.T) {
	need(t, "swaks", "smtp-sink")
	file := jscript("shared")
	emu := startCapeEmu(t, map[string]any{"*": map[string]any{"profile": "clean"}}, "-delay", "3s")
	down := startSink(t, "")
	g := startGateway(t, policyVars{Inbound: down.addr, Extra: sandboxBlock(emu)})
	id1 := sendMessage(t, g.addr, attachmentMessage("first", "same-1@partner.example", "a.js", file))
	id2 := sendMessage(t, g.addr, attachmentMessage("second", "same-2@partner.example", "renamed.js", file))
	for _, id := range []string{id1, id2} {
		if _, ok := g.entry(t, "held", id); !ok {
			t.Errorf("%s is not held", id)
		}
	}
	down.waitMessage(t, id1, 30*time.Second)
	down.waitMessage(t, id2, 10*time.Second)
	id3 := sendMessage(t, g.addr, attachmentMessage("third", "same-3@partner.example", "again.js", file))
	e := g.waitState(t, id3, "delivered", 10*time.Second)
	if e.Action != "deliver" {
		t.Errorf("third message action %q, want deliver", e.Action)
	}
	if g.hasEvent(id3, "held") {
		t.Errorf("third message was held although the verdict was cached")
	}
	c := emu.counters()
	if c.Submissions[sum(file)] != 1 || c.total() != 1 || c.Requests["tasks/create/file"] != 1 {
		t.Errorf("submissions %v, create requests %d; want the file once", c.Submissions, c.Requests["tasks/create/file"])
	}
}

// TestSandboxOutage: while the sandbox refuses connections and then
// answers 503, held messages stay held (no timeout, no error verdict);
// when it is back they are decided, each file uploaded once.
func TestSandboxOutage(t *testing.T) {
	need(t, "swaks", "smtp-sink")
	a, b := jscript("outage-a"), fakeExe("outage-b")
	emu := startCapeEmu(t, map[string]any{
		"*":    map[string]any{"profile": "clean"},
		sum(b): map[string]any{"profile": "malicious"},
	}, "-delay", "2s")
	down := startSink(t, "")
	g := startGateway(t, policyVars{Inbound: down.addr, Extra: sandboxBlock(emu)})
	// a is uploaded before the outage; b arrives during it.
	idA := sendMessage(t, g.addr, attachmentMessage("before the outage", "out-a@partner.example", "a.js", a))
	emu.waitCounters("upload of a", func(c emuCounters) bool { return c.Submissions[sum(a)] == 1 }, 10*time.Second)
	emu.knob("/down?mode=refuse", "")
	idB := sendMessage(t, g.addr, attachmentMessage("during the outage", "out-b@partner.example", "b.exe", b))
	time.Sleep(4 * time.Second) // a's analysis is done by now, but unreachable
	emu.knob("/down?mode=503", "")
	before := emu.counters()
	time.Sleep(4 * time.Second)
	during := emu.counters()
	if during.polls()+during.Requests["tasks/create/file"] <= before.polls()+before.Requests["tasks/create/file"] {
		t.Errorf("no request reached the sandbox while it answered 503: %+v", during.Requests)
	}
	// Both still held; the list tells the operator why: a was submitted
	// and cannot be polled, b could not be uploaded.
	for _, f := range []struct {
		id, sha, state string
	}{{idA, sum(a), "submitted"}, {idB, sum(b), "queued"}} {
		e, ok := g.entry(t, "held", f.id)
		if !ok {
			e, _ = g.entry(t, "all", f.id)
			t.Errorf("%s is not held during the outage: %+v", f.id, e.Raw)
			continue
		}
		if p, ok := e.pending(f.sha); !ok || p.State != f.state || p.LastError == "" {
			t.Errorf("%s during the outage: sandbox_pending %+v, want %s with the last error", f.id, e.SandboxPending, f.state)
		}
	}
	upAt := time.Now()
	emu.knob("/down?mode=up", "")
	down.waitMessage(t, idA, 60*time.Second)
	q := g.waitState(t, idB, "quarantined", 30*time.Second)
	if !contains(q.Reasons, "malware_sandbox") {
		t.Errorf("b quarantined with %v, want malware_sandbox", q.Reasons)
	}
	for _, id := range []string{idA, idB} {
		if at := g.eventTime(t, id, "sandbox_verdict"); at.Before(upAt) {
			t.Errorf("%s: verdict at %v, before the sandbox came back at %v", id, at, upAt)
		}
	}
	c := emu.counters()
	if c.Submissions[sum(a)] != 1 || c.Submissions[sum(b)] != 1 || c.total() != 2 {
		t.Errorf("submissions %v, want each file once", c.Submissions)
	}
	g.waitEvent(idA, "delivered", 10*time.Second)
	for _, l := range g.events() {
		if strings.Contains(l, `"sandbox_timeout"`) {
			t.Errorf("timeout during a short outage: %s", l)
		}
	}
}

// TestSandboxKillDuringHold: mailguard is killed with SIGKILL while a
// message waits for its analysis; after the restart the task is polled
// where it was, the message is delivered once, and the file is not
// submitted again.
func TestSandboxKillDuringHold(t *testing.T) {
	need(t, "swaks", "smtp-sink")
	file := jscript("crash")
	emu := startCapeEmu(t, map[string]any{"*": map[string]any{"profile": "clean"}}, "-delay", "8s")
	down := startSink(t, "")
	g := startGateway(t, policyVars{Inbound: down.addr, Extra: sandboxBlock(emu)})
	id := sendMessage(t, g.addr, attachmentMessage("crash me", "crash-1@partner.example", "c.js", file))
	// A status poll after the upload proves the task id is stored; a poll
	// takes milliseconds and the next comes at least 225 ms later, so
	// killing 50 ms after seeing one kills between polls, not during one
	// (a task claimed by a dead process waits for its lease to expire).
	c0 := emu.waitCounters("upload", func(c emuCounters) bool { return c.Requests["tasks/create/file"] == 1 }, 15*time.Second)
	emu.waitCounters("status poll", func(c emuCounters) bool { return c.statusPolls() > c0.statusPolls() }, 15*time.Second)
	time.Sleep(50 * time.Millisecond)
	g.kill9()
	e, ok := g.entry(t, "held", id)
	if !ok || !pendingSubmitted(e, sum(file)) {
		t.Fatalf("%s after the crash: %+v, want held with its submitted task", id, e.Raw)
	}
	taskID := e.SandboxPending[0].TaskID
	g.start()
	dump := down.waitMessage(t, id, 60*time.Second)
	checkByteForByte(t, g, id, dump)
	g.waitState(t, id, "delivered", 10*time.Second)
	if got := path(t, g.decision(t, id), "sandbox", "#0", "task_id"); got != taskID {
		t.Errorf("decided with task %v, want %s (the one submitted before the crash)", got, taskID)
	}
	c := emu.counters()
	if c.Submissions[sum(file)] != 1 || c.Requests["tasks/create/file"] != 1 {
		t.Errorf("after the restart: submissions %v, create requests %d; want one", c.Submissions, c.Requests["tasks/create/file"])
	}
	n := 0
	for _, l := range g.events() {
		if strings.Contains(l, `"event":"sandbox_submitted"`) && strings.Contains(l, id) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d sandbox_submitted events for %s, want 1", n, id)
	}
	if got := len(down.messages()); got != 1 {
		t.Errorf("%d copies downstream, want 1", got)
	}
}

// TestSandboxTimeout: an analysis that never finishes ends the hold at
// hold_timeout with sandbox_timeout and the on_timeout action: quarantine
// by default, delivery with the reason when the policy says tag or
// deliver.
func TestSandboxTimeout(t *testing.T) {
	need(t, "swaks", "smtp-sink")
	for _, tc := range []struct {
		onTimeout, state, action string
	}{
		{"", "quarantined", "quarantine"},
		{"tag", "delivered", "tag"},
		{"deliver", "delivered", "deliver"},
	} {
		t.Run("on_timeout="+tc.onTimeout, func(t *testing.T) {
			emu := startCapeEmu(t, map[string]any{"*": map[string]any{"never_finish": true}})
			down := startSink(t, "")
			extra := []string{`hold_timeout = "5s"`}
			if tc.onTimeout != "" {
				extra = append(extra, "on_timeout = \""+tc.onTimeout+"\"")
			}
			g := startGateway(t, policyVars{Inbound: down.addr, Extra: sandboxBlock(emu, extra...)})
			start := time.Now()
			id := sendMessage(t, g.addr, attachmentMessage("slow analysis", "slow-1@partner.example", "slow.js", jscript("timeout")))
			h, ok := g.entry(t, "held", id)
			// Measured from the receipt, not from the test's clock: a loaded
			// machine can take a second to start swaks.
			if !ok || h.HoldUntil == nil || h.HoldUntil.Sub(h.ReceivedAt) > 6*time.Second || h.HoldUntil.Before(h.ReceivedAt.Add(4*time.Second)) {
				t.Fatalf("held entry %+v, want hold_until about 5s after received_at", h.Raw)
			}
			e := g.waitState(t, id, tc.state, 20*time.Second)
			if took := time.Since(start); took < 5*time.Second {
				t.Errorf("decided after %s, before hold_timeout", took)
			}
			if e.Action != tc.action || !contains(e.Reasons, "sandbox_timeout") {
				t.Errorf("action %q reasons %v, want %s with sandbox_timeout", e.Action, e.Reasons, tc.action)
			}
			if tc.state != "delivered" {
				time.Sleep(time.Second)
				if n := len(down.messages()); n != 0 {
					t.Errorf("%d messages downstream, want none", n)
				}
				return
			}
			fields := checkByteForByte(t, g, id, down.waitMessage(t, id, 10*time.Second))
			if a, r := field(fields, "X-Mailguard-Action"), field(fields, "X-Mailguard-Reasons"); a != tc.action || !strings.Contains(r, "sandbox_timeout") {
				t.Errorf("delivered with action %q reasons %q", a, r)
			}
		})
	}
}
