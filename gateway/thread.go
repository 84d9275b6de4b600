package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/mailguard/mailguard/attach"
	"github.com/mailguard/mailguard/policy"
	"github.com/mailguard/mailguard/reason"
	"github.com/mailguard/mailguard/store"
	"github.com/mailguard/mailguard/thread"
)

// conversations is the gateway's side of the conversation memory: the
// store, a cache of the domains lookalikes are measured against, and the
// retention purge schedule.
type conversations struct {
	store thread.Store // nil: no memory

	mu        sync.Mutex
	protected []thread.Domain // known correspondents' domains
	loadedAt  time.Time
	purgedAt  time.Time
	purging   bool

	// jobs are the records written after the reply, in order, by one
	// worker (started with the first job): the conversation memory is
	// not on the SMTP reply path, and a message recorded twice (held,
	// then decided) keeps its order.
	jobs     chan func(context.Context)
	startJob sync.Once
	stopped  bool          // drain ran: record synchronously from now on
	done     chan struct{} // closed when the worker has run every job
}

// recordQueue bounds the records waiting for the worker; past it the
// caller records itself (backpressure instead of unbounded memory).
const recordQueue = 4096

// later runs job on the worker, or now when the gateway is not serving
// (a CLI process may exit right after) or the queue is full.
func (c *conversations) later(g *Gateway, job func(context.Context)) {
	g.mu.Lock()
	serving := g.server != nil
	g.mu.Unlock()
	c.mu.Lock()
	if serving && !c.stopped {
		c.startJob.Do(func() {
			c.jobs = make(chan func(context.Context), recordQueue)
			c.done = make(chan struct{})
			go func() {
				defer close(c.done)
				for j := range c.jobs {
					j(context.Background())
				}
			}()
		})
		select {
		case c.jobs <- job:
			c.mu.Unlock()
			return
		default:
		}
	}
	c.mu.Unlock()
	job(context.Background())
}

// drain writes the records still queued, within d, when serve stops (after
// the SMTP sessions, the queue and the hold loop have ended). Later calls
// of later record synchronously.
func (c *conversations) drain(d time.Duration) bool {
	c.mu.Lock()
	c.stopped = true
	jobs, done := c.jobs, c.done
	c.mu.Unlock()
	if jobs == nil {
		return true
	}
	close(jobs)
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

const (
	// correspondentsTTL is how long the correspondent domains are cached.
	correspondentsTTL = 5 * time.Minute
	// maxCorrespondents bounds the domains compared per message.
	maxCorrespondents = 5000
	// purgeEvery is how often expired conversation data (and password
	// candidates past their window) is removed.
	purgeEvery = time.Minute
	// maxThreadPasswords bounds the candidates taken from related mails.
	maxThreadPasswords = 20
)

// threadState is what the conversation stage learned about one message,
// kept on the report for recordMessage.
type threadState struct {
	cfg     thread.Config
	msg     thread.Message
	parents []thread.Record
	key     string // thread key
	rel     thread.Relation
	tried   []string // ids of the related mails whose passwords were tried
	lookErr bool     // the lookup failed: the facts are incomplete
}

func threadConfig(p *policy.Policy) thread.Config {
	c := p.Conversations
	return thread.Config{LocalDomains: p.Gateway.LocalDomains, YoungDays: c.YoungDays, YoungExchanges: c.YoungExchanges,
		ReviveAfter: c.Revive, Window: c.Window, VIPNames: p.Lists.VIPNames}
}

// stageThread is the conversation stage. It runs after the attachment walk
// and before YARA: it computes the conversation facts (first contact,
// thread hijack, lookalike senders, impersonation, trap-flagged senders,
// PPAP password linking) and, when an encrypted archive stayed locked and
// a related mail offered password candidates, walks the message again with
// them (source "thread") so that YARA and the sandbox see the contents.
// A failing memory never fails the inspection: the stage goes on without
// history and says so in the report's errors.
func (g *Gateway) stageThread(ctx context.Context, st *stages, env Envelope, msg io.ReaderAt, size int64, opt InspectOptions, rep *Report) error {
	p := st.pol
	if !*p.Conversations.Enabled || env.Direction == "internal" {
		return nil
	}
	t := g.now()
	defer func() { metricStage.WithLabelValues("thread").Observe(g.now().Sub(t).Seconds()) }()
	ts := &threadState{cfg: threadConfig(p)}
	rep.thread = ts
	ts.msg = threadMessage(env, rep)
	h := &thread.History{}
	if store := g.conv.store; store != nil {
		var err error
		if h, err = store.Lookup(ctx, ts.cfg.Query(&ts.msg)); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("inspect: conversations: %w", ctx.Err())
			}
			rep.Errors = append(rep.Errors, "conversation lookup: "+err.Error())
			g.log.Error("conversation lookup", "msg_id", env.ID, "err", err)
			h, ts.lookErr = &thread.History{}, true
		}
	}
	ts.parents = h.Parents
	r := ts.cfg.Record(&ts.msg, h.Parents)
	ts.key = r.Thread
	if env.Direction == "inbound" {
		q := ts.cfg.Query(&ts.msg)
		ts.rel = thread.Relation{Sender: q.Sender, Internal: q.Internal, Thread: ts.key,
			Since: env.Received.Add(-p.Conversations.Window)}
		if err := g.linkPasswords(ctx, st, env, msg, size, opt, rep, ts); err != nil {
			return err
		}
		ts.msg.Flags = messageFlags(rep, true)
	}
	sig := ts.cfg.Analyze(&ts.msg, h, g.conv.protectedDomains(ctx, p, g.now()))
	f := rep.facts
	f.Thread.Known, f.Thread.FirstContact, f.Thread.Exchanges = sig.Known, sig.FirstContact, sig.Exchanges
	f.Thread.RelationshipDays, f.Thread.SilenceDays = sig.RelationshipDays, sig.SilenceDays
	f.Findings = append(f.Findings, sig.Findings...)
	return nil
}

