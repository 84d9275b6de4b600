package gateway

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/mailguard/mailguard/policy"
	"github.com/mailguard/mailguard/smtp"
	"github.com/mailguard/mailguard/store"
)

// leaseFor is how long a claimed delivery belongs to this node. It covers
// the longest SMTP transaction; a crashed node's deliveries come back after.
const leaseFor = 15 * time.Minute

// outbox adapts the store's delivery queue to smtp.Outbox. An Outgoing's ID
// is "<mailguard ID>.<delivery number>": the mailguard ID is what operators
// and DSNs refer to, the number picks the delivery (a release to another
// address is a second delivery of the same message).
type outbox struct{ g *Gateway }

var _ smtp.Outbox = outbox{}

func outgoingID(d store.Delivery) string { return d.MsgID + "." + strconv.FormatInt(d.ID, 10) }

func parseOutgoingID(id string) (msgID string, delivery int64, err error) {
	i := strings.LastIndexByte(id, '.')
	if i < 0 {
		return "", 0, fmt.Errorf("delivery id %q", id)
	}
	n, err := strconv.ParseInt(id[i+1:], 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("delivery id %q: %w", id, err)
	}
	return id[:i], n, nil
}

// dbClaimEvery is how often the store is asked for due work while this
// process keeps its workers busy with what it decided itself: retries come
// due there, releases from the CLI and other nodes' leftovers appear there.
const dbClaimEvery = time.Second

// Claim implements smtp.Outbox: first what this process decided and leased
// itself (in memory), then due deliveries from the store.
func (o outbox) Claim(ctx context.Context, max int) ([]smtp.Outgoing, error) {
	var ds []store.Delivery
	for len(ds) < max {
		select {
		case d := <-o.g.local:
			<-o.g.slots
			o.g.localBytes.Add(-int64(len(d.Data)))
			ds = append(ds, d)
			continue
		default:
		}
		break
	}
	// The store is asked when this process queued work there, or every
	// dbClaimEvery for what it cannot know of (retries come due, the CLI
	// released a message, another node left work behind): a claim is a
	// write transaction, too dear to run after every delivery.
	now := time.Now().UnixNano()
	if len(ds) < max && (o.g.dbWork.Swap(false) || now-o.g.lastDB.Load() >= int64(dbClaimEvery)) {
		o.g.lastDB.Store(now)
		more, err := o.g.st.Claim(ctx, o.g.node, leaseFor, max-len(ds))
		if err != nil || len(more) == max-len(ds) {
			o.g.dbWork.Store(true) // ask again at the next turn
		}
		if err != nil && len(ds) == 0 {
			return nil, err
		}
		ds = append(ds, more...)
	}
	out := make([]smtp.Outgoing, 0, len(ds))
	for _, d := range ds {
		d := d
		out = append(out, smtp.Outgoing{ID: outgoingID(d), Route: smtp.Route(d.Route), MailFrom: d.MailFrom,
			Rcpts: d.Rcpts, Attempts: d.Attempts, Received: d.Received, SMTPUTF8: d.SMTPUTF8, EightBit: d.EightBit,
			Open: func() (io.ReadCloser, error) { return o.g.render(context.Background(), d) }})
	}
	return out, nil
}

// wakeStore wakes the delivery workers for work queued in the store.
func (g *Gateway) wakeStore() {
	g.dbWork.Store(true)
	wake(g.wakeQ)
}

