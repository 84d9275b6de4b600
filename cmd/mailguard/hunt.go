package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"

	"github.com/mailguard/mailguard/attach"
	"github.com/mailguard/mailguard/gateway"
	"github.com/mailguard/mailguard/policy"
	"github.com/mailguard/mailguard/scan"
	"github.com/mailguard/mailguard/store"
)

const huntUsage = `usage: mailguard hunt (--sha256 HASH | --from ADDR | --yara RULES.yar…) [--since DUR] [--state S] [--json]

Lists every stored message that matches, delivered or not, with its
recipients and times. The criteria combine: --sha256 and --from select
messages through the store's indexes, --yara re-scans the stored bytes of
the messages selected (all of them without the other criteria) with new
rules: every file and body part, archives opened with the policy's limits
and archive passwords, as inspection does. Delivered mail can be re-scanned
while its bytes are kept (retention.delivered).
`

// huntMatch is one file of a message that matched.
type huntMatch struct {
	Path   string   `json:"path"`
	Name   string   `json:"name,omitempty"`
	Type   string   `json:"type,omitempty"`
	SHA256 string   `json:"sha256,omitempty"`
	Rules  []string `json:"rules,omitempty"` // YARA rules, "namespace:rule"
}

// huntItem is one message of `hunt --json`: the list contract fields, the
// times, and what matched.
type huntItem struct {
	ID         string      `json:"id"`
	MessageID  string      `json:"message_id"`
	State      string      `json:"state"`
	StateAt    time.Time   `json:"state_at"`
	From       string      `json:"from"`
	MailFrom   string      `json:"mail_from"`
	To         []string    `json:"to"`
	Subject    string      `json:"subject"`
	ReceivedAt time.Time   `json:"received_at"`
	Direction  string      `json:"direction"`
	Action     string      `json:"action"`
	Reasons    []string    `json:"reasons"`
	Matches    []huntMatch `json:"matches"`
}

// huntFlags are the command line of hunt.
type huntFlags struct {
	cfg, sha, from, since, state string
	yara                         listFlag
	asJSON                       bool
	jobs                         int
}

func cmdHunt(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hunt", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, huntUsage); fs.PrintDefaults() }
	var hf huntFlags
	cfg := configFlag(fs)
	fs.StringVar(&hf.sha, "sha256", "", "messages with a file of this SHA-256 (the file index)")
	fs.StringVar(&hf.from, "from", "", "messages from this sender address or domain (substring)")
	fs.Var(&hf.yara, "yara", "re-scan stored messages with these YARA rule files or globs (repeatable)")
	fs.StringVar(&hf.since, "since", "", "only messages received within this duration (e.g. 30d)")
	fs.StringVar(&hf.state, "state", "all", "only messages in these states (comma-separated)")
	fs.BoolVar(&hf.asJSON, "json", false, "print one JSON array")
	fs.IntVar(&hf.jobs, "jobs", min(runtime.GOMAXPROCS(0), 4), "messages re-scanned at once with --yara")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	hf.cfg = *cfg
	if len(pos) > 0 {
		return usageError(fmt.Sprintf("unexpected argument %q", pos[0]))
	}
	f, err := hf.filter(time.Now())
	if err != nil {
		return err
	}
	p, st, err := openStore(hf.cfg, stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ids, err := st.MessageIDs(ctx, f)
	if err != nil {
		return err
	}
	matches := map[string][]huntMatch{}
	if len(hf.yara) > 0 {
		if matches, err = huntYARA(ctx, p, st, ids, hf, stderr); err != nil {
			return err
		}
	}
	items, err := huntItems(ctx, st, ids, hf, matches)
	if err != nil {
		return err
	}
	if hf.asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(items)
	}
	printHunt(stdout, items)
	return nil
}

// filter turns the flags into the store selection.
func (hf *huntFlags) filter(now time.Time) (store.Filter, error) {
	var f store.Filter
	if hf.sha == "" && hf.from == "" && len(hf.yara) == 0 {
		return f, usageError("hunt needs --sha256, --from or --yara")
	}
	if hf.sha != "" {
		b, err := hex.DecodeString(hf.sha)
		if err != nil || len(b) != 32 {
			return f, usageError(fmt.Sprintf("--sha256 %q: want 64 hex digits", hf.sha))
		}
		f.SHA256 = strings.ToLower(hf.sha)
	}
	f.From = hf.from
	if hf.since != "" {
		d, err := policy.ParseDuration(hf.since)
		if err != nil || d <= 0 {
			return f, usageError(fmt.Sprintf("--since %q: want a duration such as 24h or 30d", hf.since))
		}
		f.Since = now.Add(-d)
	}
	states, err := parseStates(hf.state)
	if err != nil {
		return f, err
	}
	f.States = states
	if hf.jobs < 1 {
		return f, usageError("--jobs must be at least 1")
	}
	return f, nil
}

