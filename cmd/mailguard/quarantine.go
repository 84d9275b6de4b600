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
	"slices"
	"strings"
	"time"

	"golang.org/x/text/width"

	"github.com/mailguard/mailguard/gateway"
	"github.com/mailguard/mailguard/policy"
	"github.com/mailguard/mailguard/reason"
	"github.com/mailguard/mailguard/sandbox"
	"github.com/mailguard/mailguard/store"
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
	states, err := parseStates(f.state)
	if err != nil {
		return sf, err
	}
	sf.States = states
	if f.since != "" {
		d, err := policy.ParseDuration(f.since)
		if err != nil || d <= 0 {
			return sf, usageError(fmt.Sprintf("--since %q: want a duration such as 24h or 7d", f.since))
		}
		sf.Since = time.Now().Add(-d)
	}
	sf.Reason, sf.From, sf.Rcpt = f.reason, f.from, f.rcpt
	return sf, nil
}

// lifecycleStates are the states --state accepts.
var lifecycleStates = []store.State{store.Received, store.Inspected, store.Queued, store.Held, store.Quarantined,
	store.Rejected, store.Delivered, store.Bounced, store.Released, store.Deleted, store.Error}

// parseStates reads a --state value: "all", "review" (held and
// quarantined), or a comma-separated list of lifecycle states.
func parseStates(s string) ([]store.State, error) {
	switch s {
	case "all", "":
		return nil, nil
	case "review":
		return []store.State{store.Held, store.Quarantined}, nil
	}
	var out []store.State
	for _, name := range strings.Split(s, ",") {
		st := store.State(strings.TrimSpace(name))
		if !slices.Contains(lifecycleStates, st) {
			return nil, usageError(fmt.Sprintf("--state %q: want all, review or states among %s", name, joinStates(lifecycleStates)))
		}
		out = append(out, st)
	}
	return out, nil
}

func joinStates(l []store.State) string {
	var s []string
	for _, st := range l {
		s = append(s, string(st))
	}
	return strings.Join(s, ", ")
}

// listItem is one element of `quarantine list --json` (DESIGN.md contract:
// id, message_id, state, from, to, subject, received_at, action, reasons),
// with more for scripts. Held messages say how long they have waited and
// which sandbox tasks they wait for.
type listItem struct {
	ID             string        `json:"id"`
	MessageID      string        `json:"message_id"`
	State          string        `json:"state"`
	From           string        `json:"from"`
	MailFrom       string        `json:"mail_from"`
	To             []string      `json:"to"`
	Subject        string        `json:"subject"`
	ReceivedAt     time.Time     `json:"received_at"`
	Action         string        `json:"action"`
	Reasons        []string      `json:"reasons"`
	Score          float64       `json:"score"`
	Direction      string        `json:"direction"`
	ClientIP       string        `json:"client_ip"`
	Size           int64         `json:"size"`
	HoldUntil      *time.Time    `json:"hold_until,omitempty"`
	Waiting        string        `json:"waiting,omitempty"`
	WaitingSeconds int64         `json:"waiting_seconds,omitempty"`
	SandboxPending []pendingTask `json:"sandbox_pending,omitempty"`
}

