package policy

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/mailguard/mailguard/reason"
)

// Rule shapes of the benchmark: the four kinds of condition real policies
// use.
const (
	shapeRegex = iota // a regular expression on the subject
	shapeFiles        // a for-expression over the files
	shapeLists        // list membership: groups, recipient domains, senders
	shapeCIDR         // CIDR matching on the client address
	shapeMix          // the four in turn
)

// benchRules writes n rules of a shape. None matches the benchmark
// message, so every rule runs (the worst case: the message falls through
// to the built-in rules).
func benchRules(n, shape int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "rule \"r%03d\" {\n", i)
		kind := shape
		if shape == shapeMix {
			kind = i % 4
		}
		switch kind {
		case shapeRegex:
			fmt.Fprintf(&b, "  when   = matches(\"(?i)(invoice|請求書|payment)[ -]?no\\\\.? ?%d\\\\b\", subject)\n", 10000+i)
		case shapeFiles:
			fmt.Fprintf(&b, "  when   = anytrue([for f in files : f.ext == \"x%d\" || (f.depth > %d && contains(f.findings, \"exec_attachment\"))])\n", i, 5+i%3)
		case shapeLists:
			fmt.Fprintf(&b, "  when   = contains(rcpt_groups, \"group%d\") || contains(rcpt_domains, \"d%d.example\") || address_match(mail_from, \"@s%d.example\", \"bad%d.example\")\n", i, i, i, i)
		case shapeCIDR:
			fmt.Fprintf(&b, "  when   = cidr_match(client_ip, \"10.%d.0.0/16\", \"2001:db8:%x::/48\", \"192.0.2.%d\") && direction == \"inbound\"\n", i%256, i, i%256)
		}
		fmt.Fprintf(&b, "  action = %q\n", []string{"quarantine", "tag", "hold", "reject"}[i%4])
		if i%5 == 0 {
			fmt.Fprintf(&b, "  reason = \"custom_%d\"\n", i)
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// benchFacts is a typical inbound message: three recipients, ten files
// (an archive with documents, one a macro document), a few findings.
func benchFacts() *Facts {
	f := &Facts{Direction: "inbound", ClientIP: netip.MustParseAddr("198.51.100.7"), HELO: "mail.partner.example",
		MailFrom: "alice@partner.example", Rcpts: []string{"bob@corp.example", "keiri@corp.example", "sales@corp.example"},
		From: Address{Name: "Alice", Addr: "alice@partner.example"}, FromCount: 1, Subject: "【至急】見積書送付の件 (ref 4711)",
		MessageID: "abc@partner.example", Size: 123456,
		Auth: AuthFacts{SPF: "pass", HELO: "none", DKIM: "pass", DKIMDomains: []string{"partner.example"}, DMARC: "pass", DMARCPolicy: "none"},
	}
	f.Files = append(f.Files, FileFacts{Path: "docs.zip", Name: "docs.zip", Type: "application/zip", Size: 80000, SHA256: strings.Repeat("a", 64)})
	for i := range 9 {
		ff := FileFacts{Path: fmt.Sprintf("docs.zip/file%d.docx", i), Name: fmt.Sprintf("file%d.docx", i),
			Type: "application/vnd.openxmlformats-officedocument.wordprocessingml.document", Size: 9000, Depth: 1,
			SHA256: strings.Repeat(fmt.Sprint(i), 64)}
		if i == 4 {
			ff.Name, ff.Findings = "file4.docm", []string{"macro_document"}
		}
		f.Files = append(f.Files, ff)
	}
	f.Findings = []reason.Finding{{Tag: reason.MacroDocument, Path: "docs.zip/file4.docm"}, {Tag: reason.SPFSoftfail}}
	return f
}

// benchPolicy parses the benchmark policy: 200 rules and a lists block
// with groups, after the built-in rules are appended.
func benchPolicy(b *testing.B, n, shape int) *Policy {
	b.Helper()
	src := minimal + `lists {
  allow_senders  = ["vendor.example"]
  block_senders  = ["@spam.example"]
  block_networks = ["203.0.113.0/24"]
  trap_addresses = ["trap@corp.example"]
  groups = {
    finance = ["keiri@corp.example"]
    sales   = ["sales@corp.example", "eigyo@corp.example"]
  }
}
sandbox "cape" {
  url = "http://127.0.0.1:8090/apiv2/"
}
` + benchRules(n, shape)
	p, diags := Parse([]byte(src), "bench.hcl")
	if diags.HasErrors() {
		b.Fatal(FormatDiagnostics(diags))
	}
	return p
}

// BenchmarkEvaluate200Rules is the policy's cost per message: 200 rules
// that all run, then the built-in ones; "mix" is the target (under 1 ms),
// the others break it down by the shape of the condition.
func BenchmarkEvaluate200Rules(b *testing.B) {
	for _, c := range []struct {
		name  string
		shape int
	}{{"mix", shapeMix}, {"regex", shapeRegex}, {"files", shapeFiles}, {"lists", shapeLists}, {"cidr", shapeCIDR}} {
		b.Run(c.name, func(b *testing.B) {
			p := benchPolicy(b, 200, c.shape)
			f := benchFacts()
			if d := p.Evaluate(f); len(d.Errors) > 0 || strings.HasPrefix(d.Rule, "r") {
				b.Fatalf("benchmark rules must all run without matching: %+v", d)
			}
			b.ReportAllocs()
			for b.Loop() {
				p.Evaluate(f)
			}
		})
	}
}

// BenchmarkEvaluateBuiltinOnly is the floor: no rules of the file's own.
func BenchmarkEvaluateBuiltinOnly(b *testing.B) {
	p := benchPolicy(b, 0, shapeMix)
	f := benchFacts()
	b.ReportAllocs()
	for b.Loop() {
		p.Evaluate(f)
	}
}

// BenchmarkLoad200Rules is the cost of loading (and type-checking) the
// policy, paid at start and on every reload.
func BenchmarkLoad200Rules(b *testing.B) {
	src := []byte(minimal + benchRules(200, shapeMix))
	b.ReportAllocs()
	for b.Loop() {
		if _, diags := Parse(src, "bench.hcl"); diags.HasErrors() {
			b.Fatal(FormatDiagnostics(diags))
		}
	}
}