// threadMessage is the message as the conversation memory sees it.
func threadMessage(env Envelope, rep *Report) thread.Message {
	h := rep.Header
	m := thread.Message{ID: env.ID, Direction: thread.Direction(env.Direction), At: env.Received, MailFrom: env.MailFrom,
		Rcpts: env.Rcpts, MessageID: h.MessageID, InReplyTo: h.InReplyTo, References: h.References, Subject: h.Subject,
		List: h.List}
	if m.At.IsZero() {
		m.At = time.Now()
	}
	if len(h.From) > 0 {
		m.From = thread.Address{Addr: h.From[0].Addr, Name: h.From[0].Name}
	}
	for _, a := range append(append([]attach.Address(nil), h.To...), h.Cc...) {
		m.To = append(m.To, thread.Address{Addr: a.Addr, Name: a.Name})
	}
	m.Flags = messageFlags(rep, false)
	return m
}

// messageFlags says what a message carried. Images are not counted as
// attachments (signature logos are not payloads); links are looked for
// only when asked (inbound), since it reads the bodies again.
func messageFlags(rep *Report, links bool) thread.Flags {
	var fl thread.Flags
	for _, f := range rep.Files {
		if f.Derived {
			continue
		}
		if f.Depth == 0 && !strings.HasPrefix(f.Type, "image/") {
			fl |= thread.FlagAttachment
		}
		if f.Encrypted {
			fl |= thread.FlagEncrypted
		}
		if f.Locked() {
			fl |= thread.FlagLocked
		}
		if f.Decrypted && f.PasswordSource == attach.SourceThread {
			fl |= thread.FlagThreadOpened
		}
	}
	if rep.walk != nil && len(rep.walk.Passwords) > 0 {
		fl |= thread.FlagPassword
	}
	if links && len(messageURLs(rep)) > 0 {
		fl |= thread.FlagLink
	}
	return fl
}

