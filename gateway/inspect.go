package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/mailguard/mailguard/attach"
	"github.com/mailguard/mailguard/auth"
	"github.com/mailguard/mailguard/policy"
	"github.com/mailguard/mailguard/reason"
	"github.com/mailguard/mailguard/scan"
)

// Envelope is what inspection knows about a message's transport.
type Envelope struct {
	ID        string
	Direction string // "inbound", "outbound", "internal"
	ClientIP  netip.Addr
	HELO      string
	MailFrom  string
	Rcpts     []string
	Received  time.Time
}

// InspectOptions adjust one inspection.
type InspectOptions struct {
	// Offline inspects without side effects: nothing is recorded in the
	// conversation store and nothing is submitted to the sandbox (scan).
	Offline bool
	// Passwords are extra candidates (an operator's unlock).
	Passwords []attach.Password
	// HoldUntil is the hold deadline of a message already held; when it has
	// passed, the sandbox and password waits count as timed out.
	HoldUntil time.Time
}

// Report is the decision with everything that explains it: the JSON of
// `mailguard scan --json` and `quarantine show --json` (DESIGN.md contract:
// action, reasons, score, auth, files).
type Report struct {
	ID          string               `json:"id,omitempty"`
	Action      policy.Action        `json:"action"`
	Reasons     []reason.Tag         `json:"reasons"`
	Score       float64              `json:"score"`
	Rule        string               `json:"rule,omitempty"`
	Explain     []policy.Explanation `json:"explain"`
	Direction   string               `json:"direction"`
	Envelope    ReportEnvelope       `json:"envelope"`
	Header      attach.Header        `json:"header"`
	Auth        *auth.Results        `json:"auth"`
	Files       []*attach.File       `json:"files"`
	Findings    []reason.Finding     `json:"findings"`
	Sandbox     []SandboxFile        `json:"sandbox,omitempty"`
	Reputation  *ReputationReport    `json:"reputation,omitempty"`
	Complete    bool                 `json:"complete"`
	Errors      []string             `json:"errors,omitempty"`
	InspectedAt time.Time            `json:"inspected_at"`
	TookMS      int64                `json:"took_ms"`
	// SubjectPrefix is prepended to the Subject at delivery when set.
	SubjectPrefix string `json:"subject_prefix,omitempty"`
	// ForgedAuthResults counts incoming Authentication-Results fields that
	// claimed our authserv-id; they are removed at delivery.
	ForgedAuthResults int `json:"forged_auth_results,omitempty"`
	// HoldUntil is the hold deadline when the action is hold.
	HoldUntil time.Time `json:"hold_until,omitzero"`

	facts *policy.Facts
	// submitted are the files this inspection queued for the sandbox;
	// their events are written once the decision is durable.
	submitted []string
	walk      *attach.Result
	yara      map[string][]string // rule names per file path
	thread    *threadState        // what the conversation stage learned (thread.go)
}

// ReportEnvelope is the envelope part of a report.
type ReportEnvelope struct {
	MailFrom string   `json:"mail_from"`
	Rcpts    []string `json:"rcpts"`
	ClientIP string   `json:"client_ip,omitempty"`
	HELO     string   `json:"helo,omitempty"`
}

// Close releases the files extracted during inspection.
func (r *Report) Close() error {
	if r == nil || r.walk == nil {
		return nil
	}
	return r.walk.Close()
}

