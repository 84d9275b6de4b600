package policy

import (
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// whenCorpus are conditions of the shapes policies use, including ones the
// compiler leaves to HCL (object for-expressions, templates, indexing).
var whenCorpus = []string{
	`true`, `!false`, `direction == "inbound"`, `direction != "inbound"`, `size > 1000`, `size <= 123456`,
	`score >= 0`, `score + 1 > 0.5`, `-score < 1`, `size * 2 >= 246912`,
	`has("spf_softfail")`, `has("nope", "macro_document")`, `has("nope")`,
	`matches("(?i)見積", subject)`, `matches("^x", subject)`, `matches("4711", subject) && direction == "inbound"`,
	`glob("*.DOCX", "file.docx")`, `glob("a?c", "abc")`, `cidr_match(client_ip, "198.51.100.0/24")`,
	`cidr_match(client_ip, "10.0.0.0/8", "2001:db8::/32")`, `domain_match(from_domain, "example")`,
	`domain_match("a.partner.example", "partner.example")`, `address_match(mail_from, "@partner.example")`,
	`address_match(mail_from, "alice@partner.example", "x@y")`, `contains(rcpts, "bob@corp.example")`,
	`contains(rcpt_domains, "nope.example")`, `contains(findings, "macro_document")`,
	`anytrue([for f in files : f.ext == "docm"])`, `alltrue([for f in files : f.size > 0])`,
	`anytrue([for f in files : f.depth > 0 && contains(f.findings, "macro_document")])`,
	`anytrue([for i, f in files : i > 8])`, `anytrue([for f in files : f.encrypted if f.depth == 0])`,
	`alltrue([for f in files : f.type != ""])`, `anytrue([])`, `alltrue([])`, `anytrue([false, true])`,
	`length(files) > 3`, `length(rcpts) == 3`, `lower(subject) == lower(subject)`, `upper("a") == "A"`,
	`auth.dmarc == "pass" && auth.dkim == "pass"`, `lists.sender_allowed || lists.ip_allowed`,
	`thread.first_contact ? size > 0 : false`, `reputation.ip_score >= 3 || sandbox.unjudged > 0`,
	`contains([for f in files : f.ext], "docm")`, `length({for f in files : f.name => f.size}) > 2`,
	`"${direction}-x" == "inbound-x"`, `rcpts[0] == "bob@corp.example"`, `files[1].depth == 1`,
	`(size > 1 && (score < 10 || has("x")))`, `contains(auth.dkim_domains, from_domain)`,
	`length(reputation.ip_listed) == 0`, `anytrue([for d in rcpt_domains : domain_match(d, "corp.example")])`,
}

func evalBoth(t *testing.T, src string, f *Facts) (compiled, viaHCL cty.Value, cerr error, herr hcl.Diagnostics) {
	t.Helper()
	expr, diags := hclsyntax.ParseExpression([]byte(src), "when.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("%s: %s", src, FormatDiagnostics(diags))
	}
	p := mustParse(t, minimal)
	lf := p.lists.facts(f)
	tags := map[string]bool{}
	for _, fd := range f.Findings {
		tags[string(fd.Tag)] = true
	}
	ctx := &hcl.EvalContext{Variables: variables(f, lf, 1.5), Functions: whenFunctions(tags)}
	compiled, cerr = compileExpr(expr)(&evalEnv{ctx: ctx, tags: tags})
	viaHCL, herr = expr.Value(ctx)
	return
}

// TestCompiledMatchesHCL: the compiled evaluation gives what HCL gives.
func TestCompiledMatchesHCL(t *testing.T) {
	facts := []*Facts{facts(), benchFacts(), {}}
	for _, src := range whenCorpus {
		for i, f := range facts {
			c, h, cerr, herr := evalBoth(t, src, f)
			switch {
			case herr.HasErrors() && cerr == nil:
				// Short-circuit && and || may succeed where HCL fails on
				// the side it need not evaluate; nothing else may.
				if !strings.Contains(src, "&&") && !strings.Contains(src, "||") {
					t.Errorf("%q facts %d: compiled %#v, HCL failed: %s", src, i, c, FormatDiagnostics(herr))
				}
			case !herr.HasErrors() && cerr != nil:
				t.Errorf("%q facts %d: compiled failed (%v), HCL gave %#v", src, i, cerr, h)
			case !herr.HasErrors() && !c.RawEquals(h) && !c.Equals(h).True():
				t.Errorf("%q facts %d: compiled %#v, HCL %#v", src, i, c, h)
			}
		}
	}
}

// FuzzCompiledMatchesHCL: for any expression HCL evaluates without error
// against the probe and benchmark facts, the compiled form agrees.
func FuzzCompiledMatchesHCL(f *testing.F) {
	for _, s := range whenCorpus {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		expr, diags := hclsyntax.ParseExpression([]byte(src), "fuzz.hcl", hcl.InitialPos)
		if diags.HasErrors() {
			return
		}
		for _, fc := range []*Facts{benchFacts(), facts()} {
			p := mustParse(t, minimal)
			tags := map[string]bool{"macro_document": true}
			ctx := &hcl.EvalContext{Variables: variables(fc, p.lists.facts(fc), 2), Functions: whenFunctions(tags)}
			h, herr := expr.Value(ctx)
			if herr.HasErrors() || !h.IsWhollyKnown() {
				continue
			}
			c, cerr := compileExpr(expr)(&evalEnv{ctx: ctx, tags: tags})
			if cerr != nil {
				t.Fatalf("%q: compiled failed (%v), HCL gave %#v", src, cerr, h)
			}
			if !c.RawEquals(h) && !(c.Type().Equals(h.Type()) && c.Equals(h).True()) {
				t.Fatalf("%q: compiled %#v, HCL %#v", src, c, h)
			}
		}
	})
}
