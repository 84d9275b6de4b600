package policy

import (
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mailguard/mailguard/reason"
)

const minimal = `
gateway {
  hostname      = "mx.corp.example"
  listen        = ["127.0.0.1:2525"]
  local_domains = ["corp.example"]
}
`

func mustParse(t *testing.T, src string) *Policy {
	t.Helper()
	p, diags := Parse([]byte(src), "policy.hcl")
	if diags.HasErrors() {
		t.Fatalf("Parse: %s", FormatDiagnostics(diags))
	}
	return p
}

func TestMinimalPolicyDefaults(t *testing.T) {
	p := mustParse(t, minimal)
	if p.Limits.MaxMessageBytes != DefaultMaxMessageBytes || p.Delivery.TLS != "opportunistic" ||
		p.Store.Path != "var" || !*p.Auth.Enabled || p.Sandbox() != nil {
		t.Errorf("defaults not applied: limits=%+v delivery=%+v store=%+v", p.Limits, p.Delivery, p.Store)
	}
	if len(p.rules) == 0 {
		t.Error("no built-in rules")
	}
}

// TestErrorPositions: each kind of error is reported at its own
// file:line:col, and all of them at once.
func TestErrorPositions(t *testing.T) {
	src := `gateway {
  hostname = "mx.corp.example"
  listen   = ["127.0.0.1:2525", "nonsense"]
  internal_networks = ["10.0.0.0/8", "10.0.0.1/8", "banana"]
  bogus_key = 1
}
limits {
  max_message_size = "lots"
  data_timeout     = "5 minutes"
}
delivery {
  tls = "sometimes"
}
sandbox "cuckoo" {
  url = "ftp://x"
}
lists {
  block_sha256 = ["abc"]
}
rule "bad-action" {
  when   = true
  action = "explode"
}
rule "bad-attr" {
  when   = auth.spff == "fail"
  action = "quarantine"
}
rule "bad-regex" {
  when   = matches("(", subject)
  action = "quarantine"
}
rule "not-bool" {
  when   = size
  action = "tag"
}
`
	_, diags := Parse([]byte(src), "p.hcl")
	if !diags.HasErrors() {
		t.Fatal("no errors")
	}
	got := FormatDiagnostics(diags)
	// gohcl stops at unknown keys before validation, so check them apart.
	if !strings.Contains(got, "p.hcl:5:3: Unsupported argument") {
		t.Errorf("unknown key not reported at 5:3:\n%s", got)
	}
	src = strings.Replace(src, "  bogus_key = 1\n", "", 1)
	_, diags = Parse([]byte(src), "p.hcl")
	got = FormatDiagnostics(diags)
	for _, want := range []string{
		`p.hcl:3:33: invalid address: "nonsense"`,
		`p.hcl:4:38: invalid network: "10.0.0.1/8"`,
		`p.hcl:4:52: invalid network: "banana"`,
		`p.hcl:7:22: invalid size: "lots"`,
		`p.hcl:8:22: invalid duration: "5 minutes"`,
		`p.hcl:11:9: invalid value: "sometimes"`,
		`p.hcl:14:9: unknown sandbox kind`,
		`p.hcl:14:9: invalid URL`,
		`p.hcl:17:19: invalid SHA-256`,
		`p.hcl:21:12: unknown action: "explode"`,
		`p.hcl:24:16: Unsupported attribute`,
		`p.hcl:28:20: invalid regular expression`,
		`p.hcl:32:12: when is not a condition`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	// Sorted by position.
	lines := strings.Split(strings.TrimSpace(got), "\n")
	re := regexp.MustCompile(`^p\.hcl:(\d+):(\d+):`)
	last := [2]int{}
	for _, l := range lines {
		m := re.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		cur := [2]int{atoi(m[1]), atoi(m[2])}
		if cur[0] < last[0] || cur[0] == last[0] && cur[1] < last[1] {
			t.Errorf("diagnostics not sorted: %q after %v", l, last)
		}
		last = cur
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

func TestSyntaxError(t *testing.T) {
	_, diags := Parse([]byte("gateway {\n  listen = [\n"), "s.hcl")
	if got := FormatDiagnostics(diags); !strings.HasPrefix(got, "s.hcl:") || !diags.HasErrors() {
		t.Errorf("syntax error = %q", got)
	}
}

func TestEnvFunction(t *testing.T) {
	t.Setenv("MG_TEST_TOKEN", "s3cret")
	p := mustParse(t, minimal+`sandbox "cape" {
  url   = "http://127.0.0.1:8090/apiv2/"
  token = env("MG_TEST_TOKEN")
}`)
	if p.Sandbox().Token != "s3cret" {
		t.Errorf("token = %q", p.Sandbox().Token)
	}
	_, diags := Parse([]byte(minimal+`sandbox "cape" {
  url   = "http://127.0.0.1:8090/apiv2/"
  token = env("MG_TEST_UNSET_VARIABLE")
}`), "e.hcl")
	if !strings.Contains(FormatDiagnostics(diags), "MG_TEST_UNSET_VARIABLE is not set") {
		t.Errorf("unset env not reported: %s", FormatDiagnostics(diags))
	}
}

func TestWarnings(t *testing.T) {
	p, diags := Parse([]byte(minimal+`rule "typo" {
  when   = has("exec_atachment")
  action = "quarantine"
  reason = "my_custom_tag"
}`), "w.hcl")
	if p == nil || diags.HasErrors() {
		t.Fatalf("warnings made the policy fail: %s", FormatDiagnostics(diags))
	}
	got := FormatDiagnostics(diags)
	if !strings.Contains(got, "w.hcl:8:16: warning: unknown reason tag") || !strings.Contains(got, "warning: custom reason tag") {
		t.Errorf("warnings = %s", got)
	}
}

func facts(findings ...reason.Tag) *Facts {
	f := &Facts{Direction: "inbound", ClientIP: netip.MustParseAddr("198.51.100.7"),
		MailFrom: "alice@partner.example", Rcpts: []string{"bob@corp.example"},
		From: Address{Name: "Alice", Addr: "alice@partner.example"}, Subject: "見積書"}
	for _, t := range findings {
		f.Findings = append(f.Findings, reason.Finding{Tag: t})
	}
	return f
}

func TestBuiltinDecisions(t *testing.T) {
	p := mustParse(t, minimal)
	check := func(f *Facts, want Action, wantRule string) {
		t.Helper()
		d := p.Evaluate(f)
		if d.Action != want || d.Rule != wantRule {
			t.Errorf("Evaluate(%v) = %s by %q, want %s by %q (errors %v)", f.Tags(), d.Action, d.Rule, want, wantRule, d.Errors)
		}
	}
	check(facts(), Deliver, "")
	check(facts(reason.DMARCReject), Reject, "builtin-dmarc-reject")
	check(facts(reason.MalwareYARA, reason.SPFSoftfail), Quarantine, "builtin-malware")
	check(facts(reason.DMARCTemperror), Tempfail, "builtin-dmarc-temperror")
	check(facts(reason.ExecAttachment), Quarantine, "builtin-active-content-unjudged")
	check(facts(reason.SPFSoftfail), Deliver, "")
	check(facts(reason.SPFFail, reason.DKIMFail), Tag, "builtin-score-tag")
	f := facts(reason.ExecAttachment)
	f.Sandbox = SandboxFacts{Configured: true, Candidates: 1, Unjudged: 1}
	check(f, Hold, "builtin-sandbox-hold")
	f.Sandbox.TimedOut = true
	check(f, Quarantine, "builtin-sandbox-timeout")
	f.Sandbox = SandboxFacts{Configured: true, Candidates: 1}
	check(f, Deliver, "")
	f = facts(reason.FirstContactAttachment)
	f.Files = []FileFacts{{Name: "a.zip", Encrypted: true}}
	check(f, Quarantine, "builtin-first-contact-encrypted")
}

func TestReasonsAndExplain(t *testing.T) {
	p := mustParse(t, minimal)
	f := facts(reason.SPFSoftfail, reason.MalwareYARA)
	f.Findings[1].Path = "a.zip/x.exe"
	f.Findings[1].Detail = "rule EICAR"
	d := p.Evaluate(f)
	if !cmp.Equal(d.Reasons, []reason.Tag{reason.SPFSoftfail, reason.MalwareYARA}) {
		t.Errorf("reasons = %v", d.Reasons)
	}
	if d.Explain[1].Path != "a.zip/x.exe" || d.Explain[1].Rule != "builtin-malware" || d.Explain[1].Detail != "rule EICAR" {
		t.Errorf("explain = %+v", d.Explain)
	}
	if d.Score != 1 {
		t.Errorf("score = %v, want 1 (spf_softfail)", d.Score)
	}
	if d := p.Evaluate(facts()); !cmp.Equal(d.Reasons, []reason.Tag{reason.Clean}) {
		t.Errorf("clean message reasons = %v", d.Reasons)
	}
}

func TestUserRulesOverrideBuiltin(t *testing.T) {
	p := mustParse(t, minimal+`
rule "partner-exe" {
  when   = from_domain == "partner.example" && anytrue([for f in files : f.ext == "exe"])
  action = "deliver"
}
rule "ceo-subject" {
  when   = matches("(?i)urgent wire", subject) && direction == "inbound"
  action = "quarantine"
  reason = "bec_subject"
}
rule "finance" {
  when     = contains(rcpt_groups, "finance")
  score    = 3
  reason   = "finance_recipient"
  continue = true
}
rule "finance-score" {
  when           = score >= 3 && contains(rcpt_domains, "corp.example")
  action         = "tag"
  subject_prefix = "[FIN] "
}
lists {
  groups = { finance = ["bob@corp.example"] }
}
`)
	f := facts(reason.ExecAttachment)
	f.Files = []FileFacts{{Name: "Setup.EXE"}}
	if d := p.Evaluate(f); d.Action != Deliver || d.Rule != "partner-exe" {
		t.Errorf("partner exe: %s by %s", d.Action, d.Rule)
	}
	f = facts()
	f.Subject = "URGENT wire transfer"
	if d := p.Evaluate(f); d.Action != Quarantine || !cmp.Equal(d.Reasons, []reason.Tag{"bec_subject"}) {
		t.Errorf("bec: %+v", d)
	}
	d := p.Evaluate(facts())
	if d.Action != Tag || d.Rule != "finance-score" || d.SubjectPrefix != "[FIN] " || d.Score != 3 {
		t.Errorf("finance: %+v", d)
	}
	if !cmp.Equal(d.Reasons, []reason.Tag{"finance_recipient"}) {
		t.Errorf("finance reasons = %v", d.Reasons)
	}
}

func TestBuiltinOff(t *testing.T) {
	p := mustParse(t, minimal+`rules { builtin = false }`)
	if d := p.Evaluate(facts(reason.DMARCReject)); d.Action != Deliver {
		t.Errorf("builtin = false still applied built-in rules: %+v", d)
	}
}

func TestLists(t *testing.T) {
	p := mustParse(t, minimal+`lists {
  block_senders  = ["@spam.example", "bad.example", "mallory@evil.example"]
  allow_senders  = ["partner.example"]
  block_networks = ["203.0.113.0/24"]
  trap_addresses = ["honeypot@corp.example"]
  block_sha256   = ["`+strings.Repeat("A", 64)+`"]
}`)
	check := func(mod func(*Facts), want Action, wantReason reason.Tag) {
		t.Helper()
		f := facts()
		mod(f)
		d := p.Evaluate(f)
		if d.Action != want || !contains(tagStrings(d.Reasons), string(wantReason)) {
			t.Errorf("%s %v, want %s with %s", d.Action, d.Reasons, want, wantReason)
		}
	}
	check(func(f *Facts) { f.MailFrom = "x@spam.example" }, Reject, reason.BlockedSender)
	check(func(f *Facts) { f.From.Addr = "x@mail.bad.example" }, Reject, reason.BlockedSender)
	check(func(f *Facts) { f.MailFrom = "MALLORY@evil.example" }, Reject, reason.BlockedSender)
	check(func(f *Facts) { f.MailFrom = "x@notspam.example" }, Deliver, reason.Clean)
	check(func(f *Facts) { f.ClientIP = netip.MustParseAddr("::ffff:203.0.113.9") }, Reject, reason.BlockedSender)
	check(func(f *Facts) { f.Rcpts = append(f.Rcpts, "Honeypot@corp.example") }, Quarantine, reason.TrapRecipient)
	check(func(f *Facts) { f.Files = []FileFacts{{SHA256: strings.Repeat("a", 64)}} }, Quarantine, reason.BlockedFile)
	// Allowed sender with DMARC pass skips the score rules; without, not.
	check(func(f *Facts) {
		f.Findings = []reason.Finding{{Tag: reason.LookalikeDomain}}
		f.Auth.DMARC = "pass"
	}, Deliver, reason.LookalikeDomain)
	check(func(f *Facts) { f.Findings = []reason.Finding{{Tag: reason.LookalikeDomain}} }, Quarantine, reason.LookalikeDomain)
}

// A minor MIME defect only adds to the score; an ambiguous one
// quarantines, and rules can tell them apart with mime.*.
func TestMalformedSeverityRules(t *testing.T) {
	p := mustParse(t, minimal+`rule "strict-finance" {
  when   = mime.malformed && contains(rcpts, "keiri@corp.example")
  action = "quarantine"
}`)
	minor := reason.Finding{Tag: reason.MalformedMIME, Detail: "boundary not closed", Minor: true}
	major := reason.Finding{Tag: reason.MalformedMIME, Detail: "multipart without boundary"}
	for _, c := range []struct {
		name     string
		findings []reason.Finding
		rcpt     string
		action   Action
		rule     string
		score    float64
	}{
		{"minor", []reason.Finding{minor}, "", Deliver, "", 2},
		{"minor and first contact", []reason.Finding{minor, {Tag: reason.FirstContactAttachment}}, "", Tag, "builtin-score-tag", 4},
		{"ambiguous", []reason.Finding{minor, major}, "", Quarantine, "builtin-malformed", 2},
		{"minor, strict rule", []reason.Finding{minor}, "keiri@corp.example", Quarantine, "strict-finance", 2},
	} {
		f := facts()
		f.Findings = c.findings
		if c.rcpt != "" {
			f.Rcpts = append(f.Rcpts, c.rcpt)
		}
		d := p.Evaluate(f)
		if d.Action != c.action || d.Rule != c.rule || d.Score != c.score || !contains(tagStrings(d.Reasons), string(reason.MalformedMIME)) {
			t.Errorf("%s: %s by %q, score %v, reasons %v; want %s by %q, score %v", c.name, d.Action, d.Rule, d.Score, d.Reasons, c.action, c.rule, c.score)
		}
	}
}

func tagStrings(ts []reason.Tag) []string {
	var s []string
	for _, t := range ts {
		s = append(s, string(t))
	}
	return s
}

func TestFunctions(t *testing.T) {
	p := mustParse(t, minimal+`
rule "f" {
  when = alltrue([glob("*.docx", "Report.DOCX"), cidr_match(client_ip, "198.51.100.0/24"),
    domain_match("a.b.partner.example", "partner.example"), !domain_match("xpartner.example", "partner.example"),
    address_match(mail_from, "@partner.example"), length(rcpts) == 1, lower("ÀB") == "àb", has("x_custom", "spf_fail")])
  action = "quarantine"
}`)
	f := facts(reason.SPFFail)
	if d := p.Evaluate(f); d.Rule != "f" {
		t.Errorf("functions rule did not match: %+v", d)
	}
}

func TestRuntimeErrorIsReported(t *testing.T) {
	p := mustParse(t, minimal+`
rule "idx" {
  when   = matches(subject, "x")
  action = "quarantine"
}`)
	f := facts()
	f.Subject = "(unbalanced"
	d := p.Evaluate(f)
	if d.Action != Deliver || len(d.Errors) != 1 || !strings.Contains(d.Errors[0], `rule "idx"`) {
		t.Errorf("decision = %+v", d)
	}
}

func TestSizesAndDurations(t *testing.T) {
	for in, want := range map[string]int64{"1048576": 1 << 20, "50MB": 50 << 20, "512 KiB": 512 << 10, "1.5g": 3 << 29} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	if d, err := ParseDuration("7d"); err != nil || d.Hours() != 168 {
		t.Errorf("ParseDuration(7d) = %v, %v", d, err)
	}
}

func TestRelativePaths(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.hcl")
	os.WriteFile(path, []byte(minimal+`yara { rules = ["./rules/*.yar"] }`), 0o644)
	p, diags := Load(path)
	if diags.HasErrors() {
		t.Fatal(FormatDiagnostics(diags))
	}
	if p.Store.Path != filepath.Join(dir, "var") || p.YARA.Rules[0] != filepath.Join(dir, "rules/*.yar") {
		t.Errorf("paths not relative to the policy file: %s %v", p.Store.Path, p.YARA.Rules)
	}
	if _, diags := Load(filepath.Join(dir, "missing.hcl")); !diags.HasErrors() {
		t.Error("missing file loaded")
	}
}

// TestExamplePolicy: the policy.hcl shipped at the repository root loads
// without errors or warnings.
func TestExamplePolicy(t *testing.T) {
	p, diags := Load("../policy.hcl")
	if len(diags) > 0 {
		t.Fatalf("policy.hcl:\n%s", FormatDiagnostics(diags))
	}
	if p.Gateway.Hostname == "" {
		t.Error("no hostname")
	}
}

// TestDocsMentionEveryKey keeps docs/policy.md true to the schema.
func TestDocsMentionEveryKey(t *testing.T) {
	doc, err := os.ReadFile("../docs/policy.md")
	if err != nil {
		t.Fatal(err)
	}
	src, _ := os.ReadFile("schema.go")
	for _, m := range regexp.MustCompile(`hcl:"([a-z_0-9]+)(,(optional|block|label))?"`).FindAllSubmatch(src, -1) {
		key := string(m[1])
		if !strings.Contains(string(doc), "`"+key+"`") {
			t.Errorf("docs/policy.md does not document %q", key)
		}
	}
	for _, v := range VariableNames() {
		if !strings.Contains(string(doc), "`"+v+"`") {
			t.Errorf("docs/policy.md does not document the variable %q", v)
		}
	}
	for name := range whenFunctions(nil) {
		if !strings.Contains(string(doc), "`"+name+"(") {
			t.Errorf("docs/policy.md does not document the function %q", name)
		}
	}
}
