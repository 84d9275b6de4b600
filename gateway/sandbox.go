package gateway

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mailguard/mailguard/attach"
	"github.com/mailguard/mailguard/policy"
	"github.com/mailguard/mailguard/reason"
	"github.com/mailguard/mailguard/sandbox"
	"github.com/mailguard/mailguard/sandbox/cape"
	"github.com/mailguard/mailguard/store"
)

// SandboxFile is the sandbox state of one file in a report.
type SandboxFile struct {
	Path       string   `json:"path"`
	SHA256     string   `json:"sha256"`
	TaskID     string   `json:"task_id,omitempty"`
	State      string   `json:"state"` // pending, done, error, timeout
	Malscore   float64  `json:"malscore"`
	Malstatus  string   `json:"malstatus,omitempty"`
	Family     string   `json:"family,omitempty"`
	Signatures []string `json:"signatures,omitempty"`
}

// fileClasses are the sandbox submission classes (policy sandbox.submit)
// a file belongs to.
func fileClasses(f *attach.File) map[string]bool {
	c := map[string]bool{"all": true}
	for _, fd := range f.Findings {
		switch fd.Tag {
		case reason.ExecAttachment:
			c["executable"], c["script"] = true, true
		case reason.MacroDocument, reason.RemoteTemplate, reason.ExploitObject:
			c["macro_document"] = true
		case reason.PDFActiveContent:
			c["pdf_active"] = true
		case reason.HTMLSmuggling:
			c["html_smuggling"] = true
		case reason.LNKInContainer:
			c["lnk"] = true
		case reason.OneNoteEmbeddedFile:
			c["onenote"] = true
		}
	}
	t := f.Type
	switch {
	case t == "application/x-ms-shortcut":
		c["lnk"] = true
	case t == "application/onenote":
		c["onenote"] = true
	case t == "application/pdf":
		c["pdf"] = true
	case strings.Contains(t, "officedocument") || strings.Contains(t, "msword") || strings.Contains(t, "ms-excel") ||
		strings.Contains(t, "ms-powerpoint") || strings.Contains(t, "x-ole-storage") || strings.Contains(t, "rtf"):
		c["office"] = true
	case strings.Contains(t, "zip") || strings.Contains(t, "7z") || strings.Contains(t, "rar") ||
		strings.Contains(t, "tar") || strings.Contains(t, "iso9660") || strings.Contains(t, "cab"):
		c["archive"] = true
	}
	return c
}

// sandboxCandidates are the files the policy's submit classes select.
// Derived files (decompressed VBA source) are not samples: their document
// is. Files whose content could not be extracted whole cannot be submitted.
func sandboxCandidates(p *policy.Policy, files []*attach.File, firstContact bool) []*attach.File {
	s := p.Sandbox()
	if s == nil {
		return nil
	}
	var out []*attach.File
	seen := map[string]bool{}
	for _, f := range files {
		if f.Derived || f.Size == 0 || f.SHA256 == "" || (f.Encrypted && !f.Decrypted) || f.Truncated || seen[f.SHA256] {
			continue
		}
		cl := fileClasses(f)
		for _, want := range s.Submit {
			if cl[want] || want == "first_contact" && firstContact && f.Depth == 0 {
				out = append(out, f)
				seen[f.SHA256] = true
				break
			}
		}
	}
	return out
}

// newSandbox builds the scheduler for the policy's sandbox, or nil.
func (g *Gateway) newSandbox(p *policy.Policy) (*sandbox.Scheduler, error) {
	s := p.Sandbox()
	if s == nil || g.sbStore == nil {
		return nil, nil
	}
	client, err := cape.New(cape.Config{URL: s.URL, Token: s.Token, InsecureSkipVerify: s.TLSSkipVerify,
		RequestsPerMinute: float64(s.RequestsPerMinute), MaxConcurrent: s.MaxConcurrent,
		Defaults: cape.Submission{Timeout: int(s.Analysis.Seconds())}})
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	budget := pollBudget(s.RequestsPerMinute)
	return sandbox.New(sandbox.Config{
		Client: client, Store: g.sbStore, Search: *s.SearchFirst, VerdictTTL: s.TTL,
		MaxInFlight: s.MaxConcurrent, MaxWait: s.Hold, Now: g.now, Log: g.log,
		RequestsPerSecond: budget, Burst: pollBurst(budget),
		Backoff: sandboxBackoff(s.Poll), OnVerdict: g.onVerdict,
		Reopen: func(ctx context.Context, t sandbox.Task) (io.ReadCloser, error) {
			return g.st.OpenBlob(ctx, t.SHA256)
		},
	})
}

// sandboxBackoff derives the scheduler's delays from sandbox.poll_interval
// (docs/policy.md): the first poll after it, later polls from a quarter of
// it up to twice it, the first retry after a failure after it or 10s,
// whichever is shorter. The default of 60s gives the scheduler's defaults.
func sandboxBackoff(poll time.Duration) sandbox.Backoff {
	if poll <= 0 {
		poll = policy.DefaultSandboxPoll
	}
	return sandbox.Backoff{FirstPoll: poll, Poll: poll / 4, PollMax: 2 * poll, Retry: min(poll, 10*time.Second)}
}

// schedulerBudget and schedulerBurst are sandbox.Config's defaults of
// RequestsPerSecond and Burst.
const (
	schedulerBudget = 5
	schedulerBurst  = 10
)

// pollBudget is the scheduler's budget of task operations per second: its
// default, or the wire limit (requests_per_minute) when that allows more,
// so that the budget is never what slows polling below the wire limit.
func pollBudget(rpm int) float64 {
	return max(schedulerBudget, float64(rpm)/60)
}

