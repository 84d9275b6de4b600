package policy

import (
	"fmt"
	"net/netip"
	"sort"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/mailguard/mailguard/reason"
)

// Decision is the outcome of Evaluate. Reasons are the contract tags
// (DESIGN.md); Explain says where each came from.
type Decision struct {
	Action        Action        `json:"action"`
	Reasons       []reason.Tag  `json:"reasons"`
	Score         float64       `json:"score"`
	Rule          string        `json:"rule,omitempty"` // the rule that decided; "" = no rule matched
	Explain       []Explanation `json:"explain"`
	SubjectPrefix string        `json:"subject_prefix,omitempty"`
	// Errors are rules whose `when` failed on this message; they counted
	// as not matching. The gateway logs them.
	Errors []string `json:"errors,omitempty"`
}

// Explanation ties a reason to its finding and to the rule that used it.
type Explanation struct {
	Reason reason.Tag `json:"reason"`
	Rule   string     `json:"rule,omitempty"`   // rule that added or acted on it
	Detail string     `json:"detail,omitempty"` // the finding's own words
	Path   string     `json:"path,omitempty"`   // file in the attachment tree
	Weight float64    `json:"weight,omitempty"` // contribution to the score
}

// Evaluate decides what happens to a message. It is pure: the same facts
// and policy always give the same decision.
func (p *Policy) Evaluate(f *Facts) Decision {
	lf := p.lists.facts(f)
	findings := append(append([]reason.Finding(nil), f.Findings...), lf.findings(f)...)
	tags := map[string]bool{}
	var d Decision
	for _, fd := range findings {
		w := 0.0
		if !tags[string(fd.Tag)] {
			w = p.weights[fd.Tag]
			d.Score += w
		}
		tags[string(fd.Tag)] = true
		d.Explain = append(d.Explain, Explanation{Reason: fd.Tag, Detail: fd.Detail, Path: fd.Path, Weight: w})
	}
	ctx := &hcl.EvalContext{Variables: variables(f, lf, d.Score), Functions: whenFunctions(tags)}
	env := &evalEnv{ctx: ctx, tags: tags}
	for _, r := range p.rules {
		val, err := r.eval(env)
		if err != nil {
			d.Errors = append(d.Errors, fmt.Sprintf("rule %q: %v", r.name, err))
			continue
		}
		if val.IsNull() || !val.IsKnown() || val.Type() != cty.Bool || val.False() {
			continue
		}
		if r.reason != "" {
			tags[string(r.reason)] = true
			w := r.score + p.weights[r.reason]
			d.Score += w
			d.Explain = append(d.Explain, Explanation{Reason: r.reason, Rule: r.name, Weight: w})
		} else {
			d.Score += r.score
		}
		ctx.Variables["score"] = cty.NumberFloatVal(d.Score)
		if r.cont {
			continue
		}
		d.Action, d.Rule, d.SubjectPrefix = r.action, r.name, r.subjectPrefix
		break
	}
	if d.Action == "" {
		d.Action = Deliver
	}
	d.Reasons = reasonsOf(d.Explain)
	// Mark the findings the deciding rule saw, so "why" has an answer.
	for i := range d.Explain {
		if d.Explain[i].Rule == "" && d.Rule != "" {
			d.Explain[i].Rule = d.Rule
		}
	}
	return d
}

func reasonsOf(ex []Explanation) []reason.Tag {
	seen := map[reason.Tag]bool{}
	var out []reason.Tag
	for _, e := range ex {
		if !seen[e.Reason] {
			seen[e.Reason] = true
			out = append(out, e.Reason)
		}
	}
	if len(out) == 0 {
		out = []reason.Tag{reason.Clean}
	}
	return out
}

