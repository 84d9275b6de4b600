package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"time"

	"golang.org/x/text/width"

	"github.com/mailguard/mailguard/gateway"
	"github.com/mailguard/mailguard/policy"
	"github.com/mailguard/mailguard/reason"
	"github.com/mailguard/mailguard/store"
	"github.com/mailguard/mailguard/store/sqlite"
)

const quarantineUsage = `usage: mailguard quarantine <list|show|release|delete|export> [flags]

  list    [--state held|quarantined|all|STATE] [--since DUR] [--reason TAG] [--from ADDR] [--rcpt ADDR] [--json]
  show    ID [--json]
  release ID… [--to ADDR] [--note TEXT]      (or --all-matching with the list filters, --yes)
  delete  ID… [--note TEXT]                  (or --all-matching with the list filters, --yes)
  export  ID                                 (original bytes on stdout)
  unlock  ID --password P [--note TEXT]      (re-inspect with a password and decide again)
`

func cmdQuarantine(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, quarantineUsage)
		return exitError(2)
	}
	switch args[0] {
	case "list":
		return qList(args[1:], stdout, stderr)
	case "show":
		return qShow(args[1:], stdout, stderr)
	case "release":
		return qAct("release", args[1:], stdin, stdout, stderr)
	case "delete":
		return qAct("delete", args[1:], stdin, stdout, stderr)
	case "export":
		return qExport(args[1:], stdout, stderr)
	case "unlock":
		return qUnlock(args[1:], stdin, stdout, stderr)
	}
	fmt.Fprintf(stderr, "mailguard quarantine: unknown subcommand %q\n\n%s", args[0], quarantineUsage)
	return exitError(2)
}

// openStore opens the store the policy names, for the CLI.
func openStore(cfg string, stderr io.Writer) (*policy.Policy, *sqlite.DB, error) {
	p, diags := policy.Load(cfg)
	if diags.HasErrors() {
		fmt.Fprint(stderr, policy.FormatDiagnostics(diags))
		return nil, nil, exitError(1)
	}
	if _, err := os.Stat(p.Store.Path); err != nil {
		return nil, nil, fmt.Errorf("store %s: %w (has serve run with this policy?)", p.Store.Path, err)
	}
	st, err := sqlite.Open(p.Store.Path, sqlite.Options{})
	return p, st, err
}

// filterFlags are the list filters, shared by list, release and delete.
type filterFlags struct {
	state, since, reason, from, rcpt string
}

func (f *filterFlags) add(fs *flag.FlagSet, defState string) {
	fs.StringVar(&f.state, "state", defState, "held, quarantined, all, or any lifecycle state")
	fs.StringVar(&f.since, "since", "", "only messages received within this duration (e.g. 24h, 7d)")
	fs.StringVar(&f.reason, "reason", "", "only messages with this reason tag")
	fs.StringVar(&f.from, "from", "", "sender address or domain (substring)")
	fs.StringVar(&f.rcpt, "rcpt", "", "recipient address or domain (substring)")
}

func (f *filterFlags) filter() (store.Filter, error) {
	var sf store.Filter
	switch f.state {
	case "all", "":
	case "held,quarantined", "review":
		sf.States = []store.State{store.Held, store.Quarantined}
	default:
		for _, s := range strings.Split(f.state, ",") {
			sf.States = append(sf.States, store.State(s))
		}
	}
	if f.since != "" {
		d, err := policy.ParseDuration(f.since)
		if err != nil {
			return sf, usageError(fmt.Sprintf("--since %q: %v", f.since, err))
		}
		sf.Since = time.Now().Add(-d)
	}
	sf.Reason, sf.From, sf.Rcpt = f.reason, f.from, f.rcpt
	return sf, nil
}

// listItem is one element of `quarantine list --json` (DESIGN.md contract).
type listItem struct {
	ID         string     `json:"id"`
	MessageID  string     `json:"message_id"`
	State      string     `json:"state"`
	From       string     `json:"from"`
	MailFrom   string     `json:"mail_from"`
	To         []string   `json:"to"`
	Subject    string     `json:"subject"`
	ReceivedAt time.Time  `json:"received_at"`
	Action     string     `json:"action"`
	Reasons    []string   `json:"reasons"`
	Score      float64    `json:"score"`
	Direction  string     `json:"direction"`
	ClientIP   string     `json:"client_ip"`
	Size       int64      `json:"size"`
	HoldUntil  *time.Time `json:"hold_until,omitempty"`
	Waiting    string     `json:"waiting,omitempty"`
}

