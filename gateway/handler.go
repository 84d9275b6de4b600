package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/mailguard/mailguard/policy"
	"github.com/mailguard/mailguard/reason"
	"github.com/mailguard/mailguard/smtp"
	"github.com/mailguard/mailguard/store"
)

var _ smtp.Handler = (*Gateway)(nil)

// Connect implements smtp.Handler: a client listed by enough DNS lists is
// refused before the greeting when reputation.reject_at = "connect".
func (g *Gateway) Connect(ctx context.Context, c smtp.ConnInfo) error {
	if c.Internal {
		return nil
	}
	return g.checkClient(ctx, "connect", c.RemoteIP)
}

// Mail implements smtp.Handler.
func (g *Gateway) Mail(ctx context.Context, e *smtp.Envelope) error { return nil }

// Rcpt implements smtp.Handler: with reputation.reject_at = "rcpt" (the
// default) a listed client learns it at its first RCPT, while connected.
func (g *Gateway) Rcpt(ctx context.Context, e *smtp.Envelope, rcpt string) error {
	if e.Conn.Internal || len(e.Rcpts) > 0 {
		return nil
	}
	return g.checkClient(ctx, "rcpt", e.Conn.RemoteIP)
}

// Data implements smtp.Handler: the message is inspected, and made
// durable with its decision, before the reply is written. A message up to
// captureMax is read into memory, inspected there and stored with its
// decision in one transaction (one group commit before the 250); a larger
// one is streamed to the store first, then inspected from there.
func (g *Gateway) Data(ctx context.Context, e *smtp.Envelope, r io.Reader) error {
	m := &store.Message{ID: e.ID, Direction: string(e.Direction), ClientIP: e.Conn.RemoteIP.Unmap().String(),
		HELO: e.Conn.HELO, Proto: proto(e), SMTPUTF8: e.SMTPUTF8, EightBit: e.EightBit, MailFrom: e.MailFrom,
		Rcpts: e.Rcpts, ReceivedAt: e.Received.UTC()}
	head, err := readHead(r, e.Size, captureMax+1)
	if err != nil {
		return err // the stream's own reply (bare LF, too large, timeout…)
	}
	if len(head) <= captureMax {
		m.Size = int64(len(head))
		return g.processData(ctx, m, InspectOptions{}, nil, head)
	}
	if _, err := g.st.Accept(ctx, m, io.MultiReader(bytes.NewReader(head), r)); err != nil {
		var rej *smtp.Reject
		if !errors.As(err, &rej) {
			g.log.Error("spool failed", "msg_id", m.ID, "err", err)
		}
		return err
	}
	g.received(m)
	return g.process(ctx, m, InspectOptions{}, []store.State{store.Received})
}

// captureMax is the largest message inspected in memory before it is
// stored (the store's inline size: larger ones go to spool files).
const captureMax = 128 << 10

