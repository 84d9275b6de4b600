package policy

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/mailguard/mailguard/reason"
)

// Action is what happens to a message.
type Action string

// Actions, from the mildest.
const (
	Deliver    Action = "deliver"
	Tag        Action = "tag"  // deliver with X-Mailguard headers (and a subject prefix if a rule asks)
	Hold       Action = "hold" // wait for the sandbox or a password mail
	Quarantine Action = "quarantine"
	Reject     Action = "reject"   // 550 while the client is connected
	Tempfail   Action = "tempfail" // 451 while the client is connected
)

// Actions lists every action.
var Actions = []Action{Deliver, Tag, Hold, Quarantine, Reject, Tempfail}

// rule is a compiled `rule` block.
type rule struct {
	name          string
	when          hcl.Expression
	eval          evalFn // when, compiled
	action        Action
	reason        reason.Tag
	score         float64
	cont          bool
	subjectPrefix string
	builtin       bool
}

var tagRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// compileRules checks the file's rules and appends the built-in ones.
func (p *Policy) compileRules() hcl.Diagnostics {
	var diags hcl.Diagnostics
	seen := map[string]bool{}
	for _, rb := range p.Rules {
		if strings.HasPrefix(rb.Name, "builtin-") {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "reserved rule name",
				Detail:  fmt.Sprintf("%q: names starting with builtin- belong to the built-in rules", rb.Name),
				Subject: rangeOf(rb.Body, "when", -1)})
		}
		r, d := compileRule(rb)
		diags = append(diags, d...)
		if seen[rb.Name] {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "duplicate rule",
				Detail: fmt.Sprintf("rule %q is defined twice", rb.Name), Subject: rangeOf(rb.Body, "when", -1)})
		}
		seen[rb.Name] = true
		if r != nil {
			p.rules = append(p.rules, r)
		}
	}
	if *defBool(p.Settings.Builtin, true) {
		builtin, d := parseRules(builtinSource(p), "<builtin>")
		if d.HasErrors() {
			// The built-in rules are part of the program: a failure is a bug.
			panic("policy: built-in rules do not compile: " + FormatDiagnostics(d))
		}
		for _, r := range builtin {
			r.builtin = true
		}
		p.rules = append(p.rules, builtin...)
	}
	return diags
}

// BuiltinRules returns the built-in rule set as policy.hcl text, with the
// thresholds of this policy filled in.
func (p *Policy) BuiltinRules() string { return builtinSource(p) }

func parseRules(src, filename string) ([]*rule, hcl.Diagnostics) {
	f, diags := hclparse.NewParser().ParseHCL([]byte(src), filename)
	if diags.HasErrors() {
		return nil, diags
	}
	var doc struct {
		Rules []*RuleBlock `hcl:"rule,block"`
	}
	if diags := gohcl.DecodeBody(f.Body, nil, &doc); diags.HasErrors() {
		return nil, diags
	}
	var out []*rule
	for _, rb := range doc.Rules {
		r, d := compileRule(rb)
		diags = append(diags, d...)
		if r != nil {
			out = append(out, r)
		}
	}
	return out, diags
}

func compileRule(rb *RuleBlock) (*rule, hcl.Diagnostics) {
	v := &validator{}
	r := &rule{name: rb.Name, when: rb.When, eval: compileWhen(rb.When), action: Action(rb.Action), reason: reason.Tag(rb.Reason),
		score: rb.Score, cont: rb.Continue, subjectPrefix: rb.SubjectPrefix}
	switch {
	case rb.Continue && rb.Action != "":
		v.errf(rb.Body, "action", -1, "action with continue", "a rule with continue = true only adds its reason and score; remove action")
	case !rb.Continue && rb.Action == "":
		v.errf(rb.Body, "action", -1, "missing action", "rule %q needs action = one of %s (or continue = true)", rb.Name, actionList())
	case !rb.Continue && !validAction(r.action):
		v.errf(rb.Body, "action", -1, "unknown action", "%q: want one of %s", rb.Action, actionList())
	}
	if rb.Reason != "" {
		if !tagRE.MatchString(rb.Reason) {
			v.errf(rb.Body, "reason", -1, "invalid reason tag", "%q: use lowercase letters, digits and underscores", rb.Reason)
		} else if !reason.Known(r.reason) {
			v.warnf(rb.Body, "reason", -1, "custom reason tag", "%q is not one of mailguard's tags; it is reported as given", rb.Reason)
		}
	}
	if rb.SubjectPrefix != "" && r.action != Tag && r.action != Deliver {
		v.errf(rb.Body, "subject_prefix", -1, "subject_prefix without delivery", "subject_prefix applies only to action \"tag\" or \"deliver\"")
	}
	v.diags = append(v.diags, checkWhen(rb.When)...)
	if v.diags.HasErrors() {
		return nil, v.diags
	}
	return r, v.diags
}

