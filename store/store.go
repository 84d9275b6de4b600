// Package store owns message blobs and metadata: the spool, the lifecycle
// states of DESIGN.md, the delivery queue with leased claims, the quarantine
// index and the audit trail. Every transition is written here before it is
// acted on. It must not know policy: it stores decisions as opaque JSON.
//
// The embedded implementation is store/sqlite (SQLite + spool directory);
// the interface is shaped so that a PostgreSQL implementation for several
// nodes (claims with leases, FOR UPDATE SKIP LOCKED) fits without changing
// callers.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"time"
)

// State is a lifecycle state of a message (DESIGN.md "Message lifecycle").
type State string

// Lifecycle states. received → inspected → {queued | held | quarantined |
// rejected} → {delivered | bounced | released | deleted}.
const (
	Received    State = "received"
	Inspected   State = "inspected"
	Queued      State = "queued"
	Held        State = "held"
	Quarantined State = "quarantined"
	Rejected    State = "rejected"
	Delivered   State = "delivered"
	Bounced     State = "bounced"
	Released    State = "released"
	Deleted     State = "deleted"
	// Error marks a row whose spool file is missing: evidence is gone and
	// an operator must look (Resume logs it and counts it).
	Error State = "error"
)

// Sentinel errors.
var (
	ErrNotFound = errors.New("store: no such message")
	// ErrState means a conditional transition found the message in another
	// state (another node or the CLI acted first).
	ErrState = errors.New("store: message not in the expected state")
)

// Message is the metadata row of one message. The bytes live in the spool.
type Message struct {
	ID         string    `json:"id"`
	ReceivedAt time.Time `json:"received_at"`
	State      State     `json:"state"`
	StateAt    time.Time `json:"state_at"`
	Direction  string    `json:"direction"`
	ClientIP   string    `json:"client_ip"`
	HELO       string    `json:"helo"`
	Proto      string    `json:"proto"`              // ESMTP, ESMTPS, UTF8SMTPS… for the Received field
	SMTPUTF8   bool      `json:"smtputf8,omitempty"` // the client used SMTPUTF8: needed downstream
	EightBit   bool      `json:"eightbit,omitempty"` // BODY=8BITMIME
	MailFrom   string    `json:"mail_from"`
	Rcpts      []string  `json:"rcpts"`
	Size       int64     `json:"size"`

	// Set at inspection.
	MessageID string          `json:"message_id"`
	From      string          `json:"from"`
	Subject   string          `json:"subject"`
	Action    string          `json:"action"`
	Reasons   []string        `json:"reasons"`
	Score     float64         `json:"score"`
	Decision  json.RawMessage `json:"decision,omitempty"` // opaque to the store
	Prepend   []byte          `json:"-"`                  // header fields prepended at delivery
	HoldUntil time.Time       `json:"hold_until,omitzero"`
	Files     []FileRef       `json:"-"` // attachment index for hunting
}

// FileRef indexes one file of a message's attachment tree, so operators can
// ask "who else received this file?".
type FileRef struct {
	SHA256 string
	Path   string
	Name   string
	Type   string
	Size   int64
}

// Delivery is one queued delivery of a message to a set of recipients. A
// message normally has one; a release to another address adds one, a DSN is
// a message of its own with its own delivery.
type Delivery struct {
	ID        int64
	MsgID     string
	Route     string // "inbound" or "outbound"
	MailFrom  string
	Rcpts     []string // still pending
	Attempts  int
	NextAt    time.Time
	Created   time.Time
	Received  time.Time // the message's receipt, for the maximum queue age
	Extra     []byte    // extra header fields for this delivery (X-Mailguard-Released)
	LastError string
	// SMTPUTF8 and EightBit come from the message (its MAIL FROM).
	SMTPUTF8, EightBit bool
	// From the message's decision, what delivery sends: Prepend goes on
	// top; SubjectPrefix is added to the Subject; StripAuthResults removes
	// incoming Authentication-Results fields that claim our name. Size is
	// the stored message's size.
	Prepend          []byte
	SubjectPrefix    string
	StripAuthResults bool
	Size             int64
	// Data, when not nil, is the message as received, already in memory
	// (a delivery handed over by the process that accepted it); it is
	// never stored.
	Data []byte
}

// RcptResult is the outcome for one recipient of one attempt.
type RcptResult struct {
	Rcpt string `json:"rcpt"`
	Code int    `json:"code"`
	Text string `json:"text"`
	Perm bool   `json:"perm"`
}

// Decided is what inspection concludes about a message, persisted in one
// transaction together with the new state and, for Queued, the deliveries.
type Decided struct {
	State     State // Queued, Held, Quarantined or Rejected
	MessageID string
	From      string
	Subject   string
	Action    string
	Reasons   []string
	Score     float64
	Decision  json.RawMessage
	Prepend   []byte
	// SubjectPrefix and StripAuthResults are the changes delivery makes
	// to the header (see Delivery).
	SubjectPrefix    string
	StripAuthResults bool
	HoldUntil        time.Time
	Files            []FileRef
	// Deliveries are created for State == Queued; Decide writes their IDs
	// back into this slice.
	Deliveries []Delivery
	// LeaseOwner, when set, creates the deliveries already leased to that
	// node until LeaseUntil: the node that decided hands them to its own
	// workers without a separate claim.
	LeaseOwner string
	LeaseUntil time.Time
}

