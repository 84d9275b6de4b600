package smtp

import (
	"context"
	"io"
	"strings"
	"time"
)

// Route says where a queued message goes.
type Route string

// The routes of the gateway.
const (
	// RouteInbound delivers to the inbound relay (Exchange/Postfix) or to
	// the maildir.
	RouteInbound Route = "inbound"
	// RouteOutbound delivers to the outbound smarthost.
	RouteOutbound Route = "outbound"
)

// Outgoing is one queued message as the delivery workers see it.
type Outgoing struct {
	ID    string
	Route Route
	// MailFrom is the reverse path; "" is the null sender (DSNs).
	MailFrom string
	// Rcpts are the recipients still to deliver.
	Rcpts []string
	// Attempts counts the earlier delivery attempts.
	Attempts int
	// Received is when the message was accepted; MaxAge counts from it.
	Received time.Time
	// SMTPUTF8 and EightBit carry the inbound MAIL FROM parameters: the
	// message needs SMTPUTF8 downstream, or has 8-bit content.
	SMTPUTF8, EightBit bool
	// Open returns the bytes to send (headers already prepended). It may
	// be called more than once per attempt.
	Open func() (io.ReadCloser, error)
}

// RcptResult is the outcome of one delivery attempt for one recipient.
type RcptResult struct {
	Rcpt     string
	Code     int // SMTP reply code; 2xx delivered, 4xx retry, 5xx failed
	Enhanced [3]int
	// Text is the reply text, or a short cause for locally generated
	// results. It may appear in a DSN to the sender.
	Text string
	// Perm marks a permanent failure (5xx, or given up).
	Perm bool
	// Remote names the server that replied; "" when mailguard generated
	// the result (connection failure, expiry, local error).
	Remote string
	// Detail is for logs only (the underlying error); never sent to
	// senders.
	Detail string
}

// Delivered reports a 2xx result.
func (r RcptResult) Delivered() bool { return r.Code >= 200 && r.Code < 300 }

// Final reports whether the recipient needs no further attempt.
func (r RcptResult) Final() bool { return r.Delivered() || r.Perm }

// Outbox is implemented by the gateway over the store. Claims are leased,
// so several nodes can share one queue; a claim that is never settled comes
// back when its lease expires.
type Outbox interface {
	// Claim returns up to max due messages, leased to this node.
	Claim(ctx context.Context, max int) ([]Outgoing, error)
	// Done settles a message whose recipients are all delivered.
	Done(ctx context.Context, id string, results []RcptResult) error
	// Retry schedules the recipients that are not Final for another attempt
	// at at. dsn, when not nil, reports the recipients that failed
	// permanently in this attempt and must be sent to the sender.
	Retry(ctx context.Context, id string, at time.Time, results []RcptResult, dsn []byte) error
	// Fail settles a message with at least one permanent failure and no
	// recipient left to retry. dsn is nil when the sender is null.
	Fail(ctx context.Context, id string, results []RcptResult, dsn []byte) error
}

// Transport makes one delivery attempt. It returns one result per
// recipient of m (missing ones count as temporary failures) and must read
// r only during the call.
type Transport interface {
	Deliver(ctx context.Context, m Outgoing, r io.Reader) []RcptResult
}

// tempResult is a locally generated temporary failure.
func tempResult(rcpt string, code int, enh [3]int, text, detail string) RcptResult {
	return RcptResult{Rcpt: rcpt, Code: code, Enhanced: enh, Text: text, Detail: detail}
}

// allResults gives every recipient the same result.
func allResults(rcpts []string, r RcptResult) []RcptResult {
	out := make([]RcptResult, len(rcpts))
	for i, rc := range rcpts {
		out[i] = r
		out[i].Rcpt = rc
	}
	return out
}

// needsUTF8 reports whether delivering m requires SMTPUTF8 downstream.
func needsUTF8(m Outgoing) bool {
	if m.SMTPUTF8 || !isASCII(m.MailFrom) {
		return true
	}
	for _, r := range m.Rcpts {
		if !isASCII(r) {
			return true
		}
	}
	return false
}

// oneLine makes a text safe for a DSN field or a log: one line, bounded.
func oneLine(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
