package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mailguard/mailguard/reason"
	"github.com/mailguard/mailguard/store"
)

// shown is everything `quarantine show` prints about one message.
type shown struct {
	m       *store.Message
	audits  []store.Audit
	pending []pendingTask // held: the files it waits for
	content bool          // the spool bytes are still kept
	now     time.Time
}

func qShow(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("quarantine show", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := configFlag(fs)
	asJSON := fs.Bool("json", false, "print the decision JSON")
	ids, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(ids) != 1 {
		return usageError("show takes one message ID")
	}
	_, st, err := openStore(*cfg, stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	sh, err := loadShown(context.Background(), st, ids[0])
	if err != nil {
		return err
	}
	if *asJSON {
		return showJSON(stdout, sh)
	}
	showText(stdout, sh)
	return nil
}

func loadShown(ctx context.Context, st backend, id string) (*shown, error) {
	m, err := st.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	audits, err := st.Audits(ctx, m.ID)
	if err != nil {
		return nil, err
	}
	sh := &shown{m: m, audits: audits, now: time.Now()}
	if m.State == store.Held {
		sh.pending = pendingTasks(ctx, m, sh.now, st.Sandbox())
	}
	f, err := st.Open(ctx, m.ID)
	switch {
	case err == nil:
		sh.content = true
		f.Close()
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	return sh, nil
}

// showJSON prints the stored decision report with the message's current
// state, whether its bytes are kept, what a held message waits for and
// the audit trail added.
func showJSON(w io.Writer, sh *shown) error {
	m := sh.m
	doc := map[string]any{}
	if len(m.Decision) > 0 {
		if err := json.Unmarshal(m.Decision, &doc); err != nil {
			return fmt.Errorf("stored decision of %s: %w", m.ID, err)
		}
	}
	doc["id"] = m.ID
	doc["state"] = m.State
	doc["message_id"] = m.MessageID
	doc["received_at"] = m.ReceivedAt.UTC()
	doc["state_at"] = m.StateAt.UTC()
	doc["content_kept"] = sh.content
	if sh.pending != nil {
		doc["sandbox_pending"] = sh.pending
	}
	audits := sh.audits
	if audits == nil {
		audits = []store.Audit{}
	}
	doc["audit"] = audits
	for _, k := range []string{"action", "reasons", "score"} {
		if _, ok := doc[k]; !ok {
			doc[k] = map[string]any{"action": m.Action, "reasons": orEmpty(m.Reasons), "score": m.Score}[k]
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

// storedReport is the part of a stored decision report the text view
// prints.
type storedReport struct {
	Rule    string `json:"rule"`
	Explain []struct {
		Reason, Rule, Detail, Path string
	} `json:"explain"`
	Auth *struct {
		SPF   struct{ Status, Domain string } `json:"spf"`
		DKIM  []struct{ Status, Domain, Selector string }
		DMARC struct {
			Status     string
			HeaderFrom string `json:"header_from"`
			Policy     string
		} `json:"dmarc"`
	} `json:"auth"`
	Files []struct {
		Path, Type, SHA256 string
		Size               int64
		Depth              int
		Encrypted          bool
		Decrypted          bool
		PasswordSource     string `json:"password_source"`
		Findings           []reason.Finding
	} `json:"files"`
	Findings []reason.Finding `json:"findings"`
	storedSandbox
	Errors []string `json:"errors"`
}

// showText is the view for people. Everything that came from the message
// goes through safe: a subject must not drive the operator's terminal.
func showText(w io.Writer, sh *shown) {
	m := sh.m
	var rep storedReport
	if len(m.Decision) > 0 {
		json.Unmarshal(m.Decision, &rep) // a report that does not parse shows what the row has
	}
	fmt.Fprintf(w, "ID:          %s\nState:       %s (since %s)\n", m.ID, m.State, m.StateAt.Local().Format(time.RFC3339))
	fmt.Fprintf(w, "Received:    %s from %s (helo %s), %s, %d bytes\n", m.ReceivedAt.Local().Format(time.RFC3339),
		m.ClientIP, safe(m.HELO), m.Direction, m.Size)
	fmt.Fprintf(w, "Envelope:    %s → %s\nFrom:        %s\nSubject:     %s\nMessage-ID:  %s\n",
		safe(orDash(m.MailFrom)), safe(strings.Join(m.Rcpts, ", ")), safe(m.From), safe(m.Subject), safe(m.MessageID))
	if !sh.content {
		fmt.Fprintln(w, "Content:     not kept (deleted, or past its retention)")
	}
	fmt.Fprintf(w, "Decision:    %s (score %g)", m.Action, m.Score)
	if rep.Rule != "" {
		fmt.Fprintf(w, " by rule %s", safe(rep.Rule))
	}
	fmt.Fprintln(w)
	if m.State == store.Held {
		fmt.Fprintf(w, "Hold until:  %s (waiting %s)\n", m.HoldUntil.Local().Format(time.RFC3339), fmtAge(max(sh.now.Sub(m.ReceivedAt), 0)))
	}
	if a := rep.Auth; a != nil {
		fmt.Fprintf(w, "Auth:        spf=%s (%s) dmarc=%s (%s, policy %s)", a.SPF.Status, safe(orDash(a.SPF.Domain)),
			a.DMARC.Status, safe(orDash(a.DMARC.HeaderFrom)), orDash(a.DMARC.Policy))
		for _, d := range a.DKIM {
			fmt.Fprintf(w, " dkim=%s (%s/%s)", d.Status, safe(d.Domain), safe(d.Selector))
		}
		fmt.Fprintln(w)
	}
	showReasons(w, &rep, m.Reasons)
	showFiles(w, &rep)
	showYARA(w, &rep)
	showSandbox(w, &rep, sh)
	for _, e := range rep.Errors {
		fmt.Fprintf(w, "Error:       %s\n", safe(e))
	}
	showAudit(w, sh.audits)
}

func showReasons(w io.Writer, rep *storedReport, tags []string) {
	fmt.Fprintln(w, "Reasons:")
	if len(rep.Explain) == 0 {
		fmt.Fprintln(w, "  "+safe(orDash(strings.Join(tags, ", "))))
	}
	for _, e := range rep.Explain {
		line := "  " + e.Reason
		if e.Path != "" {
			line += " [" + e.Path + "]"
		}
		if e.Detail != "" {
			line += ": " + e.Detail
		}
		if e.Rule != "" {
			line += "  (rule " + e.Rule + ")"
		}
		fmt.Fprintln(w, safe(line))
	}
}

func showFiles(w io.Writer, rep *storedReport) {
	if len(rep.Files) > 0 {
		fmt.Fprintln(w, "Files:")
	}
	for _, f := range rep.Files {
		indent := strings.Repeat("  ", max(0, min(f.Depth, 10)))
		line := fmt.Sprintf("  %s%s  %s  %d bytes  %s", indent, clip(f.Path, 80), safe(f.Type), f.Size, f.SHA256)
		if f.Encrypted {
			line += "  encrypted"
			if f.Decrypted {
				line += " (decrypted, " + safe(f.PasswordSource) + " password)"
			}
		}
		fmt.Fprintln(w, line)
		for _, fd := range f.Findings {
			fmt.Fprintf(w, "  %s    %s: %s\n", indent, fd.Tag, safe(fd.Detail))
		}
	}
}

// showYARA lists the YARA matches, files and body parts alike, one line
// per scanned object with the rules that matched it.
func showYARA(w io.Writer, rep *storedReport) {
	var lines []string
	for _, fd := range rep.Findings {
		if fd.Tag != reason.MalwareYARA {
			continue
		}
		rules := strings.TrimPrefix(fd.Detail, "yara: ")
		lines = append(lines, fmt.Sprintf("  %s: %s", clip(orDash(fd.Path), 80), safe(rules)))
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintln(w, "YARA matches:")
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
}

// showSandbox lists every file sent to the sandbox with its verdict, and
// for a held message the live state of what it still waits for.
func showSandbox(w io.Writer, rep *storedReport, sh *shown) {
	if len(rep.Sandbox) == 0 {
		return
	}
	fmt.Fprintln(w, "Sandbox:")
	live := map[string]pendingTask{}
	for _, pt := range sh.pending {
		live[pt.SHA256] = pt
	}
	for _, f := range rep.Sandbox {
		if pt, ok := live[f.SHA256]; ok && f.State == "pending" {
			fmt.Fprintf(w, "  %s\n", strings.TrimPrefix(pendingLine(pt, sh.now), "sandbox: "))
			continue
		}
		line := fmt.Sprintf("  %s  %s", clip(f.Path, 60), f.State)
		if f.TaskID != "" {
			line += "  task " + safe(f.TaskID)
		}
		if f.State == "done" {
			line += fmt.Sprintf("  malscore %.1f", f.Malscore)
			if f.Malstatus != "" {
				line += " " + safe(f.Malstatus)
			}
			if f.Family != "" {
				line += "  family " + safe(f.Family)
			}
		}
		fmt.Fprintln(w, line)
		if len(f.Signatures) > 0 {
			fmt.Fprintf(w, "      signatures: %s\n", clip(strings.Join(f.Signatures, ", "), 200))
		}
	}
}

func showAudit(w io.Writer, audits []store.Audit) {
	if len(audits) > 0 {
		fmt.Fprintln(w, "Audit:")
	}
	for _, a := range audits {
		line := fmt.Sprintf("  %s  %s  %s", a.At.Local().Format(time.RFC3339), a.Actor, a.Action)
		if a.Detail != "" {
			line += " (" + a.Detail + ")"
		}
		if a.Note != "" {
			line += ": " + a.Note
		}
		fmt.Fprintln(w, safe(line))
	}
}

// safe replaces control and bidi characters (clip without the length).
func safe(s string) string { return clip(s, 1<<30) }