func validAction(a Action) bool {
	for _, x := range Actions {
		if a == x {
			return true
		}
	}
	return false
}

func actionList() string {
	var s []string
	for _, a := range Actions {
		s = append(s, string(a))
	}
	return strings.Join(s, ", ")
}

// checkWhen type-checks a `when` expression at load time: literal arguments
// of has/matches/glob/cidr_match are validated, and the expression is
// evaluated against probe facts (one file, one of everything), so an unknown
// attribute or a type error is a diagnostic with its position now, not a
// surprise on live mail.
func checkWhen(expr hcl.Expression) hcl.Diagnostics {
	var diags hcl.Diagnostics
	if se, ok := expr.(hclsyntax.Expression); ok {
		hclsyntax.VisitAll(se, func(n hclsyntax.Node) hcl.Diagnostics {
			if call, ok := n.(*hclsyntax.FunctionCallExpr); ok {
				diags = append(diags, checkCall(call)...)
			}
			return nil
		})
	}
	if diags.HasErrors() {
		return diags
	}
	val, d := expr.Value(probeContext())
	diags = append(diags, d...)
	if d.HasErrors() {
		return diags
	}
	if !val.IsKnown() || val.IsNull() {
		return diags
	}
	if val.Type() != cty.Bool {
		r := expr.Range()
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "when is not a condition",
			Detail: fmt.Sprintf("the expression gives a %s; it must be true or false", val.Type().FriendlyName()), Subject: &r})
	}
	return diags
}

func checkCall(call *hclsyntax.FunctionCallExpr) hcl.Diagnostics {
	var diags hcl.Diagnostics
	lit := func(i int) (string, *hcl.Range, bool) {
		if i >= len(call.Args) {
			return "", nil, false
		}
		v, d := call.Args[i].Value(nil)
		if d.HasErrors() || !v.IsKnown() || v.IsNull() || v.Type() != cty.String {
			return "", nil, false
		}
		r := call.Args[i].Range()
		return v.AsString(), &r, true
	}
	bad := func(r *hcl.Range, summary, detail string, sev hcl.DiagnosticSeverity) {
		diags = append(diags, &hcl.Diagnostic{Severity: sev, Summary: summary, Detail: detail, Subject: r})
	}
	switch call.Name {
	case "has":
		for i := range call.Args {
			if s, r, ok := lit(i); ok && !reason.Known(reason.Tag(s)) {
				bad(r, "unknown reason tag", fmt.Sprintf("%q is not a mailguard reason tag (custom tags from rules are allowed, but check the spelling)", s), hcl.DiagWarning)
			}
		}
	case "matches":
		if s, r, ok := lit(0); ok {
			if _, err := compiledRegex(s); err != nil {
				bad(r, "invalid regular expression", err.Error(), hcl.DiagError)
			}
		}
	case "cidr_match":
		for i := 1; i < len(call.Args); i++ {
			if s, r, ok := lit(i); ok {
				if _, err := parsePrefix(s); err != nil {
					bad(r, "invalid network", fmt.Sprintf("%q: want an address or CIDR", s), hcl.DiagError)
				}
			}
		}
	case "glob":
		if s, r, ok := lit(0); ok {
			if _, err := matchGlob(s, ""); err != nil {
				bad(r, "invalid glob pattern", err.Error(), hcl.DiagError)
			}
		}
	}
	return diags
}