// linkPasswords is the PPAP stage (targeted-mail-signals.md §b.6). A
// message whose encrypted archive stayed locked takes the password
// candidates of related mails (same correspondent to the same user, or
// the same thread, within the window) and is walked again with them; if
// it stays locked within the window, it waits (thread.password_pending).
// A password mail whose archive is still held waits for that decision
// (thread.archive_pending), and one whose archive was opened with a
// thread password and quarantined shares its fate.
func (g *Gateway) linkPasswords(ctx context.Context, st *stages, env Envelope, msg io.ReaderAt, size int64, opt InspectOptions, rep *Report, ts *threadState) error {
	store := g.conv.store
	p := st.pol
	now := g.now()
	locked := messageFlags(rep, false)&thread.FlagLocked != 0
	var related []thread.Record
	if store != nil && (locked || len(rep.walk.Passwords) > 0) && !ts.lookErr {
		rs, err := store.Recent(ctx, ts.rel)
		if err != nil {
			rep.Errors = append(rep.Errors, "conversation lookup: "+err.Error())
		}
		for _, r := range rs {
			if r.ID != env.ID {
				related = append(related, r)
			}
		}
	}
	if locked {
		if err := g.tryThreadPasswords(ctx, st, msg, size, opt, rep, ts, related); err != nil {
			return err
		}
		stillLocked := messageFlags(rep, false)&thread.FlagLocked != 0
		inWindow := now.Before(env.Received.Add(p.Conversations.Window))
		if !opt.HoldUntil.IsZero() && !now.Before(opt.HoldUntil) {
			inWindow = false // the hold deadline passed: decide now
		}
		rep.facts.Thread.PasswordPending = stillLocked && inWindow
		return nil
	}
	if len(rep.walk.Passwords) == 0 {
		return nil
	}
	for _, r := range related {
		switch {
		case r.Flags&thread.FlagLocked != 0 && r.Outcome == thread.OutcomeHeld && r.Expires.After(now):
			rep.facts.Thread.ArchivePending = true
		case r.Flags&thread.FlagThreadOpened != 0 && r.Outcome == thread.OutcomeQuarantined && r.Verdict != "":
			tag := reason.Tag(r.Verdict)
			rep.facts.Findings = append(rep.facts.Findings, reason.Finding{Tag: tag,
				Detail: fmt.Sprintf("password mail for the archive of message %s, which was quarantined (%s)", r.ID, tag)})
		}
	}
	return nil
}