// readHead reads r until io.EOF or max bytes. The buffer starts at the
// size the client declared (MAIL FROM SIZE=, when below max) or 16 KiB,
// and doubles: io.ReadAll grew a 100 KB message from 512 bytes a quarter
// at a time, two dozen copies that were 5 % of the relay's CPU.
func readHead(r io.Reader, declared int64, max int) ([]byte, error) {
	size := 16 << 10
	if declared > 0 && declared < int64(max) {
		size = int(declared) + 512 // a little over: an estimate a few bytes low costs no copy
	}
	buf := make([]byte, 0, min(size, max))
	for {
		if len(buf) == cap(buf) {
			if len(buf) >= max {
				return buf, nil
			}
			buf = slices.Grow(buf, min(cap(buf), max-len(buf)))
		}
		n, err := r.Read(buf[len(buf):min(cap(buf), max)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
		if len(buf) >= max {
			return buf, nil
		}
	}
}

// received reports a message made durable.
func (g *Gateway) received(m *store.Message) {
	g.events.Write(Event{Event: "received", MsgID: m.ID, Direction: m.Direction, ClientIP: m.ClientIP,
		HELO: m.HELO, MailFrom: &m.MailFrom, Rcpts: m.Rcpts, Size: m.Size})
	g.log.Info("message received", "msg_id", m.ID, "client_ip", m.ClientIP, "helo", m.HELO,
		"mail_from", m.MailFrom, "rcpt", m.Rcpts, "size", m.Size)
}

// process inspects a stored message and applies the decision. The returned
// error is the SMTP reply for a connected client (nil = 250).
func (g *Gateway) process(ctx context.Context, m *store.Message, opt InspectOptions, from []store.State) error {
	return g.processData(ctx, m, opt, from, nil)
}

// processData is process with the message's bytes at hand (nil: read them
// from the store). With from == nil the message is not stored yet: it is
// stored together with its decision (AcceptDecided), and reported
// received once that is durable.
func (g *Gateway) processData(ctx context.Context, m *store.Message, opt InspectOptions, from []store.State, data []byte) error {
	commit := g.decideStored(ctx, m.ID, from...)
	if from == nil {
		commit = func(d store.Decided) error {
			if err := g.st.AcceptDecided(ctx, m, data, d); err != nil {
				g.log.Error("spool failed", "msg_id", m.ID, "err", err)
				return err
			}
			g.received(m)
			return nil
		}
	}
	rep, err := g.inspectStored(ctx, m, opt, data)
	if err != nil {
		metricInspectErrors.Inc()
		g.log.Error("inspection failed", "msg_id", m.ID, "err", err)
		return g.applyFailure(m, err, commit)
	}
	defer rep.Close()
	return g.apply(ctx, m, rep, data, commit)
}

// decideStored returns the commit of a decision about a stored message in one
// of the from states.
func (g *Gateway) decideStored(ctx context.Context, id string, from ...store.State) func(store.Decided) error {
	return func(d store.Decided) error { return g.st.Decide(ctx, id, from, d) }
}

// inspectStored runs Inspect over a message in the store (or its bytes,
// when the caller has them).
func (g *Gateway) inspectStored(ctx context.Context, m *store.Message, opt InspectOptions, data []byte) (*Report, error) {
	var ra io.ReaderAt
	if data != nil {
		ra = bytes.NewReader(data)
	} else {
		f, err := g.st.Open(ctx, m.ID)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		var ok bool
		if ra, ok = f.(io.ReaderAt); !ok {
			return nil, fmt.Errorf("spool %s: not random access", m.ID)
		}
	}
	ip, _ := parseAddr(m.ClientIP)
	env := Envelope{ID: m.ID, Direction: m.Direction, ClientIP: ip, HELO: m.HELO, MailFrom: m.MailFrom,
		Rcpts: m.Rcpts, Received: m.ReceivedAt}
	return g.Inspect(ctx, env, ra, m.Size, opt)
}

// reserveLocalBytes returns data if it fits in the memory allowed to local
// deliveries (localBytesMax, released by Claim), nil otherwise: that
// delivery then reads its message from the store.
func (g *Gateway) reserveLocalBytes(data []byte) []byte {
	if data == nil {
		return nil
	}
	if g.localBytes.Add(int64(len(data))) > localBytesMax {
		g.localBytes.Add(-int64(len(data)))
		return nil
	}
	return data
}

// stateFor maps an action to the lifecycle state it leads to.
func stateFor(a policy.Action) store.State {
	switch a {
	case policy.Deliver, policy.Tag:
		return store.Queued
	case policy.Hold:
		return store.Held
	case policy.Quarantine:
		return store.Quarantined
	default: // reject, tempfail: the client was told, nothing is kept for delivery
		return store.Rejected
	}
}

// apply persists the decision with commit (state before action) and
// returns the reply. data, when not nil, are the message's bytes, handed
// to a local delivery.
func (g *Gateway) apply(ctx context.Context, m *store.Message, rep *Report, data []byte, commit func(store.Decided) error) error {
	log := g.log.With("msg_id", m.ID)
	st := stateFor(rep.Action)
	blob, err := json.Marshal(rep)
	if err != nil {
		return g.applyFailure(m, fmt.Errorf("encode report: %w", err), commit)
	}
	d := store.Decided{State: st, MessageID: rep.Header.MessageID, Subject: rep.Header.Subject,
		Action: string(rep.Action), Reasons: tagStrings(rep.Reasons), Score: rep.Score,
		Decision: blob, HoldUntil: rep.HoldUntil, Files: fileRefs(rep),
		SubjectPrefix: rep.SubjectPrefix, StripAuthResults: rep.ForgedAuthResults > 0}
	if len(rep.Header.From) > 0 {
		d.From = formatAddress(rep.Header.From[0].Name, rep.Header.From[0].Addr)
	}
	local := false
	if st == store.Queued {
		d.Deliveries = []store.Delivery{{Route: route(m.Direction), MailFrom: m.MailFrom, Rcpts: m.Rcpts}}
		if local = g.reserveLocal(); local {
			d.LeaseOwner, d.LeaseUntil = g.node, g.now().Add(leaseFor)
		}
	}
	// Inbound delivery headers are fixed now, from the decision.
	d.Prepend = []byte(g.prependHeaders(m, rep))
	err = commit(d)
	if local {
		if err == nil {
			dl := d.Deliveries[0]
			dl.Received, dl.SMTPUTF8, dl.EightBit, dl.Size = m.ReceivedAt, m.SMTPUTF8, m.EightBit, m.Size
			dl.Prepend, dl.SubjectPrefix, dl.StripAuthResults = d.Prepend, d.SubjectPrefix, d.StripAuthResults
			dl.Data = g.reserveLocalBytes(data)
			g.local <- dl // the slot reserved above guarantees room
		} else {
			<-g.slots
		}
	}
	if err != nil {
		if errors.Is(err, store.ErrState) {
			// Another worker (or the CLI) moved it first; nothing to do.
			log.Info("decision skipped, message moved on", "err", err)
			return nil
		}
		log.Error("persist decision failed", "err", err)
		return err
	}
	metricDecisions.WithLabelValues(string(rep.Action)).Inc()
	for _, r := range rep.Reasons {
		metricReasons.WithLabelValues(string(r)).Inc()
	}
	log.Info("message inspected", "action", rep.Action, "reasons", rep.Reasons, "score", rep.Score,
		"rule", rep.Rule, "files", len(rep.Files), "took_ms", rep.TookMS)
	g.emitDecision(m, rep, st)
	if st != store.Rejected {
		g.recordMessage(ctx, m, rep, st)
	}
	switch st {
	case store.Queued:
		if local {
			wake(g.wakeQ)
		} else {
			g.wakeStore()
		}
	case store.Held:
		wake(g.wakeHold)
	}
	return replyFor(rep)
}

// emitDecision writes the inspected event and the one for the new state.
func (g *Gateway) emitDecision(m *store.Message, rep *Report, st store.State) {
	ev := Event{MsgID: m.ID, MessageID: rep.Header.MessageID, Direction: m.Direction, ClientIP: m.ClientIP,
		MailFrom: &m.MailFrom, Rcpts: m.Rcpts, Subject: rep.Header.Subject, Action: string(rep.Action),
		Reasons: tagStrings(rep.Reasons), Score: &rep.Score, SHA256: hashes(rep)}
	if len(rep.Header.From) > 0 {
		ev.From = rep.Header.From[0].Addr
	}
	if rep.Auth != nil {
		ev.Auth = map[string]string{"spf": string(rep.Auth.SPF.Status), "dkim": rep.facts.Auth.DKIM,
			"dmarc": string(rep.Auth.DMARC.Status)}
	}
	for _, sum := range rep.submitted {
		g.events.Write(Event{Event: "sandbox_submitted", MsgID: m.ID, SHA256: []string{sum}})
	}
	ev.Event = "inspected"
	g.events.Write(ev)
	ev.Event = string(st)
	if st == store.Held {
		ev.HoldUntil = &rep.HoldUntil
	}
	g.events.Write(ev)
}

// applyFailure handles an inspection that failed inside mailguard: the
// policy's on_error decides between tempfail (the client retries; the row
// is marked rejected first so Resume does not deliver it as well) and hold.
// commit persists the decision.
func (g *Gateway) applyFailure(m *store.Message, cause error, commit func(store.Decided) error) error {
	p := g.Policy()
	st, action := store.Rejected, policy.Tempfail
	if p.Settings.OnError == "hold" {
		st, action = store.Held, policy.Hold
	}
	blob, _ := json.Marshal(map[string]any{"action": action, "reasons": []string{}, "errors": []string{cause.Error()}})
	err := commit(store.Decided{State: st, Action: string(action), Decision: blob,
		HoldUntil: g.now().Add(policy.DefaultSandboxHold)})
	if err != nil && !errors.Is(err, store.ErrState) {
		g.log.Error("persist failure decision failed", "msg_id", m.ID, "err", err)
	}
	metricDecisions.WithLabelValues(string(action)).Inc()
	g.events.Write(Event{Event: string(st), MsgID: m.ID, Action: string(action), Detail: "inspection failed"})
	if action == policy.Hold {
		return nil
	}
	return &smtp.Reject{Code: 451, Enhanced: [3]int{4, 3, 0}, Text: "temporary local problem, please try again later"}
}

// replyFor turns a decision into the client's reply (nil = 250).
func replyFor(rep *Report) error {
	switch rep.Action {
	case policy.Reject:
		return &smtp.Reject{Code: 550, Enhanced: [3]int{5, 7, 1}, Text: rejectText(rep)}
	case policy.Tempfail:
		return &smtp.Reject{Code: 451, Enhanced: [3]int{4, 7, 1}, Text: "message deferred (" + reasonList(rep) + "), please try again later"}
	}
	return nil
}

func rejectText(rep *Report) string {
	for _, r := range rep.Reasons {
		if r == reason.DMARCReject && rep.Auth != nil {
			return "message rejected per DMARC policy of " + rep.Auth.DMARC.HeaderFrom
		}
	}
	return "message refused by policy (" + reasonList(rep) + ")"
}

func reasonList(rep *Report) string { return strings.Join(tagStrings(rep.Reasons), ", ") }

func route(direction string) string {
	if direction == "outbound" {
		return "outbound"
	}
	return "inbound"
}

func proto(e *smtp.Envelope) string {
	p := "ESMTP"
	if e.SMTPUTF8 {
		p = "UTF8SMTP"
	}
	if e.Conn.TLS != nil {
		p += "S"
	}
	return p
}

func tagStrings(ts []reason.Tag) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = string(t)
	}
	return out
}

func fileRefs(rep *Report) []store.FileRef {
	var out []store.FileRef
	for _, f := range rep.Files {
		if f.SHA256 == "" {
			continue
		}
		out = append(out, store.FileRef{SHA256: f.SHA256, Path: f.Path, Name: f.Name, Type: f.Type, Size: f.Size})
	}
	return out
}

func hashes(rep *Report) []string {
	var out []string
	for _, f := range rep.Files {
		if f.SHA256 != "" && !f.Derived {
			out = append(out, f.SHA256)
		}
	}
	return out
}
