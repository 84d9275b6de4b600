package smtp

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/netip"
	"time"
)

// ConnInfo describes the client of one SMTP connection as mailguard sees it.
type ConnInfo struct {
	// ID identifies the connection in logs; it is created at connect time
	// with NewID and is appended to replies given before MAIL FROM.
	ID string
	// RemoteIP is the real client after PROXY and XCLIENT.
	RemoteIP   netip.Addr
	RemotePort uint16
	// LocalAddr is the address the client connected to (from the PROXY
	// header when one was used).
	LocalAddr netip.AddrPort
	// Hostname is the XCLIENT NAME, or "" (reverse DNS is not done here).
	Hostname string
	// HELO is the HELO/EHLO argument, or the XCLIENT HELO attribute, which
	// then sticks for the rest of the connection.
	HELO string
	// TLS is the TLS state, nil without TLS.
	TLS *tls.ConnectionState
	// Proxied reports that the identity came from PROXY or XCLIENT.
	Proxied bool
	// Internal reports that RemoteIP is in Config.InternalNetworks.
	Internal bool
}

// Direction classifies a transaction by where it comes from and goes to.
type Direction string

// The directions of a transaction.
const (
	// Inbound: from outside the internal networks, to local domains only.
	Inbound Direction = "inbound"
	// Outbound: from an internal network, with at least one non-local
	// recipient.
	Outbound Direction = "outbound"
	// Internal: from an internal network, to local domains only.
	Internal Direction = "internal"
)

// Envelope is one SMTP transaction as far as it has got.
type Envelope struct {
	// ID is the transaction ID created at MAIL FROM (NewID); it is the
	// mailguard ID of the message.
	ID   string
	Conn ConnInfo
	// MailFrom is the reverse path without <>; "" is the null sender.
	MailFrom string
	// Rcpts are the accepted recipients, in the form they will be relayed
	// (a quoted local part stays quoted), without duplicates.
	Rcpts []string
	// Direction is final when Data is called; during Rcpt it already
	// counts the recipient being checked.
	Direction Direction
	// SMTPUTF8 and EightBit are the MAIL FROM SMTPUTF8 and BODY=8BITMIME
	// parameters.
	SMTPUTF8, EightBit bool
	// Size is the MAIL FROM SIZE= parameter, 0 when absent.
	Size int64
	// Received is when MAIL FROM was accepted.
	Received time.Time
}

// Reject is a known refusal with its reply code, for example
// &Reject{550, [3]int{5, 7, 1}, "relay access denied"}. Handlers return it
// (possibly wrapped) to choose the reply; anything else becomes a generic
// 451 4.3.0.
type Reject struct {
	Code     int
	Enhanced [3]int
	Text     string
}

// Error returns the reply as it would be written, without the ID.
func (r *Reject) Error() string {
	return fmt.Sprintf("%d %d.%d.%d %s", r.Code, r.Enhanced[0], r.Enhanced[1], r.Enhanced[2], r.Text)
}

// Temporary reports whether the refusal is a 4xx.
func (r *Reject) Temporary() bool { return r.Code/100 == 4 }

// Handler is implemented by the gateway. Any returned error goes through
// replyFor: a *Reject chooses the reply, anything else is 451 4.3.0.
type Handler interface {
	// Connect is called once the client is known (after PROXY, after an
	// implicit TLS handshake, and again after a successful XCLIENT), before
	// the greeting. An error refuses the connection with its reply.
	Connect(ctx context.Context, c ConnInfo) error
	// Mail is called after the syntax and size checks of MAIL FROM.
	Mail(ctx context.Context, e *Envelope) error
	// Rcpt is called after syntax checks and relay control; rcpt is not yet
	// in e.Rcpts and is added when Rcpt returns nil.
	Rcpt(ctx context.Context, e *Envelope, rcpt string) error
	// Data receives the validated, size-limited message stream (CRLF line
	// endings, dot-unstuffed) of a DATA or BDAT transaction. It must
	// consume r. If r returns an error (bare LF/CR, too large, timeout) it
	// must not accept the message and should return that error. nil means
	// the message is durably accepted: the client gets 250 "queued as ID".
	Data(ctx context.Context, e *Envelope, r io.Reader) error
}