func itemOf(m *store.Message, now time.Time) listItem {
	it := listItem{ID: m.ID, MessageID: m.MessageID, State: string(m.State), From: m.From, MailFrom: m.MailFrom,
		To: m.Rcpts, Subject: m.Subject, ReceivedAt: m.ReceivedAt.UTC(), Action: m.Action, Reasons: m.Reasons,
		Score: m.Score, Direction: m.Direction, ClientIP: m.ClientIP, Size: m.Size}
	if it.To == nil {
		it.To = []string{}
	}
	if it.Reasons == nil {
		it.Reasons = []string{}
	}
	if m.State == store.Held {
		t := m.HoldUntil.UTC()
		it.HoldUntil = &t
		it.Waiting = now.Sub(m.StateAt).Round(time.Second).String()
	}
	return it
}

func qList(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("quarantine list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := configFlag(fs)
	var ff filterFlags
	ff.add(fs, "held,quarantined")
	asJSON := fs.Bool("json", false, "print one JSON array")
	limit := fs.Int("limit", 0, "at most this many messages (0: all)")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	f, err := ff.filter()
	if err != nil {
		return err
	}
	f.Limit = *limit
	_, st, err := openStore(*cfg, stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	ms, err := st.List(context.Background(), f)
	if err != nil {
		return err
	}
	now := time.Now()
	items := make([]listItem, 0, len(ms))
	for _, m := range ms {
		items = append(items, itemOf(m, now))
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(items)
	}
	printTable(stdout, items)
	return nil
}

// printTable prints the list for a terminal, aligned by display width (a
// Japanese character takes two columns).
func printTable(w io.Writer, items []listItem) {
	if len(items) == 0 {
		fmt.Fprintln(w, "no messages")
		return
	}
	rows := [][]string{{"RECEIVED", "ID", "STATE", "FROM", "TO", "SUBJECT", "REASONS"}}
	for _, it := range items {
		from := it.From
		if from == "" {
			from = it.MailFrom
		}
		to := strings.Join(it.To, ",")
		state := it.State
		if it.Waiting != "" {
			state += " " + it.Waiting
		}
		rows = append(rows, []string{it.ReceivedAt.Local().Format("2006-01-02 15:04"), it.ID, state,
			clip(from, 30), clip(to, 30), clip(it.Subject, 40), strings.Join(it.Reasons, ",")})
	}
	widths := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], displayWidth(c))
		}
	}
	for _, r := range rows {
		var b strings.Builder
		for i, c := range r {
			b.WriteString(c)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-displayWidth(c)+2))
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

func displayWidth(s string) int {
	n := 0
	for _, r := range s {
		switch width.LookupRune(r).Kind() {
		case width.EastAsianWide, width.EastAsianFullwidth:
			n += 2
		default:
			n++
		}
	}
	return n
}

// clip shortens s to about n display columns and removes control and bidi
// characters, which could make the terminal lie about what it shows.
func clip(s string, n int) string {
	var b strings.Builder
	w := 0
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) || r == 0x200e || r == 0x200f {
			r = '?'
		}
		rw := displayWidth(string(r))
		if w+rw > n-1 {
			b.WriteString("…")
			return b.String()
		}
		b.WriteRune(r)
		w += rw
	}
	return b.String()
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
	ctx := context.Background()
	m, err := st.Get(ctx, ids[0])
	if err != nil {
		return err
	}
	audits, err := st.Audits(ctx, m.ID)
	if err != nil {
		return err
	}
	if *asJSON {
		return showJSON(stdout, m, audits)
	}
	return showText(stdout, m, audits)
}