// Filter selects messages for listing.
type Filter struct {
	States []State
	Since  time.Time
	Reason string
	From   string // substring of envelope or header sender, case-insensitive
	Rcpt   string // substring of a recipient, case-insensitive
	SHA256 string // a file of the message has this hash
	IDs    []string
	Limit  int
}

// Audit records an operator action on a message.
type Audit struct {
	MsgID  string    `json:"msg_id"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Action string    `json:"action"`
	Note   string    `json:"note,omitempty"`
	Detail string    `json:"detail,omitempty"`
}

// Recovery is what Recover found when reconciling rows with spool files.
type Recovery struct {
	Orphans      []string // spool files without a row, moved to spool/orphan/
	MissingSpool []string // rows without a spool file, now in state Error
	TempRemoved  int      // temp files older than a day removed
}

// Store is the persistent state of mailguard. Implementations must make
// every method safe for concurrent use, and Accept durable before it
// returns: file fsynced, renamed, directory fsynced, row committed.
type Store interface {
	// Accept streams r into the spool and records m in state Received.
	// It returns the number of bytes stored. If r fails, nothing is
	// recorded and the partial file is removed.
	Accept(ctx context.Context, m *Message, r io.Reader) (int64, error)
	// AcceptDecided records a message inspected before it was stored: the
	// bytes, the row in d.State with d's decision, file index and
	// deliveries (IDs written back into d.Deliveries), all in one
	// transaction, durable before it returns. It is Accept followed by
	// Decide from Received, at the price of one commit.
	AcceptDecided(ctx context.Context, m *Message, data []byte, d Decided) error
	// Open returns the message bytes exactly as received.
	Open(ctx context.Context, id string) (io.ReadSeekCloser, error)
	// Get returns the message row.
	Get(ctx context.Context, id string) (*Message, error)
	// Decide records the decision and moves the message from one of the
	// from states to d.State, creating d.Deliveries, in one transaction.
	Decide(ctx context.Context, id string, from []State, d Decided) error
	// Transition moves a message from one of the from states to to. With
	// deliveries, they are created in the same transaction (release).
	// Moving a queued message to held, quarantined, rejected or deleted
	// cancels its pending deliveries in the same transaction.
	Transition(ctx context.Context, id string, from []State, to State, dels []Delivery, audit *Audit) error
	// List returns messages matching f, newest first.
	List(ctx context.Context, f Filter) ([]*Message, error)
	// InState returns the IDs of messages in any of the states, oldest first.
	InState(ctx context.Context, states ...State) ([]string, error)

	// Claim leases up to max due deliveries to owner for lease.
	Claim(ctx context.Context, owner string, lease time.Duration, max int) ([]Delivery, error)
	// DeliveryDone finishes a delivery; the message becomes Delivered (or
	// Bounced if every recipient of every delivery failed) when it has no
	// pending delivery left. dsn, if not nil, is queued as a new message.
	DeliveryDone(ctx context.Context, id int64, results []RcptResult, dsn *Message, dsnBytes []byte) error
	// DeliveryRetry keeps the delivery for the recipients left, due at.
	// dsn, if not nil, reports recipients that failed for good meanwhile
	// and is queued as a new message in the same transaction.
	DeliveryRetry(ctx context.Context, id int64, at time.Time, pending []string, results []RcptResult, dsn *Message, dsnBytes []byte) error
	// ReleaseLeases makes the deliveries leased to owner due again: a node
	// that restarts takes back what it held when it stopped.
	ReleaseLeases(ctx context.Context, owner string) (int, error)
	// PendingDeliveries counts deliveries not finished.
	PendingDeliveries(ctx context.Context) (int, error)

	// RemoveContent deletes the spool bytes of a message in a final state
	// (deleted); the row and its audit trail stay.
	RemoveContent(ctx context.Context, id string) error

	// PutBlob stores content under its SHA-256, durably; the same content
	// is kept once. It fails if the content does not match sum.
	PutBlob(ctx context.Context, sum string, r io.Reader) error
	// OpenBlob returns content stored with PutBlob (ErrNotFound if none).
	OpenBlob(ctx context.Context, sum string) (io.ReadSeekCloser, error)

	// AddAudit records an operator action.
	AddAudit(ctx context.Context, a Audit) error
	// Audits returns the audit trail of a message, oldest first.
	Audits(ctx context.Context, id string) ([]Audit, error)

	// Recover reconciles spool files with rows (see Recovery). Run it
	// before listeners open.
	Recover(ctx context.Context) (Recovery, error)
	// Close releases the store.
	Close() error

	// Purge applies retention once (see Retention for what goes and what
	// never does) and says what it removed. Every step is idempotent and
	// conditional, so it is safe beside running workers, the CLI and other
	// nodes purging at the same time.
	Purge(ctx context.Context, r Retention) (Purged, error)
	// MessageIDs returns the IDs of the messages matching f, newest first,
	// as List would order them, without loading the rows: work over many
	// messages (hunt) stays in bounded memory.
	MessageIDs(ctx context.Context, f Filter) ([]string, error)
}