// Listener is one listening address of the inbound server.
type Listener struct {
	// Addr is a host:port to listen on, e.g. "127.0.0.1:2525" or ":25".
	Addr string
	// Proxy enables the HAProxy PROXY protocol (v1 and v2) on this
	// listener. Peers in Config.TrustedProxies must then start with a PROXY
	// header (read before the greeting); other peers are served directly,
	// and a PROXY header from them drops the connection.
	Proxy bool
	// ProxyRequired drops connections from peers outside TrustedProxies on
	// a Proxy listener instead of serving them directly.
	ProxyRequired bool
	// ImplicitTLS starts TLS on connect (the port 465 style); requires TLS.
	ImplicitTLS bool
}

// Config configures the inbound server. Zero values take the documented
// defaults.
type Config struct {
	// Hostname is our name in the greeting, EHLO reply and Received-less
	// replies. Required.
	Hostname string
	// Listen lists the listening addresses. Required.
	Listen []Listener

	// TLS enables STARTTLS (and ImplicitTLS listeners). When CertFile and
	// KeyFile are set, the certificate is loaded from them (and reloaded
	// by Server.ReloadTLS) and TLS may be nil or carry other settings.
	TLS               *tls.Config
	CertFile, KeyFile string

	// LocalDomains are the domains we accept mail for from anyone
	// (compared case-insensitively, in A-label form).
	LocalDomains []string
	// LocalSubdomains also treats every subdomain of a local domain as
	// local.
	LocalSubdomains bool
	// InternalNetworks may relay to any domain.
	InternalNetworks []netip.Prefix
	// TrustedProxies may send PROXY headers and use XCLIENT.
	TrustedProxies []netip.Prefix

	// MaxMessageBytes limits the message size (SIZE). Default 50 MiB.
	MaxMessageBytes int64
	// MaxRecipients limits recipients per message (452 4.5.3). Default 100.
	MaxRecipients int
	// CommandTimeout is the idle limit for one command line, and for the
	// gap between two reads inside DATA. Default 5 minutes (RFC 5321
	// §4.5.3.2.7).
	CommandTimeout time.Duration
	// DataTimeout is the total time allowed for one DATA phase or one BDAT
	// transaction. Default 10 minutes.
	DataTimeout time.Duration
	// MaxConns limits concurrent connections (421 4.7.0 before the
	// greeting). Default 500.
	MaxConns int
	// MaxConnsPerIP limits concurrent connections per real client IP.
	// Default 20.
	MaxConnsPerIP int
	// MaxLineLength limits one line of a message body. Default 1 MiB.
	MaxLineLength int
	// MaxCommandLength limits one command line, CRLF included. Default
	// 4096.
	MaxCommandLength int
	// MaxErrors is the number of error replies after which the session is
	// closed with 421. Default 20.
	MaxErrors int
	// ProxyHeaderTimeout limits the wait for a PROXY header. Default 10s.
	ProxyHeaderTimeout time.Duration
	// TLSHandshakeTimeout limits a TLS handshake. Default 30s.
	TLSHandshakeTimeout time.Duration
}

// Default limits of Config.
const (
	DefaultMaxMessageBytes     = 50 << 20
	DefaultMaxRecipients       = 100
	DefaultCommandTimeout      = 5 * time.Minute
	DefaultDataTimeout         = 10 * time.Minute
	DefaultMaxConns            = 500
	DefaultMaxConnsPerIP       = 20
	DefaultMaxLineLength       = 1 << 20
	DefaultMaxCommandLength    = 4096
	DefaultMaxErrors           = 20
	DefaultProxyHeaderTimeout  = 10 * time.Second
	DefaultTLSHandshakeTimeout = 30 * time.Second
)

func (c *Config) setDefaults() {
	setDefault(&c.MaxMessageBytes, DefaultMaxMessageBytes)
	setDefault(&c.MaxRecipients, DefaultMaxRecipients)
	setDefault(&c.CommandTimeout, DefaultCommandTimeout)
	setDefault(&c.DataTimeout, DefaultDataTimeout)
	setDefault(&c.MaxConns, DefaultMaxConns)
	setDefault(&c.MaxConnsPerIP, DefaultMaxConnsPerIP)
	setDefault(&c.MaxLineLength, DefaultMaxLineLength)
	setDefault(&c.MaxCommandLength, DefaultMaxCommandLength)
	setDefault(&c.MaxErrors, DefaultMaxErrors)
	setDefault(&c.ProxyHeaderTimeout, DefaultProxyHeaderTimeout)
	setDefault(&c.TLSHandshakeTimeout, DefaultTLSHandshakeTimeout)
}

func setDefault[T int | int64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

func inPrefixes(ip netip.Addr, ps []netip.Prefix) bool {
	ip = ip.Unmap()
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
