package gateway

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/mailguard/mailguard/policy"
)

// yaraPolicy writes rule files into dir/rules and loads a policy (at
// dir/policy.hcl, the yara block on lines 4–6) whose rules list is given.
func yaraPolicy(t *testing.T, dir, rules string, files map[string]string) *policy.Policy {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "rules"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, "rules", name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src := fmt.Sprintf("gateway {\n  listen = [\"127.0.0.1:0\"]\n}\nyara {\n  rules = %s\n}\n", rules)
	p, diags := policy.Parse([]byte(src), filepath.Join(dir, "policy.hcl"))
	if diags.HasErrors() {
		t.Fatalf("policy: %s", policy.FormatDiagnostics(diags))
	}
	return p
}

// wantExternal requires a diagnostic whose formatted line starts with want.
func wantExternal(t *testing.T, diags hcl.Diagnostics, want string) {
	t.Helper()
	if !diags.HasErrors() {
		t.Errorf("no error; want %q in:\n%s", want, policy.FormatDiagnostics(diags))
		return
	}
	for _, l := range strings.Split(policy.FormatDiagnostics(diags), "\n") {
		if strings.HasPrefix(l, want) {
			return
		}
	}
	t.Errorf("no diagnostic %q in:\n%s", want, policy.FormatDiagnostics(diags))
}

// TestCheckExternalYARASyntaxError: a YARA error is reported at the rule
// file's own line (and at the included file's line when the error is
// there), the good files of the same glob report nothing, and a gateway
// cannot be built on such a policy (serve refuses to start).
func TestCheckExternalYARASyntaxError(t *testing.T) {
	dir := t.TempDir()
	p := yaraPolicy(t, dir, `["./rules/*.yar"]`, map[string]string{
		"good.yar":   "rule good { condition: filesize > 0 }\n",
		"bad.yar":    "/*\n  A rule with a typo.\n*/\n\nrule bad\n{\n    strings:\n        $a = \"invoice\" nocase\n        $b = \"payload\" junk\n    condition:\n        $a and $b\n}\n",
		"parent.yar": "include \"inc/child.inc\"\nrule parent { condition: child }\n",
	})
	if err := os.MkdirAll(filepath.Join(dir, "rules", "inc"), 0o755); err != nil {
		t.Fatal(err)
	}
	child := "private rule child {\n  condition:\n    uint16(0) == 0x5A4D and\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "rules", "inc", "child.inc"), []byte(child), 0o644); err != nil {
		t.Fatal(err)
	}
	diags := CheckExternal(p)
	rules := filepath.Join(dir, "rules")
	wantExternal(t, diags, rules+"/bad.yar:9:1: yara: ")
	wantExternal(t, diags, rules+"/inc/child.inc:4:1: yara: ")
	for _, d := range diags {
		if d.Subject != nil && strings.HasSuffix(d.Subject.Filename, "good.yar") {
			t.Errorf("good.yar reported: %s", policy.FormatDiagnostics(hcl.Diagnostics{d}))
		}
	}
	if _, err := New(Options{Policy: p, Resolver: loadZone(t, "")}); err == nil {
		t.Error("New accepted a policy whose YARA rules do not compile")
	}
}

// TestCheckExternalUnreadableYARA: a rule file that cannot be read is
// reported at the policy's rules attribute (line 5, column 11), with the
// operating system's reason.
func TestCheckExternalUnreadableYARA(t *testing.T) {
	t.Run("missing", func(t *testing.T) {
		dir := t.TempDir()
		p := yaraPolicy(t, dir, `["./rules/missing.yar"]`, nil)
		wantExternal(t, CheckExternal(p), filepath.Join(dir, "policy.hcl")+`:5:11: yara rules: scan: no rule files match: "`+
			filepath.Join(dir, "rules", "missing.yar")+`"`)
	})
	t.Run("dangling symlink", func(t *testing.T) {
		dir := t.TempDir()
		p := yaraPolicy(t, dir, `["./rules/*.yar"]`, map[string]string{"ok.yar": "rule ok { condition: true }\n"})
		link := filepath.Join(dir, "rules", "moved.yar")
		if err := os.Symlink(filepath.Join(dir, "elsewhere.yar"), link); err != nil {
			t.Fatal(err)
		}
		wantExternal(t, CheckExternal(p), filepath.Join(dir, "policy.hcl")+":5:11: yara rules: scan: rule file: stat "+link+": no such file or directory")
	})
	t.Run("permission denied", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root reads files whatever their mode")
		}
		dir := t.TempDir()
		p := yaraPolicy(t, dir, `["./rules/*.yar"]`, map[string]string{"secret.yar": "rule s { condition: true }\n"})
		f := filepath.Join(dir, "rules", "secret.yar")
		if err := os.Chmod(f, 0); err != nil {
			t.Fatal(err)
		}
		wantExternal(t, CheckExternal(p), filepath.Join(dir, "policy.hcl")+":5:11: yara rules: scan: rule file: open "+f+": permission denied")
	})
}

// TestReloadRefusesBrokenRules: Reload with rules that do not compile
// keeps the policy in force.
func TestReloadRefusesBrokenRules(t *testing.T) {
	dir := t.TempDir()
	good := yaraPolicy(t, dir, `["./rules/eicar.yar"]`, map[string]string{"eicar.yar": "rule eicar { strings: $e = \"EICAR\" condition: $e }\n"})
	g, err := New(Options{Policy: good, Resolver: loadZone(t, "")})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	bad := yaraPolicy(t, t.TempDir(), `["./rules/bad.yar"]`, map[string]string{"bad.yar": "rule bad {\n  condition:\n    nonsense(\n}\n"})
	err = g.Reload(bad)
	if err == nil || !strings.Contains(err.Error(), "bad.yar:3:1: yara: undefined identifier") {
		t.Errorf("Reload = %v, want the rule file's position", err)
	}
	if g.Policy() != good {
		t.Error("the refused policy replaced the one in force")
	}
}