// huntItems loads the messages to print: every selected one, or with
// --yara only those that matched. Rows are read one at a time so that a
// hunt over many messages stays in bounded memory.
func huntItems(ctx context.Context, st store.Store, ids []string, hf huntFlags, yaraHits map[string][]huntMatch) ([]huntItem, error) {
	items := []huntItem{}
	for _, id := range ids {
		hits, ok := yaraHits[id]
		if len(hf.yara) > 0 && !ok {
			continue
		}
		m, err := st.Get(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue // purged meanwhile
		}
		if err != nil {
			return nil, err
		}
		it := huntItem{ID: m.ID, MessageID: m.MessageID, State: string(m.State), StateAt: m.StateAt.UTC(),
			From: m.From, MailFrom: m.MailFrom, To: orEmpty(m.Rcpts), Subject: m.Subject, ReceivedAt: m.ReceivedAt.UTC(),
			Direction: m.Direction, Action: m.Action, Reasons: orEmpty(m.Reasons), Matches: []huntMatch{}}
		if hf.sha != "" {
			for _, fr := range m.Files {
				if strings.EqualFold(fr.SHA256, hf.sha) {
					it.Matches = append(it.Matches, huntMatch{Path: fr.Path, Name: fr.Name, Type: fr.Type, SHA256: fr.SHA256})
				}
			}
		}
		it.Matches = append(it.Matches, hits...)
		items = append(items, it)
	}
	return items, nil
}

func orEmpty(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// huntStats counts what a YARA re-scan did.
type huntStats struct {
	scanned, matched, noContent, failed int
}

// huntYARA re-scans the stored bytes of every selected message with the
// given rules, with bounded concurrency, and returns the matches by ID.
func huntYARA(ctx context.Context, p *policy.Policy, st store.Store, ids []string, hf huntFlags, stderr io.Writer) (map[string][]huntMatch, error) {
	cwd, _ := os.Getwd()
	rules, rerrs, err := scan.Compile(hf.yara, cwd)
	for _, e := range rerrs {
		fmt.Fprintln(stderr, e.Error())
	}
	if err != nil {
		return nil, fmt.Errorf("yara: %w", err)
	}
	if rules == nil {
		return nil, exitError(1)
	}
	eng := scan.NewEngine(rules, p.YARA.ScanTimeout)
	defer eng.Close()
	hs := &hunter{p: p, st: st, eng: eng, opt: walkOptions(p)}
	bar := newProgress(stderr, len(ids))
	work := make(chan string)
	var mu sync.Mutex
	out := map[string][]huntMatch{}
	var stats huntStats
	var wg sync.WaitGroup
	for range hf.jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				hits, err := hs.scanMessage(ctx, id)
				mu.Lock()
				switch {
				case errors.Is(err, store.ErrNotFound):
					stats.noContent++
				case err != nil && ctx.Err() == nil:
					stats.failed++
					bar.note(fmt.Sprintf("hunt: %s: %v", id, err))
				case err == nil:
					stats.scanned++
				}
				if len(hits) > 0 {
					out[id] = hits
					stats.matched++
				}
				bar.set(stats.scanned+stats.noContent+stats.failed, stats.matched)
				mu.Unlock()
			}
		}()
	}
