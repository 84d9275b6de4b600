package policy

import (
	"os"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

// wantDiag parses src as e.hcl and requires a diagnostic whose formatted
// line starts with want ("file:line:col: summary[: detail…]"), and that the
// policy was refused.
func wantDiag(t *testing.T, src, want string) hcl.Diagnostics {
	t.Helper()
	p, diags := Parse([]byte(src), "e.hcl")
	if p != nil || !diags.HasErrors() {
		t.Fatalf("policy accepted; want %q", want)
	}
	for _, l := range strings.Split(FormatDiagnostics(diags), "\n") {
		if strings.HasPrefix(l, want) {
			return diags
		}
	}
	t.Errorf("no diagnostic %q in:\n%s", want, FormatDiagnostics(diags))
	return diags
}

// minimal occupies lines 1–6; what tests append starts on line 7.

func TestErrorUnknownBlock(t *testing.T) {
	wantDiag(t, minimal+"gatewy {\n  listen = [\"127.0.0.1:25\"]\n}\n",
		`e.hcl:7:1: Unsupported block type: Blocks of type "gatewy" are not expected here. Did you mean "gateway"?`)
}

func TestErrorUnknownNestedKey(t *testing.T) {
	wantDiag(t, minimal+"reputation {\n  zone \"bl.example\" {\n    wieght = 3\n  }\n}\n",
		`e.hcl:9:5: Unsupported argument: An argument named "wieght" is not expected here. Did you mean "weight"?`)
	wantDiag(t, "gateway {\n  listen = [\"127.0.0.1:25\"]\n  tls {\n    cert = \"a.crt\"\n    key  = \"a.key\"\n    chain = \"c.crt\"\n  }\n}\n",
		`e.hcl:6:5: Unsupported argument: An argument named "chain" is not expected here.`)
}

func TestErrorStringWhereListWanted(t *testing.T) {
	wantDiag(t, "gateway {\n  listen        = [\"127.0.0.1:2525\"]\n  local_domains = \"corp.example\"\n}\n",
		`e.hcl:3:20: Unsuitable value type: Unsuitable value: list of string required, but have string`)
	wantDiag(t, minimal+"lists {\n  groups = { finance = \"keiri@corp.example\" }\n}\n",
		`e.hcl:8:12: Unsuitable value type: Unsuitable value: element "finance": list of string required, but have string`)
	wantDiag(t, minimal+"archive {\n  max_depth = \"deep\"\n}\n",
		`e.hcl:8:16: Unsuitable value type: Unsuitable value: a number is required`)
}

func TestErrorDuplicateRule(t *testing.T) {
	diags := wantDiag(t, minimal+"rule \"a\" {\n  when   = true\n  action = \"tag\"\n}\n"+
		"rule \"a\" {\n  when   = false\n  action = \"quarantine\"\n}\n",
		`e.hcl:12:12: duplicate rule: rule "a" is defined twice`)
	if n := strings.Count(FormatDiagnostics(diags), "duplicate rule"); n != 1 {
		t.Errorf("%d duplicate-rule diagnostics, want 1 (at the second definition)", n)
	}
}

func TestErrorWhenUnknownFact(t *testing.T) {
	wantDiag(t, minimal+"rule \"u\" {\n  when   = attachment_count > 0\n  action = \"tag\"\n}\n",
		`e.hcl:8:12: Unknown variable: There is no variable named "attachment_count".`)
	// An unknown attribute of a known object, and of a file in a for.
	wantDiag(t, minimal+"rule \"u\" {\n  when   = thread.first_contcat\n  action = \"tag\"\n}\n",
		`e.hcl:8:18: Unsupported attribute: This object does not have an attribute named "first_contcat".`)
	wantDiag(t, minimal+"rule \"u\" {\n  when   = anytrue([for f in files : f.extension == \"exe\"])\n  action = \"tag\"\n}\n",
		`e.hcl:8:39: Unsupported attribute: This object does not have an attribute named "extension".`)
	// An unknown function.
	wantDiag(t, minimal+"rule \"u\" {\n  when   = regex(\"x\", subject)\n  action = \"tag\"\n}\n",
		`e.hcl:8:12: Call to unknown function: There is no function named "regex".`)
}

func TestErrorBadCIDRInWhen(t *testing.T) {
	wantDiag(t, minimal+"rule \"c\" {\n  when   = cidr_match(client_ip, \"10.0.0.0/8\", \"192.168.0.0/33\")\n  action = \"tag\"\n}\n",
		`e.hcl:8:48: invalid network: "192.168.0.0/33": want an address or CIDR`)
	wantDiag(t, minimal+"rule \"c\" {\n  when   = cidr_match(client_ip, \"10.0.0.1/8\")\n  action = \"tag\"\n}\n",
		`e.hcl:8:34: invalid network: "10.0.0.1/8"`)
	wantDiag(t, minimal+"rule \"c\" {\n  when   = cidr_match(client_ip, \"corp.example\")\n  action = \"tag\"\n}\n",
		`e.hcl:8:34: invalid network: "corp.example"`)
}

func TestErrorEnvUnset(t *testing.T) {
	const name = "MAILGUARD_TEST_SURELY_UNSET_VARIABLE"
	t.Setenv(name, "")
	if err := os.Unsetenv(name); err != nil {
		t.Fatal(err)
	}
	wantDiag(t, minimal+"sandbox \"cape\" {\n  url   = \"http://127.0.0.1:8090/apiv2/\"\n  token = env(\""+name+"\")\n}\n",
		`e.hcl:9:11: Error in function call: Call to function "env" failed: environment variable `+name+` is not set.`)
	// Set but empty is a value, not an error.
	t.Setenv(name, "")
	p := mustParse(t, minimal+"sandbox \"cape\" {\n  url   = \"http://127.0.0.1:8090/apiv2/\"\n  token = env(\""+name+"\")\n}\n")
	if p.Sandbox().Token != "" {
		t.Errorf("token %q", p.Sandbox().Token)
	}
}

// TestErrorsAllAtOnce: one kind of each error in one file gives one
// diagnostic each, sorted by position (the schema errors of gohcl stop the
// decode, so this covers what the validation pass collects).
func TestErrorsAllAtOnce(t *testing.T) {
	src := minimal + `rule "a" {
  when   = cidr_match(client_ip, "300.0.0.0/8")
  action = "tag"
}
rule "a" {
  when   = nope
  action = "tag"
}
rule "b" {
  when   = matches("[", subject)
  action = "hold"
}
`
	_, diags := Parse([]byte(src), "e.hcl")
	want := []string{
		`e.hcl:8:34: invalid network: "300.0.0.0/8"`,
		`e.hcl:12:12: Unknown variable`,
		`e.hcl:12:12: duplicate rule`,
		`e.hcl:16:20: invalid regular expression`,
	}
	got := strings.Split(strings.TrimSpace(FormatDiagnostics(diags)), "\n")
	if len(got) != len(want) {
		t.Fatalf("%d diagnostics, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("diagnostic %d = %q, want prefix %q", i, got[i], want[i])
		}
	}
}
