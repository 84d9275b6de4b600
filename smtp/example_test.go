package smtp_test

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"time"

	"github.com/mailguard/mailguard/smtp"
)

// gateway is what the gateway package implements: the inbound Handler.
type gateway struct{}

func (gateway) Connect(ctx context.Context, c smtp.ConnInfo) error { return nil }
func (gateway) Mail(ctx context.Context, e *smtp.Envelope) error   { return nil }
func (gateway) Rcpt(ctx context.Context, e *smtp.Envelope, rcpt string) error {
	if rcpt == "trap@corp.example" {
		return &smtp.Reject{Code: 550, Enhanced: [3]int{5, 1, 1}, Text: "no such user"}
	}
	return nil
}
func (gateway) Data(ctx context.Context, e *smtp.Envelope, r io.Reader) error {
	// Spool r durably (tmp, fsync, rename) before returning nil; a stream
	// error from r must be returned as is.
	_, err := io.Copy(io.Discard, r)
	return err
}

// The inbound server: one MX listener and one behind HAProxy.
func ExampleNewServer() {
	srv, err := smtp.NewServer(smtp.Config{
		Hostname: "mx.corp.example",
		Listen: []smtp.Listener{
			{Addr: ":25"},
			{Addr: ":2525", Proxy: true},
		},
		CertFile:         "/etc/mailguard/tls/cert.pem",
		KeyFile:          "/etc/mailguard/tls/key.pem",
		LocalDomains:     []string{"corp.example"},
		InternalNetworks: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		TrustedProxies:   []netip.Prefix{netip.MustParsePrefix("10.0.9.0/24")},
		MaxMessageBytes:  50 << 20,
	}, gateway{}, slog.Default())
	if err != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_ = srv.Serve(ctx) // returns after a graceful shutdown when ctx ends
}

// The delivery workers: inbound mail to Exchange with opportunistic TLS,
// outbound mail to the smarthost with TLS required.
func ExampleQueue() {
	var outbox smtp.Outbox // implemented by the gateway over the store
	inbound, err := smtp.NewRelay("exchange.corp.example:25", smtp.RelayOptions{Hostname: "mx.corp.example"})
	if err != nil {
		return
	}
	outbound, err := smtp.NewRelay("smarthost.corp.example:587", smtp.RelayOptions{
		Hostname: "mx.corp.example", TLS: smtp.TLSRequired, CAFile: "/etc/mailguard/tls/internal-ca.pem",
	})
	if err != nil {
		return
	}
	q := &smtp.Queue{
		Outbox:     outbox,
		Transports: map[smtp.Route]smtp.Transport{smtp.RouteInbound: inbound, smtp.RouteOutbound: outbound},
		Backoff:    smtp.Backoff{Initial: time.Minute, Max: time.Hour},
		MaxAge:     5 * 24 * time.Hour,
		Hostname:   "mx.corp.example",
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = q.Run(ctx) }()
	q.Wake() // after queueing a message
}