// tryThreadPasswords walks the message again with the related mails'
// password candidates (newest mail first), replacing the first walk.
func (g *Gateway) tryThreadPasswords(ctx context.Context, st *stages, msg io.ReaderAt, size int64, opt InspectOptions, rep *Report, ts *threadState, related []thread.Record) error {
	var ids []string
	for _, r := range related {
		if r.Flags&thread.FlagPassword != 0 {
			ids = append(ids, r.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	secrets, err := g.conv.store.Passwords(ctx, ids, g.now())
	if err != nil {
		rep.Errors = append(rep.Errors, "conversation passwords: "+err.Error())
		return nil
	}
	var extra []attach.Password
	seen := map[string]bool{}
	for _, s := range secrets {
		if !seen[s.Value] && len(extra) < maxThreadPasswords {
			seen[s.Value] = true
			extra = append(extra, attach.Password{Value: s.Value, Source: attach.SourceThread})
		}
		if !containsStr(ts.tried, s.MsgID) {
			ts.tried = append(ts.tried, s.MsgID)
		}
	}
	if len(extra) == 0 {
		return nil
	}
	old := rep.walk
	n := len(old.AllFindings())
	f := rep.facts
	if n <= len(f.Findings) {
		f.Findings = f.Findings[:len(f.Findings)-n]
	}
	opt.Passwords = append(append([]attach.Password(nil), opt.Passwords...), extra...)
	if err := g.stageAttach(ctx, st, msg, size, opt, rep); err != nil {
		old.Close()
		return err
	}
	old.Close()
	return nil
}

func containsStr(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// protectedDomains are the domains lookalikes are measured against: the
// local domains and the domains our users write to (cached).
func (c *conversations) protectedDomains(ctx context.Context, p *policy.Policy, now time.Time) []thread.Domain {
	var out []thread.Domain
	for _, d := range p.Gateway.LocalDomains {
		if pd, ok := thread.ParseDomain(d); ok {
			out = append(out, pd)
		}
	}
	if c.store == nil {
		return out
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.loadedAt.IsZero() || now.Sub(c.loadedAt) > correspondentsTTL {
		c.loadedAt = now
		pairs, err := c.store.Correspondents(ctx, maxCorrespondents)
		if err == nil {
			c.protected = c.protected[:0]
			for _, pr := range pairs {
				if pd, ok := thread.ParseDomain(pr.External); ok && !thread.FreeMail(pd.Registrable) {
					c.protected = append(c.protected, pd)
				}
			}
		}
	}
	return append(out, c.protected...)
}

// recordMessage remembers a decided message in the conversation store (both
// directions) and acts on what that changes for other messages: a trap
// flags its sender, a password mail releases the archive held for it.
// It runs after the decision is committed; an error is logged, never
// turned into a reply.
func (g *Gateway) recordMessage(ctx context.Context, m *store.Message, rep *Report, st store.State) {
	ts := rep.thread
	if ts == nil || g.conv.store == nil {
		return
	}
	p := g.Policy()
	log := g.log.With("msg_id", m.ID)
	r := ts.cfg.Record(&ts.msg, ts.parents)
	switch st {
	case store.Held:
		r.Outcome = thread.OutcomeHeld
	case store.Queued:
		r.Outcome = thread.OutcomeDelivered
	default:
		r.Outcome = thread.OutcomeQuarantined
		r.Verdict = string(maliciousVerdict(rep.Reasons))
	}
	inbound := m.Direction == "inbound"
	if inbound {
		r.Expires = m.ReceivedAt.Add(p.Conversations.Window)
		if rep.walk != nil && r.Expires.After(g.now()) {
			r.Passwords = rep.walk.Passwords
			if len(r.Passwords) > maxThreadPasswords {
				r.Passwords = r.Passwords[:maxThreadPasswords]
			}
		}
	}
	trapped := inbound && trapFinding(rep)
	from := ""
	if ts.msg.From.Addr != "" {
		from = ts.msg.From.Addr
	}
	mc := *m
	g.conv.later(g, func(ctx context.Context) {
		if err := g.conv.store.Record(ctx, r); err != nil {
			log.Error("conversation record failed", "err", err)
			return
		}
		if trapped {
			g.flagTrapSender(ctx, &mc, from, ts.cfg)
		}
		if inbound {
			g.linkAfterRecord(ctx, &mc, r, st, ts)
		}
		g.conv.maybePurge(g, p)
	})
}

// trapFinding reports whether the message went to a trap address (or its
// sender is flagged by one).
func trapFinding(rep *Report) bool {
	for _, f := range rep.Findings {
		if f.Tag == reason.TrapRecipient {
			return true
		}
	}
	for _, t := range rep.Reasons {
		if t == reason.TrapRecipient {
			return true
		}
	}
	return false
}

// maliciousVerdict is the first reason that says the content itself is
// dangerous (not merely unknown or unopened), or "". A password mail shares
// the fate of its archive only for these.
func maliciousVerdict(reasons []reason.Tag) reason.Tag {
	for _, t := range reasons {
		switch t {
		case reason.MalwareYARA, reason.MalwareSandbox, reason.BlockedFile, reason.URLBlocklisted,
			reason.ArchiveBomb, reason.ExecAttachment, reason.LNKInContainer, reason.HTMLSmuggling,
			reason.MacroDocument, reason.OneNoteEmbeddedFile, reason.RTLOFilename, reason.ThreadHijack:
			return t
		}
	}
	return ""
}

// linkAfterRecord wakes the messages a newly recorded one matters to: the
// held archives a password mail may open, the password mails waiting for
// an archive now decided, and the archive itself if a password mail came
// in while it was being inspected.
func (g *Gateway) linkAfterRecord(ctx context.Context, m *store.Message, r thread.Record, st store.State, ts *threadState) {
	password := r.Flags&thread.FlagPassword != 0
	archive := r.Flags&(thread.FlagLocked|thread.FlagThreadOpened) != 0
	if !password && !archive {
		return
	}
	rel := ts.rel
	rel.Since = m.ReceivedAt.Add(-g.Policy().Conversations.Window)
	related, err := g.conv.store.Recent(ctx, rel)
	if err != nil {
		g.log.Error("conversation lookup", "msg_id", m.ID, "err", err)
		return
	}
	now := g.now()
	for _, o := range related {
		if o.ID == m.ID {
			continue
		}
		held := o.Outcome == thread.OutcomeHeld
		switch {
		case held && password && !archive && o.Flags&thread.FlagLocked != 0 && o.Expires.After(now):
			g.log.Info("password mail may open a held archive", "msg_id", m.ID, "archive", o.ID)
			g.Recheck(o.ID)
		case held && archive && st != store.Held && o.Flags&thread.FlagPassword != 0:
			g.log.Info("archive decided, password mail re-decided", "msg_id", m.ID, "password_mail", o.ID)
			g.Recheck(o.ID)
		case archive && st == store.Held && o.Flags&thread.FlagPassword != 0 && !containsStr(ts.tried, o.ID) &&
			o.Expires.After(now):
			// The password mail arrived while this archive was inspected.
			g.Recheck(m.ID)
			return
		}
	}
}

// flagTrapSender: mail to a trap address flags its sender; the sender's
// other held or queued messages are quarantined now (which cancels their
// deliveries), later ones by the trap_recipient finding of stageThread.
func (g *Gateway) flagTrapSender(ctx context.Context, m *store.Message, from string, cfg thread.Config) {
	var addrs []string
	for _, a := range []string{m.MailFrom, from} {
		a = strings.ToLower(a)
		if a != "" && !cfg.Local(a) && !containsStr(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	for _, a := range addrs {
		if err := g.conv.store.Flag(ctx, a, g.now(), "mail to a trap address ("+m.ID+")"); err != nil {
			g.log.Error("flag trap sender", "msg_id", m.ID, "err", err)
			continue
		}
		g.log.Info("sender flagged by trap", "msg_id", m.ID, "mail_from", a)
		g.quarantineFrom(ctx, a, m.ID)
	}
}

// quarantineFrom quarantines the held and queued messages of a sender.
func (g *Gateway) quarantineFrom(ctx context.Context, addr, except string) {
	ms, err := g.st.List(ctx, store.Filter{States: []store.State{store.Queued, store.Held}, From: addr, Limit: 10000})
	if err != nil {
		g.log.Error("list messages of a flagged sender", "err", err)
		return
	}
	for _, o := range ms {
		if o.ID == except || !sentBy(o, addr) {
			continue
		}
		audit := &store.Audit{MsgID: o.ID, At: g.now(), Actor: "mailguard", Action: "quarantine", Detail: "sender flagged by trap"}
		err := g.st.Transition(ctx, o.ID, []store.State{store.Queued, store.Held}, store.Quarantined, nil, audit)
		if errors.Is(err, store.ErrState) {
			continue // delivered or decided meanwhile
		}
		if err != nil {
			g.log.Error("quarantine message of a flagged sender", "msg_id", o.ID, "err", err)
			continue
		}
		g.log.Info("message quarantined, sender flagged by trap", "msg_id", o.ID, "mail_from", addr)
		g.events.Write(Event{Event: string(store.Quarantined), MsgID: o.ID, Actor: "mailguard", Detail: "sender flagged by trap"})
	}
}

// sentBy reports whether addr is the message's envelope or header sender
// (the store's filter matches substrings).
func sentBy(m *store.Message, addr string) bool {
	if strings.EqualFold(m.MailFrom, addr) || strings.EqualFold(m.From, addr) {
		return true
	}
	return strings.Contains(strings.ToLower(m.From), "<"+addr+">")
}

// maybePurge removes expired conversation data at most once per
// purgeEvery, in the background.
func (c *conversations) maybePurge(g *Gateway, p *policy.Policy) {
	now := g.now()
	c.mu.Lock()
	if c.purging || (!c.purgedAt.IsZero() && now.Sub(c.purgedAt) < purgeEvery) {
		c.mu.Unlock()
		return
	}
	c.purging, c.purgedAt = true, now
	c.mu.Unlock()
	go func() {
		defer func() {
			c.mu.Lock()
			c.purging = false
			c.mu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		n, err := c.store.Purge(ctx, now.Add(-p.Conversations.Keep), now)
		if err != nil {
			g.log.Error("conversation purge", "err", err)
			return
		}
		g.log.Debug("conversation purge", "rows", n)
	}()
}