feed:
	for _, id := range ids {
		select {
		case work <- id:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	bar.done()
	fmt.Fprintf(stderr, "hunt: %d messages re-scanned, %d matched", stats.scanned, stats.matched)
	if stats.noContent > 0 {
		fmt.Fprintf(stderr, ", %d without stored content (deleted or past retention)", stats.noContent)
	}
	if stats.failed > 0 {
		fmt.Fprintf(stderr, ", %d failed", stats.failed)
	}
	fmt.Fprintln(stderr)
	if ctx.Err() != nil {
		return nil, fmt.Errorf("interrupted after %d of %d messages", stats.scanned+stats.noContent+stats.failed, len(ids))
	}
	return out, nil
}

// walkOptions are the attachment limits and passwords inspection uses.
func walkOptions(p *policy.Policy) attach.Options {
	opt := attach.Options{Limits: gateway.AttachLimits(p)}
	for _, pw := range p.Archive.Passwords {
		opt.Passwords = append(opt.Passwords, attach.Password{Value: pw, Source: attach.SourcePolicy})
	}
	tmp := filepath.Join(p.Store.Path, "tmp")
	if os.MkdirAll(tmp, 0o750) == nil {
		opt.TempDir = tmp
	}
	return opt
}

// hunter re-scans stored messages.
type hunter struct {
	p   *policy.Policy
	st  store.Store
	eng *scan.Engine
	opt attach.Options
}

// scanMessage walks one stored message as inspection does and scans every
// file and body part; store.ErrNotFound means its bytes are gone.
func (h *hunter) scanMessage(ctx context.Context, id string) ([]huntMatch, error) {
	f, err := h.st.Open(ctx, id)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, err
	}
	ra, ok := f.(io.ReaderAt)
	if !ok {
		return nil, fmt.Errorf("spool %s: not random access", id)
	}
	res, err := attach.Walk(ctx, ra, size, h.opt)
	if res != nil {
		defer res.Close()
	}
	if err != nil {
		return nil, err
	}
	var hits []huntMatch
	var errs []error
	for _, file := range append(append([]*attach.File(nil), res.Files...), res.Bodies...) {
		rules, err := h.scanFile(ctx, file)
		if err != nil {
			if ctx.Err() != nil {
				return hits, ctx.Err()
			}
			// One file the rules could not finish (a scan timeout) does
			// not hide matches in the others; the failure is reported.
			errs = append(errs, fmt.Errorf("%s: %w", file.Path, err))
			continue
		}
		if len(rules) > 0 {
			hits = append(hits, huntMatch{Path: file.Path, Name: file.Name, Type: file.Type, SHA256: file.SHA256, Rules: rules})
		}
	}
	return hits, errors.Join(errs...)
}

func (h *hunter) scanFile(ctx context.Context, f *attach.File) ([]string, error) {
	ra, n, err := f.ReaderAt()
	if errors.Is(err, attach.ErrNoContent) {
		return nil, nil // a locked entry: nothing to scan
	}
	if err != nil {
		return nil, err
	}
	ms, err := h.eng.Scan(ctx, ra, n, scan.Vars{Filename: f.Name, Filepath: f.Path, Filetype: f.Type,
		Extension: strings.TrimPrefix(strings.ToLower(path.Ext(f.Name)), ".")})
	if err != nil {
		return nil, err
	}
	var names []string
	for _, m := range ms {
		names = append(names, m.Name())
	}
	sort.Strings(names)
	return names, nil
}

// printHunt prints one block per message: time, ID, state, sender and
// subject; every recipient; every matching file.
func printHunt(w io.Writer, items []huntItem) {
	if len(items) == 0 {
		fmt.Fprintln(w, "no messages match")
		return
	}
	for _, it := range items {
		from := it.From
		if from == "" {
			from = orDash(it.MailFrom)
		}
		fmt.Fprintf(w, "%s  %s  %s (%s)  from %s  %q\n", it.ReceivedAt.Local().Format("2006-01-02 15:04"), it.ID,
			it.State, it.StateAt.Local().Format("2006-01-02 15:04"), clip(from, 60), clip(it.Subject, 60))
		fmt.Fprintf(w, "    to: %s\n", clip(strings.Join(it.To, ", "), 400))
		for _, m := range it.Matches {
			line := "    " + clip(m.Path, 100)
			if m.SHA256 != "" {
				line += "  sha256:" + m.SHA256
			}
			if len(m.Rules) > 0 {
				line += "  yara: " + strings.Join(m.Rules, ", ")
			}
			fmt.Fprintln(w, line)
		}
	}
	fmt.Fprintf(w, "%d messages\n", len(items))
}

// progress is a one-line progress bar on a terminal, and nothing
// otherwise (a pipe or a file gets only the final summary).
type progress struct {
	w     io.Writer
	on    bool
	total int
	last  time.Time
	shown bool
}

func newProgress(w io.Writer, total int) *progress {
	p := &progress{w: w, total: total}
	if f, ok := w.(*os.File); ok {
		p.on = isatty.IsTerminal(f.Fd())
	}
	return p
}

// set redraws the bar at most ten times a second (and at the end).
func (p *progress) set(n, matched int) {
	if !p.on || (n < p.total && time.Since(p.last) < 100*time.Millisecond) {
		return
	}
	p.last = time.Now()
	const width = 30
	filled := width
	if p.total > 0 {
		filled = n * width / p.total
	}
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d messages, %d matched", strings.Repeat("#", filled),
		strings.Repeat(".", width-filled), n, p.total, matched)
	p.shown = true
}

// note prints a line without tearing the bar.
func (p *progress) note(s string) {
	if p.shown {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
	fmt.Fprintln(p.w, s)
	p.last = time.Time{}
}

func (p *progress) done() {
	if p.shown {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
}