// showJSON prints the stored decision report with the message's current
// state and audit trail added.
func showJSON(w io.Writer, m *store.Message, audits []store.Audit) error {
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
	if audits == nil {
		audits = []store.Audit{}
	}
	doc["audit"] = audits
	for _, k := range []string{"action", "reasons", "score"} {
		if _, ok := doc[k]; !ok {
			doc[k] = map[string]any{"action": m.Action, "reasons": m.Reasons, "score": m.Score}[k]
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

func showText(w io.Writer, m *store.Message, audits []store.Audit) error {
	var rep struct {
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
		Errors []string `json:"errors"`
	}
	if len(m.Decision) > 0 {
		json.Unmarshal(m.Decision, &rep)
	}
	fmt.Fprintf(w, "ID:          %s\nState:       %s (since %s)\nReceived:    %s from %s (helo %s), %s, %d bytes\n",
		m.ID, m.State, m.StateAt.Local().Format(time.RFC3339), m.ReceivedAt.Local().Format(time.RFC3339),
		m.ClientIP, m.HELO, m.Direction, m.Size)
	fmt.Fprintf(w, "Envelope:    %s → %s\nFrom:        %s\nSubject:     %s\nMessage-ID:  %s\n",
		orDash(m.MailFrom), strings.Join(m.Rcpts, ", "), m.From, m.Subject, m.MessageID)
	fmt.Fprintf(w, "Decision:    %s (score %g)", m.Action, m.Score)
	if rep.Rule != "" {
		fmt.Fprintf(w, " by rule %s", rep.Rule)
	}
	fmt.Fprintln(w)
	if m.State == store.Held {
		fmt.Fprintf(w, "Hold until:  %s\n", m.HoldUntil.Local().Format(time.RFC3339))
	}
	if a := rep.Auth; a != nil {
		fmt.Fprintf(w, "Auth:        spf=%s (%s) dmarc=%s (%s, policy %s)", a.SPF.Status, orDash(a.SPF.Domain),
			a.DMARC.Status, orDash(a.DMARC.HeaderFrom), orDash(a.DMARC.Policy))
		for _, d := range a.DKIM {
			fmt.Fprintf(w, " dkim=%s (%s/%s)", d.Status, d.Domain, d.Selector)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "Reasons:")
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
		fmt.Fprintln(w, line)
	}
	if len(rep.Files) > 0 {
		fmt.Fprintln(w, "Files:")
	}
	for _, f := range rep.Files {
		line := fmt.Sprintf("  %s%s  %s  %d bytes  %s", strings.Repeat("  ", f.Depth), clip(f.Path, 80), f.Type, f.Size, f.SHA256)
		if f.Encrypted {
			line += "  encrypted"
			if f.Decrypted {
				line += " (decrypted, " + f.PasswordSource + " password)"
			}
		}
		fmt.Fprintln(w, line)
		for _, fd := range f.Findings {
			fmt.Fprintf(w, "  %s    %s: %s\n", strings.Repeat("  ", f.Depth), fd.Tag, fd.Detail)
		}
	}
	for _, e := range rep.Errors {
		fmt.Fprintf(w, "Error:       %s\n", e)
	}
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
		fmt.Fprintln(w, line)
	}
	return nil
}

// actor is the OS user behind an operator action (the sudo user when run
// through sudo).
func actor() string {
	if s := os.Getenv("SUDO_USER"); s != "" {
		return s
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return fmt.Sprintf("uid %d", os.Getuid())
}

// qAct releases or deletes messages by ID or by filter.
func qAct(action string, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("quarantine "+action, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := configFlag(fs)
	note := fs.String("note", "", "why (recorded in the audit trail)")
	var to listFlag
	if action == "release" {
		fs.Var(&to, "to", "deliver to this address instead of the original recipients (repeatable)")
	}
	all := fs.Bool("all-matching", false, "act on every message matching the list filters")
	yes := fs.Bool("yes", false, "do not ask for confirmation with --all-matching")
	var ff filterFlags
	ff.add(fs, "held,quarantined")
	ids, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if (len(ids) == 0) == !*all {
		return usageError(action + " takes message IDs, or --all-matching with filters")
	}
	p, st, err := openStore(*cfg, stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	ctx := context.Background()
	if *all {
		f, err := ff.filter()
		if err != nil {
			return err
		}
		ms, err := st.List(ctx, f)
		if err != nil {
			return err
		}
		for _, m := range ms {
			ids = append(ids, m.ID)
		}
		if len(ids) == 0 {
			fmt.Fprintln(stdout, "no messages match")
			return nil
		}
		if !*yes && !confirm(stdin, stderr, fmt.Sprintf("%s %d messages?", action, len(ids))) {
			return exitError(1)
		}
	}
	ev, err := gateway.OpenEventLog(p.Log)
	if err != nil {
		return err
	}
	defer ev.Close()
	failed := 0
	for _, id := range ids {
		var err error
		if action == "release" {
			err = release(ctx, st, ev, id, to, *note)
		} else {
			err = deleteMsg(ctx, st, ev, id, *note)
		}
		if err != nil {
			fmt.Fprintf(stderr, "%s %s: %v\n", action, id, err)
			failed++
			continue
		}
		fmt.Fprintf(stdout, "%s %s\n", pastTense(action), id)
	}
	if failed > 0 {
		return exitError(1)
	}
	return nil
}

func pastTense(a string) string {
	if a == "release" {
		return "released"
	}
	return "deleted"
}

func confirm(stdin io.Reader, stderr io.Writer, q string) bool {
	fmt.Fprintf(stderr, "%s [y/N] ", q)
	line, _ := bufio.NewReader(stdin).ReadString('\n')
	line = strings.ToLower(strings.TrimSpace(line))
	return line == "y" || line == "yes"
}

// release records the operator's intent: state released and a delivery in
// the queue, in one transaction. The running serve delivers it. Releasing
// twice is refused by the state check, so it is delivered exactly once.
func release(ctx context.Context, st store.Store, ev *gateway.EventLog, id string, to []string, note string) error {
	m, err := st.Get(ctx, id)
	if err != nil {
		return err
	}
	rcpts := m.Rcpts
	if len(to) > 0 {
		rcpts = to
	}
	who := actor()
	now := time.Now().UTC()
	hdr := fmt.Sprintf("X-Mailguard-Released: by %s at %s\r\n", sanitizeHeader(who), now.Format(time.RFC3339))
	route := "inbound"
	if m.Direction == "outbound" {
		route = "outbound"
	}
	detail := ""
	if len(to) > 0 {
		detail = "to " + strings.Join(to, ", ")
	}
	err = st.Transition(ctx, id, []store.State{store.Held, store.Quarantined}, store.Released,
		[]store.Delivery{{Route: route, MailFrom: m.MailFrom, Rcpts: rcpts, Extra: []byte(hdr)}},
		&store.Audit{MsgID: id, Actor: who, Action: "release", Note: note, Detail: detail})
	if errors.Is(err, store.ErrState) {
		return fmt.Errorf("not held or quarantined (state %s)", m.State)
	}
	if err != nil {
		return err
	}
	ev.Write(gateway.Event{Event: "released", MsgID: id, Actor: who, Note: note, Rcpts: rcpts})
	return nil
}

func deleteMsg(ctx context.Context, st *sqlite.DB, ev *gateway.EventLog, id, note string) error {
	m, err := st.Get(ctx, id)
	if err != nil {
		return err
	}
	who := actor()
	err = st.Transition(ctx, id, []store.State{store.Held, store.Quarantined, store.Rejected, store.Error}, store.Deleted, nil,
		&store.Audit{MsgID: id, Actor: who, Action: "delete", Note: note})
	if errors.Is(err, store.ErrState) {
		return fmt.Errorf("cannot delete a message in state %s", m.State)
	}
	if err != nil {
		return err
	}
	if err := st.RemoveContent(ctx, id); err != nil {
		return fmt.Errorf("deleted, but removing its content failed: %w", err)
	}
	ev.Write(gateway.Event{Event: "deleted", MsgID: id, Actor: who, Note: note})
	return nil
}

func sanitizeHeader(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

func qExport(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("quarantine export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := configFlag(fs)
	ids, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(ids) != 1 {
		return usageError("export takes one message ID")
	}
	_, st, err := openStore(*cfg, stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	f, err := st.Open(context.Background(), ids[0])
	if err != nil {
		return err
	}
	defer f.Close()
	if err := st.AddAudit(context.Background(), store.Audit{MsgID: ids[0], Actor: actor(), Action: "export"}); err != nil {
		return err
	}
	_, err = io.Copy(stdout, f)
	return err
}

func joinTags(ts []reason.Tag) string {
	var s []string
	for _, t := range ts {
		s = append(s, string(t))
	}
	return strings.Join(s, ", ")
}