// reserveLocal takes a slot for handing a delivery to this process's
// workers in memory; false when they are not running or the hand-over is full.
func (g *Gateway) reserveLocal() bool {
	if !g.serving.Load() {
		return false
	}
	select {
	case g.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

func storeResults(rs []smtp.RcptResult) []store.RcptResult {
	out := make([]store.RcptResult, len(rs))
	for i, r := range rs {
		out[i] = store.RcptResult{Rcpt: r.Rcpt, Code: r.Code, Text: r.Text, Perm: r.Perm}
	}
	return out
}

// Done implements smtp.Outbox.
func (o outbox) Done(ctx context.Context, id string, results []smtp.RcptResult) error {
	return o.settle(ctx, id, time.Time{}, results, nil)
}

// Retry implements smtp.Outbox.
func (o outbox) Retry(ctx context.Context, id string, at time.Time, results []smtp.RcptResult, dsn []byte) error {
	return o.settle(ctx, id, at, results, dsn)
}

// Fail implements smtp.Outbox.
func (o outbox) Fail(ctx context.Context, id string, results []smtp.RcptResult, dsn []byte) error {
	return o.settle(ctx, id, time.Time{}, results, dsn)
}

// settle records an attempt: recipients not final are retried at at (a
// zero at means the delivery is over); a DSN becomes a message of its own,
// queued in the same transaction, routed back towards the sender.
func (o outbox) settle(ctx context.Context, id string, at time.Time, results []smtp.RcptResult, dsn []byte) error {
	msgID, did, err := parseOutgoingID(id)
	if err != nil {
		return err
	}
	var dm *store.Message
	if dsn != nil {
		dm, err = o.dsnMessage(ctx, msgID)
		if err != nil {
			return err
		}
	}
	var pending []string
	for _, r := range results {
		if !r.Final() {
			pending = append(pending, r.Rcpt)
		}
	}
	if !at.IsZero() && len(pending) > 0 {
		err = o.g.st.DeliveryRetry(ctx, did, at, pending, storeResults(results), dm, dsn)
	} else {
		err = o.g.st.DeliveryDone(ctx, did, storeResults(results), dm, dsn)
	}
	if err != nil {
		return err
	}
	dsnID := ""
	if dm != nil {
		dsnID = dm.ID
		o.g.log.Info("dsn queued", "msg_id", msgID, "dsn_id", dm.ID, "rcpt", dm.Rcpts)
		o.g.wakeStore()
	}
	o.g.deliveryEvents(msgID, results, dsnID)
	return nil
}

// dsnMessage describes the DSN for a message: from the null sender to the
// message's sender, routed the other way (a bounce of inbound mail goes
// out, a bounce of outbound mail comes in).
func (o outbox) dsnMessage(ctx context.Context, msgID string) (*store.Message, error) {
	m, err := o.g.st.Get(ctx, msgID)
	if err != nil {
		return nil, err
	}
	dir := "outbound"
	if m.Direction == "outbound" {
		dir = "inbound"
	}
	return &store.Message{ID: smtp.NewID(), Direction: dir, MailFrom: "", Rcpts: []string{m.MailFrom},
		HELO: o.g.Policy().Gateway.Hostname, ClientIP: "127.0.0.1", Action: string(policy.Deliver),
		Subject: "Delivery Status Notification (Failure)", Reasons: []string{}, Proto: "ESMTP",
		ReceivedAt: o.g.now().UTC()}, nil
}

// deliveryEvents writes one event per recipient outcome that is final.
func (g *Gateway) deliveryEvents(msgID string, results []smtp.RcptResult, dsnID string) {
	for _, r := range results {
		ev := Event{MsgID: msgID, Rcpt: r.Rcpt, Code: r.Code, Detail: r.Text, Relay: r.Remote}
		switch {
		case r.Delivered():
			ev.Event = "delivered"
		case r.Perm:
			ev.Event = "bounced"
			ev.DSNID = dsnID
		default:
			// A retry is not a lifecycle transition: log only.
			g.log.Info("delivery deferred", "msg_id", msgID, "rcpt", r.Rcpt, "code", r.Code, "text", r.Text,
				"relay", r.Remote, "err", r.Detail)
			continue
		}
		g.events.Write(ev)
		g.log.Info("delivery "+ev.Event, "msg_id", msgID, "rcpt", r.Rcpt, "code", r.Code, "text", r.Text)
	}
}
