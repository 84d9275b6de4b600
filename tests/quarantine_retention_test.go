package tests

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// purgeOut is `mailguard purge --json`.
type purgeOut struct {
	DryRun  bool `json:"dry_run"`
	Removed struct {
		Deleted, Content, Records int
	} `json:"removed"`
	Deleted []string `json:"deleted"`
	Content []string `json:"content"`
	Records []string `json:"records"`
}

func (g *gateway) purge(args ...string) purgeOut {
	g.t.Helper()
	var p purgeOut
	g.mgJSON(&p, append([]string{"purge", "--json"}, args...)...)
	return p
}

// exportable reports whether the message's bytes are still kept.
func (g *gateway) exportable(id string) bool {
	g.t.Helper()
	_, errOut, code := g.mgIn("", "quarantine", "export", id)
	if code != 0 && !strings.Contains(errOut, "no longer kept") {
		g.t.Fatalf("export %s: exit %d %s", id, code, errOut)
	}
	return code == 0
}

// TestRetentionPurge walks `mailguard purge --now` through the default
// ages with messages in every state: what is due goes, held, queued and
// released mail never does, and the queue still delivers afterwards.
func TestRetentionPurge(t *testing.T) {
	need(t, "smtp-sink")
	down := freePort(t)
	g := startGateway(t, policyVars{Inbound: down, Extra: quarantineRules})
	mail := func(subject string) string {
		t.Helper()
		id, r := sendExact(t, g.addr, "alice@partner.example", []string{"bob@corp.example"},
			withAttachment(subject, "a.txt", "attachment of "+subject))
		if id == "" && !strings.Contains(subject, "REJECT") {
			t.Fatalf("%s: %s", subject, r)
		}
		return id
	}
	delivered := mail("delivered")
	s := startSink(t, down)
	g.qWaitState(delivered, "delivered", 30*time.Second)
	s.stop() // from now on mail stays queued

	queued := mail("queued")
	quarantined := mail("QUARANTINE old")
	held := mail("HOLD ME")
	mail("REJECT ME")
	rejected := mapsKeys(g.qList("--state", "rejected"))[0]
	released := mail("QUARANTINE release me")
	if _, errOut, code := g.mgIn("", "quarantine", "release", released); code != 0 {
		t.Fatal(errOut)
	}
	deleted := mail("QUARANTINE delete me")
	if _, errOut, code := g.mgIn("", "quarantine", "delete", deleted); code != 0 {
		t.Fatal(errOut)
	}
	survivors := map[string]string{held: "held", queued: "queued", released: "released"}
	checkSurvivors := func(when string) {
		t.Helper()
		all := g.qList("--state", "all")
		for id, st := range survivors {
			if all[id].State != st || !g.exportable(id) {
				t.Errorf("%s: %s message is %q, exportable %v", when, st, all[id].State, g.exportable(id))
			}
		}
	}

	// A dry run a year and more ahead lists everything due, changes nothing.
	p := g.purge("--dry-run", "--now", "400d")
	if !p.DryRun || !slices.Equal(p.Deleted, []string{quarantined}) ||
		!slices.Equal(slices.Sorted(slices.Values(p.Content)), slices.Sorted(slices.Values([]string{delivered, rejected, quarantined}))) ||
		!slices.Equal(slices.Sorted(slices.Values(p.Records)), slices.Sorted(slices.Values([]string{delivered, rejected, deleted}))) {
		t.Errorf("dry run = %+v\nwant deleted %s, content %s %s %s, records %s %s %s", p, quarantined,
			delivered, rejected, quarantined, delivered, rejected, deleted)
	}
	if !g.exportable(delivered) || g.qList()[quarantined].State != "quarantined" {
		t.Fatal("the dry run changed something")
	}

	// Day 8: rejected mail's bytes (7d) go, its record stays.
	if p := g.purge("--now", "8d"); p.Removed.Content != 1 || p.Removed.Records+p.Removed.Deleted != 0 {
		t.Errorf("day 8: %+v", p)
	}
	if g.exportable(rejected) || g.qList("--state", "rejected")[rejected].ID == "" || !g.exportable(delivered) {
		t.Errorf("day 8: rejected exportable %v, delivered exportable %v", g.exportable(rejected), g.exportable(delivered))
	}
	// Day 31: delivered mail's bytes (30d) go; hunt still finds it by
	// hash, and hunt --yara says it could not re-scan it.
	if p := g.purge("--now", "31d"); p.Removed.Content != 1 || p.Removed.Deleted != 0 {
		t.Errorf("day 31: %+v", p)
	}
	if g.exportable(delivered) {
		t.Error("day 31: delivered content still kept")
	}
	if _, ok := g.hunt("--sha256", sha256Hex("attachment of delivered"))[delivered]; !ok {
		t.Error("day 31: hunt --sha256 no longer finds the delivered message")
	}
	rules := writeMessage(t, t.TempDir(), "any.yar", `rule Any { condition: true }`)
	if _, errOut, _ := g.mgIn("", "hunt", "--yara", rules, "--state", "delivered"); !strings.Contains(errOut, "1 without stored content") {
		t.Errorf("hunt --yara over purged content: %s", errOut)
	}
	checkSurvivors("day 31")

	// Day 91: the quarantined message nobody reviewed is deleted (90d),
	// audited and reported to the event log.
	if p := g.purge("--now", "91d"); p.Removed.Deleted != 1 {
		t.Errorf("day 91: %+v", p)
	}
	who := "retention (run by " + osUser(t) + ")"
	show, err := g.mg("quarantine", "show", quarantined)
	if err != nil || !strings.Contains(show, "State:       deleted") ||
		!regexp.MustCompile(regexp.QuoteMeta(who)+`  delete: quarantined for more than 90d`).MatchString(show) {
		t.Errorf("day 91 show:\n%s %v", show, err)
	}
	var last map[string]any
	for _, l := range g.events() {
		var e map[string]any
		if json.Unmarshal([]byte(l), &e) == nil && e["msg_id"] == quarantined {
			last = e
		}
	}
	if last["event"] != "deleted" || last["actor"] != who || last["detail"] != "quarantined for more than 90d" {
		t.Errorf("last event of the deleted message: %v", last)
	}
	checkSurvivors("day 91")

	// Day 400: the records of finished messages (365d) go.
	if p := g.purge("--now", "400d"); p.Removed.Records != 4 {
		t.Errorf("day 400: %+v, want the records of %s %s %s %s", p, delivered, rejected, deleted, quarantined)
	}
	for _, id := range []string{delivered, rejected, deleted, quarantined} {
		if _, errOut, code := g.mgIn("", "quarantine", "show", id); code != 1 || !strings.Contains(errOut, "no such message") {
			t.Errorf("day 400: show %s: exit %d %s", id, code, errOut)
		}
	}
	checkSurvivors("day 400")

	// The queue never lost what retention must not touch.
	s = startSink(t, down)
	g.qWaitState(queued, "delivered", 30*time.Second)
	g.qWaitState(released, "delivered", 30*time.Second)
	if g.qList("--state", "held")[held].State != "held" {
		t.Error("held message changed")
	}
}

