package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// huntResult is the part of `hunt --json` the tests read.
type huntResult struct {
	ID         string   `json:"id"`
	State      string   `json:"state"`
	To         []string `json:"to"`
	ReceivedAt string   `json:"received_at"`
	StateAt    string   `json:"state_at"`
	Matches    []struct {
		Path, SHA256 string
		Rules        []string
	} `json:"matches"`
}

func (g *gateway) hunt(args ...string) map[string]huntResult {
	g.t.Helper()
	var items []huntResult
	g.mgJSON(&items, append([]string{"hunt", "--json"}, args...)...)
	out := map[string]huntResult{}
	for _, it := range items {
		out[it.ID] = it
	}
	return out
}

// TestHunt: "who else received this file?" by hash through the file
// index, by sender, and by YARA rules written after the fact that re-scan
// the stored bytes of delivered and quarantined mail alike.
func TestHunt(t *testing.T) {
	need(t, "smtp-sink", "zip")
	s := startSink(t, "")
	g := startGateway(t, policyVars{Inbound: s.addr, Extra: quarantineRules})
	dir := t.TempDir()
	// Compressible, so that the marker is not in the archive's own bytes.
	inner := "quarterly figures\n" + strings.Repeat("row;1;2;3\n", 200) + "hunt-target-5b1e\n"
	os.WriteFile(filepath.Join(dir, "figures.txt"), []byte(inner), 0o644)
	if out, err := exec.Command("zip", "-j", "-q", filepath.Join(dir, "invoice.zip"), filepath.Join(dir, "figures.txt")).CombinedOutput(); err != nil {
		t.Fatalf("zip: %v %s", err, out)
	}
	zipBytes, _ := os.ReadFile(filepath.Join(dir, "invoice.zip"))
	a, _ := sendExact(t, g.addr, "alice@partner.example", []string{"bob@corp.example", "carol@corp.example"},
		withAttachment("invoice", "invoice.zip", string(zipBytes)))
	b, _ := sendExact(t, g.addr, "alice@partner.example", []string{"dave@corp.example"},
		withAttachment("QUARANTINE invoice again", "invoice.zip", string(zipBytes)))
	c, _ := sendExact(t, g.addr, "alice@partner.example", []string{"erin@corp.example"},
		withAttachment("other", "report.txt", "nothing to see"))
	d, _ := sendExact(t, g.addr, "mallory@bad.example", []string{"bob@corp.example"}, crlf("Subject: hi\n\nhello\n"))
	for _, id := range []string{a, c, d} {
		g.qWaitState(id, "delivered", 30*time.Second)
	}

	// By hash: the file inside the archive, through the index.
	got := g.hunt("--sha256", strings.ToUpper(sha256Hex(inner)))
	if ids := mapsKeys(got); !slices.Equal(ids, slices.Sorted(slices.Values([]string{a, b}))) {
		t.Fatalf("hunt --sha256 = %v, want %s and %s", ids, a, b)
	}
	if r := got[a]; r.State != "delivered" || !slices.Equal(r.To, []string{"bob@corp.example", "carol@corp.example"}) ||
		len(r.Matches) != 1 || r.Matches[0].Path != "invoice.zip/figures.txt" || r.ReceivedAt == "" || r.StateAt == "" {
		t.Errorf("hunt --sha256, delivered message: %+v", r)
	}
	if got[b].State != "quarantined" {
		t.Errorf("hunt --sha256, quarantined message: %+v", got[b])
	}
	if got := g.hunt("--sha256", sha256Hex(inner), "--since", "1ms"); len(got) != 0 {
		t.Errorf("hunt --since 1ms found %v", mapsKeys(got))
	}
	// By sender.
	if ids := mapsKeys(g.hunt("--from", "mallory@bad.example")); !slices.Equal(ids, []string{d}) {
		t.Errorf("hunt --from = %v, want %s", ids, d)
	}

	// By new YARA rules, over the stored bytes.
	rules := filepath.Join(dir, "new.yar")
	os.WriteFile(rules, []byte(`rule HuntTarget { strings: $a = "hunt-target-5b1e" condition: $a }`), 0o644)
	out, errOut, code := g.mgIn("", "hunt", "--yara", rules, "--json")
	if code != 0 {
		t.Fatalf("hunt --yara: exit %d %s", code, errOut)
	}
	if strings.Contains(errOut, "\r") || !strings.Contains(errOut, "hunt: 4 messages re-scanned, 2 matched") {
		t.Errorf("hunt --yara stderr (not a terminal: summary only):\n%q", errOut)
	}
	got = g.hunt("--yara", rules)
	if ids := mapsKeys(got); !slices.Equal(ids, slices.Sorted(slices.Values([]string{a, b}))) {
		t.Fatalf("hunt --yara = %v, want %s and %s\n%s", ids, a, b, out)
	}
	m := got[a].Matches
	if len(m) != 1 || m[0].Path != "invoice.zip/figures.txt" || !slices.Equal(m[0].Rules, []string{"new:HuntTarget"}) ||
		m[0].SHA256 != sha256Hex(inner) {
		t.Errorf("hunt --yara matches of %s: %+v", a, m)
	}
	if got := g.hunt("--yara", rules, "--from", "mallory@"); len(got) != 0 {
		t.Errorf("hunt --yara --from mallory = %v", mapsKeys(got))
	}
	// The text form lists every recipient and the matching file.
	text, err := g.mg("hunt", "--yara", rules)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(a + `  delivered .*\n    to: bob@corp\.example, carol@corp\.example\n    invoice\.zip/figures\.txt  sha256:` +
		sha256Hex(inner) + `  yara: new:HuntTarget`).MatchString(text) {
		t.Errorf("hunt text:\n%s", text)
	}

	// Mistakes are reported, not searched.
	if _, errOut, code := g.mgIn("", "hunt"); code != 2 || !strings.Contains(errOut, "--sha256, --from or --yara") {
		t.Errorf("hunt without criteria: exit %d %s", code, errOut)
	}
	bad := filepath.Join(dir, "bad.yar")
	os.WriteFile(bad, []byte("rule Broken {\n  condition: $nope\n}\n"), 0o644)
	if _, errOut, code := g.mgIn("", "hunt", "--yara", bad); code != 1 || !regexp.MustCompile(regexp.QuoteMeta(bad)+`:\d+: error: undefined string`).MatchString(errOut) {
		t.Errorf("hunt with a broken rule: exit %d %s", code, errOut)
	}
	checkHuntProgress(t, g, rules)
}

// checkHuntProgress: on a terminal (script(1) gives hunt a pty) stderr
// shows a progress bar.
func checkHuntProgress(t *testing.T, g *gateway, rules string) {
	t.Helper()
	if _, err := exec.LookPath("script"); err != nil {
		t.Log("script(1) not installed: the terminal progress bar is not checked")
		return
	}
	cmd := exec.Command("script", "-qfec", mailguard+" hunt --yara "+rules+" --config "+g.policy+" >/dev/null", "/dev/null")
	cmd.Dir = g.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("script: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`\r\[#+\.*\] \d+/4 messages, \d+ matched`).Match(out) || !strings.Contains(string(out), "2 matched") {
		t.Errorf("no progress bar on a terminal:\n%q", out)
	}
}