// Inspect runs every stage over one message and decides. It is the only
// code path: serve calls it during DATA, scan on a file, Resume and the
// hold loop on stored messages. An error means mailguard itself failed
// (the policy's on_error applies); hostile input is a finding, never an error.
func (g *Gateway) Inspect(ctx context.Context, env Envelope, msg io.ReaderAt, size int64, opt InspectOptions) (rep *Report, err error) {
	st := g.stage.Load()
	p := st.pol
	start := g.now()
	ctx, cancel := context.WithTimeout(ctx, p.Limits.Inspect)
	defer cancel()
	select {
	case g.inspectSem <- struct{}{}:
		defer func() { <-g.inspectSem }()
	case <-ctx.Done():
		return nil, fmt.Errorf("inspect: waiting for a slot: %w", ctx.Err())
	}
	defer func() {
		if r := recover(); r != nil {
			metricPanics.WithLabelValues("gateway").Inc()
			g.log.Error("panic in inspection", "msg_id", env.ID, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			if rep != nil {
				rep.Close()
			}
			rep, err = nil, fmt.Errorf("inspect: panic: %v", r)
		}
	}()
	rep = &Report{ID: env.ID, Direction: env.Direction, Files: []*attach.File{}, Complete: true,
		Envelope: ReportEnvelope{MailFrom: env.MailFrom, Rcpts: env.Rcpts, HELO: env.HELO}}
	if env.ClientIP.IsValid() {
		rep.Envelope.ClientIP = env.ClientIP.Unmap().String()
	}
	facts := &policy.Facts{Direction: env.Direction, ClientIP: env.ClientIP, HELO: env.HELO,
		MailFrom: env.MailFrom, Rcpts: env.Rcpts, Size: size}
	rep.facts = facts

	if err := g.stageAuth(ctx, st, env, msg, size, rep); err != nil {
		return nil, err
	}
	if err := g.stageAttach(ctx, st, msg, size, opt, rep); err != nil {
		rep.Close()
		return nil, err
	}
	if err := g.stageThread(ctx, st, env, msg, size, opt, rep); err != nil {
		rep.Close()
		return nil, err
	}
	if err := g.stageYARA(ctx, st, rep); err != nil {
		rep.Close()
		return nil, err
	}
	g.stageReputation(ctx, st, env, rep)
	if err := g.stageSandbox(ctx, st, opt, rep); err != nil {
		rep.Close()
		return nil, err
	}
	if ctx.Err() != nil {
		rep.Close()
		return nil, fmt.Errorf("inspect: %w", ctx.Err())
	}
	g.decide(st, opt, rep)
	rep.InspectedAt = g.now().UTC()
	rep.TookMS = g.now().Sub(start).Milliseconds()
	return rep, nil
}

// stageAuth verifies SPF, DKIM and DMARC for inbound mail.
func (g *Gateway) stageAuth(ctx context.Context, st *stages, env Envelope, msg io.ReaderAt, size int64, rep *Report) error {
	p := st.pol
	if env.Direction != "inbound" || !*p.Auth.Enabled {
		return nil
	}
	t := g.now()
	res := st.auth.Verify(ctx, auth.Input{ClientIP: env.ClientIP, HELO: env.HELO, MailFrom: env.MailFrom,
		Message: io.NewSectionReader(msg, 0, size)})
	metricStage.WithLabelValues("auth").Observe(g.now().Sub(t).Seconds())
	forwarder := inPrefixes(p.Auth.Forwarders, env.ClientIP)
	for _, f := range res.Findings() {
		if forwarder && (f.Tag == reason.SPFFail || f.Tag == reason.SPFSoftfail) {
			continue // trusted forwarders break SPF by design
		}
		rep.facts.Findings = append(rep.facts.Findings, f)
	}
	rep.Auth = &res
	rep.facts.Auth = authFacts(res, forwarder)
	hdr, err := readHeader(msg, size)
	if err != nil {
		return fmt.Errorf("inspect: header: %w", err)
	}
	if _, n := auth.StripAuthResults(hdr, p.Gateway.Hostname); n > 0 {
		rep.ForgedAuthResults = n
		rep.facts.Findings = append(rep.facts.Findings, reason.Finding{Tag: reason.ForgedAuthResults,
			Detail: fmt.Sprintf("%d Authentication-Results field(s) claiming %s removed", n, p.Gateway.Hostname)})
	}
	return nil
}

func authFacts(r auth.Results, forwarder bool) policy.AuthFacts {
	a := policy.AuthFacts{SPF: string(r.SPF.Status), HELO: string(r.HELO.Status), DKIM: "none",
		DMARC: string(r.DMARC.Status), DMARCPolicy: string(r.DMARC.Policy), Forwarder: forwarder}
	for _, d := range r.DKIM {
		switch {
		case d.Status == auth.DKIMPass:
			a.DKIM = "pass"
			a.DKIMDomains = append(a.DKIMDomains, d.Domain)
		case a.DKIM != "pass":
			a.DKIM = string(d.Status)
		}
	}
	return a
}

// stageAttach walks the MIME tree and every container in it.
func (g *Gateway) stageAttach(ctx context.Context, st *stages, msg io.ReaderAt, size int64, opt InspectOptions, rep *Report) error {
	p := st.pol
	t := g.now()
	var pws []attach.Password
	pws = append(pws, opt.Passwords...)
	for _, pw := range p.Archive.Passwords {
		pws = append(pws, attach.Password{Value: pw, Source: attach.SourcePolicy})
	}
	tmp := filepath.Join(p.Store.Path, "tmp")
	if err := os.MkdirAll(tmp, 0o750); err != nil {
		tmp = ""
	}
	res, err := attach.Walk(ctx, msg, size, attach.Options{Limits: st.limits, Passwords: pws, TempDir: tmp})
	metricStage.WithLabelValues("attach").Observe(g.now().Sub(t).Seconds())
	if err != nil {
		return fmt.Errorf("inspect: attachments: %w", err)
	}
	rep.walk = res
	rep.Header = res.Header
	rep.Files = res.Files
	if rep.Files == nil {
		rep.Files = []*attach.File{}
	}
	rep.Complete = res.Complete
	f := rep.facts
	if len(res.Header.From) > 0 {
		f.From = policy.Address{Name: res.Header.From[0].Name, Addr: res.Header.From[0].Addr}
	}
	f.FromCount = len(res.Header.From)
	if len(res.Header.ReplyTo) > 0 {
		f.ReplyTo = res.Header.ReplyTo[0].Addr
	}
	f.Subject, f.MessageID = res.Header.Subject, res.Header.MessageID
	f.Findings = append(f.Findings, res.AllFindings()...)
	return nil
}

// stageYARA scans every extracted file and every body part.
func (g *Gateway) stageYARA(ctx context.Context, st *stages, rep *Report) error {
	if st.yara == nil {
		return nil
	}
	t := g.now()
	defer func() { metricStage.WithLabelValues("yara").Observe(g.now().Sub(t).Seconds()) }()
	scanOne := func(f *attach.File) ([]scan.Match, error) {
		ra, n, err := f.ReaderAt()
		if errors.Is(err, attach.ErrNoContent) {
			return nil, nil // a locked entry: nothing to scan, already a finding
		}
		if err != nil {
			return nil, err
		}
		return st.yara.Scan(ctx, ra, n, scan.Vars{Filename: f.Name, Filepath: f.Path, Filetype: f.Type,
			Extension: strings.TrimPrefix(strings.ToLower(path.Ext(f.Name)), ".")})
	}
	for _, f := range append(append([]*attach.File(nil), rep.Files...), rep.walk.Bodies...) {
		matches, err := scanOne(f)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("inspect: yara: %w", ctx.Err())
			}
			// A scan that failed (timeout on one huge file) leaves the file
			// not fully inspected: say so rather than pass it as clean.
			rep.Errors = append(rep.Errors, fmt.Sprintf("yara %s: %v", f.Path, err))
			fd := reason.Finding{Tag: reason.MalformedMIME, Detail: "YARA could not scan this file: " + err.Error(), Path: f.Path}
			f.Findings = append(f.Findings, fd)
			rep.facts.Findings = append(rep.facts.Findings, fd)
			continue
		}
		if fd, ok := scan.Finding(matches, f.Path); ok {
			f.Findings = append(f.Findings, fd)
			rep.facts.Findings = append(rep.facts.Findings, fd)
			for _, m := range matches {
				rep.yaraNames(f.Path, m.Name())
			}
		}
	}
	return nil
}