// variables builds the evaluation variables of one message.
func variables(f *Facts, lf listFacts, score float64) map[string]cty.Value {
	rcptDomains := map[string]bool{}
	for _, r := range f.Rcpts {
		rcptDomains[domainOf(r)] = true
	}
	domains := make([]string, 0, len(rcptDomains))
	for dom := range rcptDomains {
		domains = append(domains, dom)
	}
	sort.Strings(domains)
	sort.Strings(lf.groups)
	files := make([]cty.Value, len(f.Files))
	for i, file := range f.Files {
		files[i] = fileVal(file)
	}
	filesVal := cty.ListValEmpty(fileType)
	if len(files) > 0 {
		filesVal = cty.ListVal(files)
	}
	var tags []string
	for _, t := range f.Tags() {
		tags = append(tags, string(t))
	}
	malformed, ambiguous := false, false
	for _, fd := range f.Findings {
		if fd.Tag == reason.MalformedMIME {
			malformed = true
			ambiguous = ambiguous || !fd.Minor
		}
	}
	ip := ""
	if f.ClientIP.IsValid() {
		ip = f.ClientIP.Unmap().String()
	}
	return map[string]cty.Value{
		"direction": cty.StringVal(f.Direction), "client_ip": cty.StringVal(ip),
		"helo": cty.StringVal(f.HELO), "mail_from": cty.StringVal(f.MailFrom),
		"mail_from_domain": cty.StringVal(domainOf(f.MailFrom)), "rcpts": strList(f.Rcpts),
		"rcpt_domains": strList(domains), "rcpt_groups": strList(lf.groups),
		"size": cty.NumberIntVal(f.Size), "from": cty.StringVal(f.From.Addr),
		"from_domain": cty.StringVal(f.From.Domain()), "from_name": cty.StringVal(f.From.Name),
		"from_count": cty.NumberIntVal(int64(f.FromCount)), "reply_to": cty.StringVal(f.ReplyTo),
		"subject": cty.StringVal(f.Subject), "message_id": cty.StringVal(f.MessageID),
		"score": cty.NumberFloatVal(score), "findings": strList(tags), "files": filesVal,
		"auth": cty.ObjectVal(map[string]cty.Value{
			"spf": cty.StringVal(f.Auth.SPF), "helo": cty.StringVal(f.Auth.HELO),
			"dkim": cty.StringVal(f.Auth.DKIM), "dkim_domains": strList(f.Auth.DKIMDomains),
			"dmarc": cty.StringVal(f.Auth.DMARC), "dmarc_policy": cty.StringVal(f.Auth.DMARCPolicy),
			"forwarder": cty.BoolVal(f.Auth.Forwarder),
		}),
		"mime": cty.ObjectVal(map[string]cty.Value{
			"malformed": cty.BoolVal(malformed), "ambiguous": cty.BoolVal(ambiguous),
		}),
		"thread": cty.ObjectVal(map[string]cty.Value{
			"known": cty.BoolVal(f.Thread.Known), "first_contact": cty.BoolVal(f.Thread.FirstContact),
			"exchanges":         cty.NumberIntVal(int64(f.Thread.Exchanges)),
			"relationship_days": cty.NumberFloatVal(f.Thread.RelationshipDays),
			"silence_days":      cty.NumberFloatVal(f.Thread.SilenceDays),
			"password_pending":  cty.BoolVal(f.Thread.PasswordPending),
			"archive_pending":   cty.BoolVal(f.Thread.ArchivePending),
		}),
		"reputation": cty.ObjectVal(map[string]cty.Value{
			"ip_score": cty.NumberFloatVal(f.Reputation.IPScore), "ip_listed": strList(f.Reputation.IPListed),
			"urls": cty.NumberIntVal(int64(f.Reputation.URLs)), "url_domains": cty.NumberIntVal(int64(f.Reputation.URLDomains)),
			"mismatches": cty.NumberIntVal(int64(f.Reputation.Mismatches)), "ip_literals": cty.NumberIntVal(int64(f.Reputation.IPLiterals)),
			"shorteners": cty.NumberIntVal(int64(f.Reputation.Shorteners)), "url_listed": strList(f.Reputation.URLListed),
		}),
		"sandbox": cty.ObjectVal(map[string]cty.Value{
			"configured": cty.BoolVal(f.Sandbox.Configured), "candidates": cty.NumberIntVal(int64(f.Sandbox.Candidates)),
			"unjudged": cty.NumberIntVal(int64(f.Sandbox.Unjudged)), "malscore": cty.NumberFloatVal(f.Sandbox.Malscore),
			"timed_out": cty.BoolVal(f.Sandbox.TimedOut),
		}),
		"lists": cty.ObjectVal(map[string]cty.Value{
			"sender_allowed": cty.BoolVal(lf.senderAllowed), "sender_blocked": cty.BoolVal(lf.senderBlocked),
			"ip_allowed": cty.BoolVal(lf.ipAllowed), "ip_blocked": cty.BoolVal(lf.ipBlocked),
			"sha256_blocked": cty.BoolVal(lf.shaBlocked), "trap": cty.BoolVal(lf.trap),
		}),
	}
}

// probeContext evaluates `when` at load time: one of everything, so that
// expressions over lists (for f in files) are type-checked too.
func probeContext() *hcl.EvalContext {
	f := &Facts{
		Direction: "inbound", ClientIP: netip.MustParseAddr("192.0.2.1"), Rcpts: []string{"probe@example.com"},
		From:       Address{Name: "Probe", Addr: "probe@example.com"},
		Files:      []FileFacts{{Name: "probe.txt", Findings: []string{"clean"}, YARA: []string{"probe"}}},
		Auth:       AuthFacts{DKIMDomains: []string{"example.com"}},
		Reputation: ReputationFacts{IPListed: []string{"probe.example"}, URLListed: []string{"probe.example"}},
	}
	return &hcl.EvalContext{Variables: variables(f, listFacts{groups: []string{"probe"}}, 0), Functions: whenFunctions(map[string]bool{})}
}

// VariableNames lists the top-level names a `when` expression can use.
func VariableNames() []string {
	var out []string
	for k := range probeContext().Variables {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
