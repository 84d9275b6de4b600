package tests

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// polRun runs the mailguard binary and returns stdout, stderr and the exit
// status (-1 when it did not exit by itself within d).
func polRun(t *testing.T, d time.Duration, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(mailguard, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		return out.String(), errb.String(), -1
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), errb.String(), 0
	case errors.As(err, &ee):
		return out.String(), errb.String(), ee.ExitCode()
	}
	t.Fatal(err)
	return "", "", 0
}

// polFile writes a file (parents created) and returns its path.
func polFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// polBroken has one error of several kinds, at known positions.
const polBroken = `gateway {
  hostname      = "mx.corp.example"
  listen        = ["127.0.0.1:2525"]
  local_domains = "corp.example"
}
rule "typo" {
  when   = thread.first_contcat
  action = "quarantine"
}
`

// polDiagLine is the form of every line check prints for a diagnostic.
var polDiagLine = regexp.MustCompile(`^[^:]+:\d+:\d+: (warning: )?\S.*$`)

// TestCheckCommand: `mailguard check` exits 0 on the repository's example
// policy, and prints file:line:col: message and exits 1 on a broken one
// (including a YARA error, positioned in the rule file).
func TestCheckCommand(t *testing.T) {
	example, err := filepath.Abs("../policy.hcl")
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, code := polRun(t, 30*time.Second, "check", "--config", example)
	if code != 0 || out != example+": ok\n" || errOut != "" {
		t.Errorf("check policy.hcl: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	dir := t.TempDir()
	// gohcl stops at a type error in a block, so the schema error and the
	// rule error are two runs.
	broken := polFile(t, dir, "broken.hcl", polBroken)
	_, errOut, code = polRun(t, 30*time.Second, "check", "--config", broken)
	if code != 1 || !strings.Contains(errOut, broken+":4:20: Unsuitable value type: Unsuitable value: list of string required, but have string") {
		t.Errorf("check broken.hcl: exit %d, stderr:\n%s", code, errOut)
	}
	fixed := polFile(t, dir, "rule.hcl", strings.Replace(polBroken, `"corp.example"`, `["corp.example"]`, 1))
	_, errOut, code = polRun(t, 30*time.Second, "check", "--config", fixed)
	if code != 1 || !strings.Contains(errOut, fixed+`:7:18: Unsupported attribute: This object does not have an attribute named "first_contcat".`) {
		t.Errorf("check rule.hcl: exit %d, stderr:\n%s", code, errOut)
	}
	for _, l := range strings.Split(strings.TrimSpace(errOut), "\n") {
		if !polDiagLine.MatchString(l) {
			t.Errorf("not file:line:col: message: %q", l)
		}
	}

	// A YARA syntax error is reported at the rule file's own line.
	polFile(t, dir, "rules/bad.yar", "rule ok { condition: true }\n\nrule bad {\n  strings:\n    $a = \"abc\"\n  condition:\n    $a and and\n}\n")
	yara := polFile(t, dir, "yara.hcl", "gateway {\n  listen = [\"127.0.0.1:2525\"]\n}\nyara {\n  rules = [\"./rules/*.yar\"]\n}\n")
	_, errOut, code = polRun(t, 30*time.Second, "check", "--config", yara)
	if code != 1 || !strings.Contains(errOut, filepath.Join(dir, "rules", "bad.yar")+":7:1: yara: syntax error") {
		t.Errorf("check yara.hcl: exit %d, stderr:\n%s", code, errOut)
	}

	// Warnings alone do not fail the check.
	warn := polFile(t, dir, "warn.hcl", "gateway {\n  listen = [\"127.0.0.1:2525\"]\n}\nrule \"w\" {\n  when   = has(\"exec_atachment\")\n  action = \"quarantine\"\n}\n")
	out, errOut, code = polRun(t, 30*time.Second, "check", "--config", warn)
	if code != 0 || !strings.Contains(errOut, warn+":5:16: warning: unknown reason tag") || !strings.HasSuffix(out, ": ok\n") {
		t.Errorf("check warn.hcl: exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	}
}

// TestServeRefusesBrokenPolicy: serve exits 1 with the diagnostics and
// never listens, for a broken policy and for rules that do not compile.
func TestServeRefusesBrokenPolicy(t *testing.T) {
	dir := t.TempDir()
	addr := freePort(t)
	for name, src := range map[string]string{
		"broken.hcl": strings.Replace(polBroken, "127.0.0.1:2525", addr, 1),
		"yara.hcl": "gateway {\n  listen = [\"" + addr + "\"]\n}\nstore { path = \"./var\" }\nauth { enabled = false }\n" +
			"yara {\n  rules = [\"./rules/*.yar\"]\n}\n",
	} {
		t.Run(name, func(t *testing.T) {
			polFile(t, dir, "rules/bad.yar", "rule bad {\n  condition:\n    nonsense(\n}\n")
			cfg := polFile(t, dir, name, src)
			_, errOut, code := polRun(t, 30*time.Second, "serve", "--config", cfg)
			if code != 1 {
				t.Errorf("serve exit %d, want 1; stderr:\n%s", code, errOut)
			}
			want := cfg + ":4:20: Unsuitable value type"
			if name == "yara.hcl" {
				want = filepath.Join(dir, "rules", "bad.yar") + ":3:1: yara: "
			}
			if !strings.Contains(errOut, want) {
				t.Errorf("stderr lacks %q:\n%s", want, errOut)
			}
			if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				c.Close()
				t.Errorf("something listens on %s", addr)
			}
			if _, err := os.Stat(filepath.Join(dir, "var")); err == nil {
				t.Error("serve created its store before refusing the policy")
			}
		})
	}
}

// polRule is a rule that rejects subjects matching pattern with reason tag.
func polRule(name, pattern, tag string) string {
	return "rule \"" + name + "\" {\n  when   = matches(\"" + pattern + "\", subject)\n  action = \"reject\"\n  reason = \"" + tag + "\"\n}\n"
}

// polSend sends a message with that subject; it returns the transcript
// and whether it was accepted.
func polSend(t *testing.T, g *gateway, subject string) (string, bool) {
	t.Helper()
	file := writeMessage(t, t.TempDir(), "m.eml", "From: Alice <alice@partner.example>\nTo: bob@corp.example\nSubject: "+subject+
		"\nMessage-ID: <"+strings.ReplaceAll(subject, " ", "-")+"-"+time.Now().Format("150405.000000")+"@partner.example>\n\nplease see below\n")
	return swaks(t, g.addr, "--from", "alice@partner.example", "--to", "bob@corp.example", "--data", file)
}

// polWaitCount waits until the log holds at least n matches of re.
func polWaitCount(g *gateway, re string, n int, d time.Duration) bool {
	r := regexp.MustCompile(re)
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if len(r.FindAllStringIndex(g.log.String(), -1)) >= n {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// TestSIGHUPReload: on SIGHUP serve re-reads the policy. A broken policy
// (or one whose YARA rules do not compile) is refused with its positions
// in the log, and the old rules keep applying; a valid new policy applies
// to the next message.
func TestSIGHUPReload(t *testing.T) {
	need(t, "swaks")
	oldRule := polRule("old-rule", "(?i)wire transfer", "old_rule_hit")
	g := startGateway(t, policyVars{Extra: oldRule})
	rejected := func(subject, tag string) {
		t.Helper()
		out, ok := polSend(t, g, subject)
		if ok || !strings.Contains(out, "550 5.7.1") || !strings.Contains(out, tag) {
			t.Errorf("%q: want 550 with %s:\n%s", subject, tag, tail(out, 8))
		}
	}
	accepted := func(subject string) {
		t.Helper()
		if out, ok := polSend(t, g, subject); !ok {
			t.Errorf("%q: not accepted:\n%s", subject, tail(out, 8))
		}
	}
	rejected("Urgent wire transfer", "old_rule_hit")
	accepted("Gift card request")

	// 1. A broken policy: refused, the old rule stays.
	writePolicy(t, g.dir, policyVars{Listen: g.addr, Extra: oldRule +
		"rule \"bad\" {\n  when   = true\n  action = \"explode\"\n}\n"})
	g.cmd.Process.Signal(syscall.SIGHUP)
	if !polWaitCount(g, `policy reload refused, keeping the old policy.*policy\.hcl:\d+:12: unknown action`, 1, 15*time.Second) {
		t.Fatalf("no refusal with the error's position in the log:\n%s", tail(g.log.String(), 20))
	}
	rejected("Second wire transfer", "old_rule_hit")

	// 2. Rules that do not compile: refused the same way.
	polFile(t, g.dir, "rules/bad.yar", "rule bad {\n  condition:\n    nonsense(\n}\n")
	writePolicy(t, g.dir, policyVars{Listen: g.addr, Extra: polRule("new-rule", "(?i)gift card", "new_rule_hit") +
		"yara {\n  rules = [\"./rules/*.yar\"]\n}\n"})
	g.cmd.Process.Signal(syscall.SIGHUP)
	if !polWaitCount(g, `policy reload refused, keeping the old policy.*bad\.yar:3:1: yara`, 1, 15*time.Second) {
		t.Fatalf("no refusal of the YARA rules in the log:\n%s", tail(g.log.String(), 20))
	}
	rejected("Third wire transfer", "old_rule_hit")
	accepted("Another gift card")

	// 3. A valid new policy: the new rule applies, the old one is gone.
	writePolicy(t, g.dir, policyVars{Listen: g.addr, Extra: polRule("new-rule", "(?i)gift card", "new_rule_hit")})
	g.cmd.Process.Signal(syscall.SIGHUP)
	if !polWaitCount(g, `"msg":"policy reloaded"`, 1, 15*time.Second) {
		t.Fatalf("no reload in the log:\n%s", tail(g.log.String(), 20))
	}
	rejected("Gift card for the CEO", "new_rule_hit")
	accepted("Fourth wire transfer")
	if n := strings.Count(g.log.String(), "policy reload refused"); n != 2 {
		t.Errorf("%d refusals logged, want 2", n)
	}
}