// yaraNames remembers rule names per file for the rules' files[*].yara.
func (r *Report) yaraNames(path, name string) {
	if r.yara == nil {
		r.yara = map[string][]string{}
	}
	r.yara[path] = append(r.yara[path], name)
}

// decide runs the policy over the facts and applies the gateway's own
// safety nets.
func (g *Gateway) decide(st *stages, opt InspectOptions, rep *Report) {
	f := rep.facts
	for _, file := range rep.Files {
		ff := policy.FileFacts{Path: file.Path, Name: file.Name, Type: file.Type, Size: file.Size,
			SHA256: file.SHA256, Depth: file.Depth, Encrypted: file.Encrypted, Decrypted: file.Decrypted,
			PasswordSource: string(file.PasswordSource), Derived: file.Derived, YARA: rep.yara[file.Path]}
		for _, fd := range file.Findings {
			ff.Findings = append(ff.Findings, string(fd.Tag))
		}
		f.Files = append(f.Files, ff)
	}
	d := st.pol.Evaluate(f)
	rep.Action, rep.Reasons, rep.Score, rep.Rule, rep.Explain = d.Action, d.Reasons, d.Score, d.Rule, d.Explain
	rep.SubjectPrefix = d.SubjectPrefix
	rep.Findings = f.Findings
	if rep.Findings == nil {
		rep.Findings = []reason.Finding{}
	}
	if rep.Explain == nil {
		rep.Explain = []policy.Explanation{} // [] like files and findings, never null
	}
	for _, e := range d.Errors {
		rep.Errors = append(rep.Errors, e)
		g.log.Error("rule failed", "msg_id", rep.ID, "err", e)
	}
	if rep.Action == policy.Hold {
		rep.HoldUntil = opt.HoldUntil
		if rep.HoldUntil.IsZero() {
			rep.HoldUntil = g.now().Add(g.holdDuration(st.pol, f))
		} else if !g.now().Before(rep.HoldUntil) {
			// Past the deadline and the policy would still wait: fail closed.
			rep.Action = policy.Quarantine
			rep.Explain = append(rep.Explain, policy.Explanation{Reason: reason.SandboxTimeout, Rule: "hold-deadline",
				Detail: "the hold deadline passed and the policy still asked to hold"})
			rep.Reasons = appendTag(rep.Reasons, reason.SandboxTimeout)
		}
	}
}