// TestRetentionLoop: serve purges on its own every retention.interval and
// logs what it removed.
func TestRetentionLoop(t *testing.T) {
	need(t, "smtp-sink")
	s := startSink(t, "")
	g := startGateway(t, policyVars{Inbound: s.addr, Extra: quarantineRules + `
retention {
  quarantined = "2s"
  rejected    = "2s"
  interval    = "1s"
}
`})
	q, _ := sendExact(t, g.addr, "alice@partner.example", []string{"bob@corp.example"}, crlf("Subject: QUARANTINE loop\n\nx\n"))
	h, _ := sendExact(t, g.addr, "alice@partner.example", []string{"bob@corp.example"}, crlf("Subject: HOLD ME\n\nx\n"))
	sendExact(t, g.addr, "alice@partner.example", []string{"bob@corp.example"}, crlf("Subject: REJECT ME\n\nx\n"))
	r := mapsKeys(g.qList("--state", "rejected"))[0]
	g.qWaitState(q, "deleted", 20*time.Second)
	if !g.waitEvent(q, "deleted", 5*time.Second) {
		t.Error("no deleted event from serve's purge")
	}
	deadline := time.Now().Add(10 * time.Second)
	for g.exportable(r) && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if g.exportable(r) {
		t.Error("serve's purge did not remove the rejected message's bytes")
	}
	if !g.waitLog(`"msg":"retention purge".*"content":[1-9]`, 5*time.Second) ||
		!g.waitLog(`"msg":"quarantined message deleted by retention","msg_id":"`+q, time.Second) {
		t.Error("serve did not log what it purged")
	}
	if st := g.qList("--state", "held")[h].State; st != "held" || !g.exportable(h) {
		t.Errorf("held message after serve's purges: %q", st)
	}
}