// pendingTask is a file a held message waits for the sandbox to judge.
type pendingTask struct {
	Path        string     `json:"path"`
	SHA256      string     `json:"sha256"`
	TaskID      string     `json:"task_id"` // "" while queued for upload
	State       string     `json:"state"`   // queued, submitted, or the verdict's state once in
	SubmittedAt *time.Time `json:"submitted_at,omitempty"`
	Attempts    int        `json:"attempts,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
}

// storedSandbox is the sandbox part of a stored decision report.
type storedSandbox struct {
	Sandbox []struct {
		Path       string   `json:"path"`
		SHA256     string   `json:"sha256"`
		TaskID     string   `json:"task_id"`
		State      string   `json:"state"`
		Malscore   float64  `json:"malscore"`
		Malstatus  string   `json:"malstatus"`
		Family     string   `json:"family"`
		Signatures []string `json:"signatures"`
	} `json:"sandbox"`
}

func itemOf(ctx context.Context, m *store.Message, now time.Time, sb sandbox.Store) listItem {
	it := listItem{ID: m.ID, MessageID: m.MessageID, State: string(m.State), From: m.From, MailFrom: m.MailFrom,
		To: orEmpty(m.Rcpts), Subject: m.Subject, ReceivedAt: m.ReceivedAt.UTC(), Action: m.Action, Reasons: orEmpty(m.Reasons),
		Score: m.Score, Direction: m.Direction, ClientIP: m.ClientIP, Size: m.Size}
	if m.State == store.Held {
		t := m.HoldUntil.UTC()
		it.HoldUntil = &t
		// A hold starts at receipt; re-decisions while held do not reset it.
		wait := max(now.Sub(m.ReceivedAt), 0)
		it.Waiting, it.WaitingSeconds = fmtAge(wait), int64(wait.Seconds())
		it.SandboxPending = pendingTasks(ctx, m, now, sb)
	}
	return it
}

// pendingTasks lists the files of a held message that its stored report
// sent to the sandbox without a verdict, with the task's live state from
// the sandbox task table (the report was written before the upload).
func pendingTasks(ctx context.Context, m *store.Message, now time.Time, sb sandbox.Store) []pendingTask {
	var rep storedSandbox
	if len(m.Decision) == 0 || json.Unmarshal(m.Decision, &rep) != nil {
		return nil
	}
	var out []pendingTask
	for _, f := range rep.Sandbox {
		if f.State != "pending" {
			continue
		}
		pt := pendingTask{Path: f.Path, SHA256: f.SHA256, TaskID: f.TaskID, State: "queued"}
		if sb != nil {
			key := sandbox.Key(f.SHA256, nil)
			if t, ok, err := sb.GetTask(ctx, key); err == nil && ok {
				pt.TaskID, pt.Attempts, pt.LastError = string(t.ID), t.Attempts, t.LastError
				if t.ID != "" {
					pt.State = "submitted"
					at := t.Submitted.UTC()
					pt.SubmittedAt = &at
				}
			} else if v, ok, err := sb.GetVerdict(ctx, key, now); err == nil && ok {
				pt.TaskID, pt.State = string(v.TaskID), v.State // in: the re-decision follows
			}
		}
		if pt.State == "queued" && pt.TaskID != "" {
			pt.State = "submitted"
		}
		out = append(out, pt)
	}
	return out
}

// fmtAge prints a wait for people: 45s, 12m, 3h05m, 2d04h.
func fmtAge(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
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
		items = append(items, itemOf(context.Background(), m, now, st.Sandbox()))
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
// Japanese character takes two columns). A held message is followed by
// one line per file it waits for the sandbox to judge.
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
		state := it.State
		if it.Waiting != "" {
			state += " " + it.Waiting
		}
		rows = append(rows, []string{it.ReceivedAt.Local().Format("2006-01-02 15:04"), it.ID, state,
			clip(from, 30), clip(strings.Join(it.To, ","), 30), clip(it.Subject, 40), strings.Join(it.Reasons, ",")})
	}
	widths := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], displayWidth(c))
		}
	}
	for i, r := range rows {
		var b strings.Builder
		for i, c := range r {
			b.WriteString(c)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-displayWidth(c)+2))
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
		if i > 0 {
			for _, pt := range items[i-1].SandboxPending {
				fmt.Fprintln(w, "    "+pendingLine(pt, time.Now()))
			}
		}
	}
}

// pendingLine describes one file a held message waits for.
func pendingLine(pt pendingTask, now time.Time) string {
	line := "sandbox: " + clip(pt.Path, 60)
	switch {
	case pt.TaskID != "":
		line += "  task " + clip(pt.TaskID, 20) + "  " + pt.State
	default:
		line += "  " + pt.State + " for upload"
	}
	if pt.SubmittedAt != nil {
		line += " " + fmtAge(max(now.Sub(*pt.SubmittedAt), 0)) + " ago"
	}
	if pt.Attempts > 1 {
		line += fmt.Sprintf(", %d attempts", pt.Attempts)
	}
	if pt.LastError != "" {
		line += " (last error: " + clip(pt.LastError, 60) + ")"
	}
	return line
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
	for _, a := range to {
		if !validAddress(a) {
			return usageError(fmt.Sprintf("--to %q is not an address", a))
		}
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
		return fmt.Errorf("not held or quarantined (state %s)", currentState(ctx, st, m))
	}
	if err != nil {
		return err
	}
	ev.Write(gateway.Event{Event: "released", MsgID: id, Actor: who, Note: note, Rcpts: rcpts})
	return nil
}

func deleteMsg(ctx context.Context, st backend, ev *gateway.EventLog, id, note string) error {
	m, err := st.Get(ctx, id)
	if err != nil {
		return err
	}
	who := actor()
	err = st.Transition(ctx, id, []store.State{store.Held, store.Quarantined, store.Rejected, store.Error}, store.Deleted, nil,
		&store.Audit{MsgID: id, Actor: who, Action: "delete", Note: note})
	if errors.Is(err, store.ErrState) {
		return fmt.Errorf("cannot delete a message in state %s", currentState(ctx, st, m))
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

// currentState is the state of m now: after a refused transition another
// operator or a worker has usually just moved it.
func currentState(ctx context.Context, st store.Store, m *store.Message) store.State {
	if now, err := st.Get(ctx, m.ID); err == nil {
		return now.State
	}
	return m.State
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
	note := fs.String("note", "", "why (recorded in the audit trail)")
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
	ctx := context.Background()
	m, err := st.Get(ctx, ids[0])
	if err != nil {
		return err
	}
	f, err := st.Open(ctx, m.ID)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%s (%s): its content is no longer kept (deleted, or past its retention)", m.ID, m.State)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	// The audit entry comes first: an export that was not recorded must
	// not happen.
	if err := st.AddAudit(ctx, store.Audit{MsgID: m.ID, Actor: actor(), Action: "export", Note: *note}); err != nil {
		return err
	}
	_, err = io.Copy(stdout, f)
	return err
}

// validAddress accepts what may go into RCPT TO: local@domain without
// spaces, angle brackets or control characters.
func validAddress(a string) bool {
	at := strings.LastIndexByte(a, '@')
	if at <= 0 || at == len(a)-1 || len(a) > 320 {
		return false
	}
	for _, r := range a {
		if r <= ' ' || r == 0x7f || r == '<' || r == '>' || r == ',' {
			return false
		}
	}
	return true
}

func joinTags(ts []reason.Tag) string {
	var s []string
	for _, t := range ts {
		s = append(s, string(t))
	}
	return strings.Join(s, ", ")
}