// holdDuration is how long a newly held message may wait.
func (g *Gateway) holdDuration(p *policy.Policy, f *policy.Facts) time.Duration {
	d := time.Duration(0)
	if s := p.Sandbox(); s != nil && f.Sandbox.Unjudged > 0 {
		d = s.Hold
	}
	if (f.Thread.PasswordPending || f.Thread.ArchivePending) && p.Conversations.Window > d {
		d = p.Conversations.Window
	}
	if d == 0 {
		d = policy.DefaultSandboxHold
	}
	return d
}

func appendTag(tags []reason.Tag, t reason.Tag) []reason.Tag {
	for _, x := range tags {
		if x == t {
			return tags
		}
	}
	if len(tags) == 1 && tags[0] == reason.Clean {
		return []reason.Tag{t}
	}
	return append(tags, t)
}

func inPrefixes(ps []netip.Prefix, ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	ip = ip.Unmap()
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Direction classifies a message as serve's relay control does: from an
// internal network to any non-local domain it is outbound, from an internal
// network to local domains only it is internal, otherwise inbound.
func Direction(p *policy.Policy, ip netip.Addr, rcpts []string) string {
	if !inPrefixes(p.Gateway.InternalPrefixes, ip) {
		return "inbound"
	}
	for _, r := range rcpts {
		local := false
		for _, d := range p.Gateway.LocalDomains {
			if strings.EqualFold(domainPart(r), d) {
				local = true
			}
		}
		if !local {
			return "outbound"
		}
	}
	return "internal"
}

func domainPart(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return strings.TrimSuffix(addr[i+1:], ".")
	}
	return ""
}
