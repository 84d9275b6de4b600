package gateway

import (
	"context"
	"fmt"
	"time"

	"github.com/mailguard/mailguard/policy"
	"github.com/mailguard/mailguard/smtp"
)

// newQueue builds the delivery workers of the policy: inbound mail goes to
// delivery.inbound_relay (or the Maildir), outbound mail to
// delivery.outbound_relay (or the Maildir).
func (g *Gateway) newQueue(p *policy.Policy) (*smtp.Queue, error) {
	d := p.Delivery
	var maildir smtp.Transport
	transport := func(addr string) (smtp.Transport, error) {
		if addr == "" {
			if maildir == nil {
				md, err := smtp.NewMaildir(d.Maildir)
				if err != nil {
					return nil, fmt.Errorf("maildir %s: %w", d.Maildir, err)
				}
				maildir = md
			}
			return maildir, nil
		}
		return smtp.NewRelay(addr, smtp.RelayOptions{Hostname: p.Gateway.Hostname, TLS: smtp.TLSMode(d.TLS),
			InsecureSkipVerify: d.TLSSkipVerify})
	}
	in, err := transport(d.InboundRelay)
	if err != nil {
		return nil, err
	}
	out, err := transport(d.OutboundRelay)
	if err != nil {
		return nil, err
	}
	return &smtp.Queue{
		Outbox:       outbox{g},
		Transports:   map[smtp.Route]smtp.Transport{smtp.RouteInbound: in, smtp.RouteOutbound: out},
		Concurrency:  d.Concurrency,
		PerTransport: d.Concurrency,
		Backoff:      smtp.Backoff{Initial: d.RetryFirst, Max: d.RetryLast},
		MaxAge:       d.QueueAge,
		PollInterval: time.Second, // the CLI's releases are picked up within a second
		Hostname:     p.Gateway.Hostname,
		Now:          g.now,
		Log:          g.log,
	}, nil
}

// localQueue bounds the deliveries handed over in memory, localBytesMax
// the message bytes they carry.
const (
	localQueue    = 1024
	localBytesMax = 32 << 20
)

// runQueue runs the workers; g.wakeQ (new work) wakes them at once.
func (g *Gateway) runQueue(ctx context.Context, q *smtp.Queue) {
	g.serving.Store(true)
	defer g.serving.Store(false)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-g.wakeQ:
				q.Wake()
			}
		}
	}()
	if err := q.Run(ctx); err != nil {
		g.log.Error("delivery queue stopped", "err", err)
	}
}