// pollBurst is the budget's burst: a poll cycle (one a second) claims at
// most the burst, so it is a second's worth of budget, never less than the
// scheduler's default; otherwise a budget above 10/s is never used.
func pollBurst(budget float64) int {
	return int(max(schedulerBurst, budget))
}

// onVerdict queues the re-decision of every held message with that file.
func (g *Gateway) onVerdict(key string, v sandbox.Verdict) {
	ctx := context.Background()
	held, err := g.st.List(ctx, store.Filter{States: []store.State{store.Held}, SHA256: v.SHA256})
	if err != nil {
		g.log.Error("sandbox verdict: find held messages", "sha256", v.SHA256, "err", err)
		return
	}
	g.log.Info("sandbox verdict", "sha256", v.SHA256, "task_id", v.TaskID, "state", v.State,
		"malscore", v.Malscore, "messages", len(held))
	for _, m := range held {
		ms := v.Malscore
		g.events.Write(Event{Event: "sandbox_verdict", MsgID: m.ID, SHA256: []string{v.SHA256},
			TaskID: string(v.TaskID), Malscore: &ms, Detail: v.State})
		g.Recheck(m.ID)
	}
}

// stageSandbox asks the sandbox about the candidate files and turns the
// verdicts into facts: malware_sandbox at or above the malscore threshold,
// and how many candidates still wait. Without a scheduler (scan, offline)
// only cached verdicts are read.
func (g *Gateway) stageSandbox(ctx context.Context, st *stages, opt InspectOptions, rep *Report) error {
	p := st.pol
	s := p.Sandbox()
	if s == nil {
		return nil
	}
	firstContact := false
	for _, f := range rep.facts.Findings {
		if f.Tag == reason.FirstContactAttachment {
			firstContact = true
		}
	}
	cands := sandboxCandidates(p, rep.Files, firstContact)
	sf := &rep.facts.Sandbox
	sf.Configured = true
	sf.Candidates = len(cands)
	sf.TimedOut = !opt.HoldUntil.IsZero() && !g.now().Before(opt.HoldUntil)
	verdicts, err := g.sandboxVerdicts(ctx, st, opt, rep, cands)
	if err != nil {
		return err
	}
	for i, f := range cands {
		v := verdicts[i]
		rep.Sandbox = append(rep.Sandbox, v)
		if v.State != sandbox.StateDone {
			sf.Unjudged++
			continue
		}
		sf.Malscore = max(sf.Malscore, v.Malscore)
		if v.Malscore >= s.MalscoreThreshold {
			fd := reason.Finding{Tag: reason.MalwareSandbox, Path: f.Path,
				Detail: fmt.Sprintf("sandbox task %s: malscore %.1f %s %s", v.TaskID, v.Malscore, v.Malstatus, v.Family)}
			f.Findings = append(f.Findings, fd)
			rep.facts.Findings = append(rep.facts.Findings, fd)
		}
	}
	return nil
}

func (g *Gateway) sandboxVerdicts(ctx context.Context, st *stages, opt InspectOptions, rep *Report, cands []*attach.File) ([]SandboxFile, error) {
	out := make([]SandboxFile, len(cands))
	for i, f := range cands {
		out[i] = SandboxFile{Path: f.Path, SHA256: f.SHA256, State: "pending"}
	}
	if len(cands) == 0 {
		return out, nil
	}
	set := func(i int, v sandbox.Verdict) {
		out[i].State, out[i].TaskID, out[i].Malscore, out[i].Malstatus = v.State, string(v.TaskID), v.Malscore, v.Malstatus
		out[i].Family, out[i].Signatures = v.Family, v.Signatures
	}
	sched := st.sched
	if opt.Offline || sched == nil {
		if g.sbStore == nil {
			return out, nil
		}
		for i, f := range cands {
			if v, ok, err := g.sbStore.GetVerdict(ctx, sandbox.Key(f.SHA256, nil), g.now()); err == nil && ok {
				set(i, v)
			}
		}
		return out, nil
	}
	files := make([]sandbox.File, len(cands))
	for i, f := range cands {
		if err := g.keepBlob(ctx, f); err != nil {
			return nil, err
		}
		sum := f.SHA256
		files[i] = sandbox.File{SHA256: sum, Name: f.Name, Type: f.Type, Size: f.Size, Ref: rep.ID + " " + f.Path,
			Open: func() (io.ReadCloser, error) { return g.st.OpenBlob(context.Background(), sum) }}
	}
	t := g.now()
	results, err := sched.Schedule(ctx, files)
	metricStage.WithLabelValues("sandbox").Observe(g.now().Sub(t).Seconds())
	if err != nil {
		return nil, fmt.Errorf("inspect: sandbox: %w", err)
	}
	for i, r := range results {
		out[i].TaskID = string(r.TaskID)
		if r.Cached {
			set(i, r.Verdict)
			continue
		}
		if !r.Joined {
			rep.submitted = append(rep.submitted, r.SHA256)
		}
	}
	return out, nil
}

// keepBlob stores a candidate's bytes durably, so the sandbox can upload
// them after the inspection (and after a restart).
func (g *Gateway) keepBlob(ctx context.Context, f *attach.File) error {
	r, err := f.Open()
	if err != nil {
		return fmt.Errorf("inspect: read %s: %w", f.Path, err)
	}
	defer r.Close()
	if err := g.st.PutBlob(ctx, f.SHA256, r); err != nil {
		return fmt.Errorf("inspect: keep %s: %w", f.Path, err)
	}
	return nil
}
