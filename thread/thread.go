// Package thread is mailguard's memory of conversations and the signals
// computed from it: first contact and young relationships sending their
// first payload (やり取り型), thread hijacking (a stranger replying inside a
// known thread, a thread revived after a long silence), lookalike sender
// domains, executive (VIP) display-name impersonation, senders flagged by
// trap addresses, and the PPAP link between an encrypted archive and the
// mail that carries its password.
//
// It owns the record types, the consumer-side Store interface, the pure
// signal functions (subject normalisation, skeletons and edit distance,
// display-name normalisation, relationship scoring) and an in-memory Store
// for tests. It must not know MIME internals, SMTP or SQL: the gateway
// hands it plain header values, and store implementations persist its
// records. Records hold ids, hashes and metadata, never bodies; password
// candidates are kept only until their window ends.
package thread

import (
	"context"
	"time"
)

// Direction is the way a message travelled through mailguard.
type Direction string

// Directions, spelled as in the gateway's envelope.
const (
	Inbound  Direction = "inbound"
	Outbound Direction = "outbound"
)

// Flags describe what a message carried and what became of it.
type Flags uint16

// Message flags.
const (
	// FlagAttachment: the message carried at least one attachment.
	FlagAttachment Flags = 1 << iota
	// FlagEncrypted: an attachment was an encrypted archive or document.
	FlagEncrypted
	// FlagLink: the text carried links.
	FlagLink
	// FlagLocked: an encrypted archive stayed locked (it waits for a
	// password mail while the outcome is held).
	FlagLocked
	// FlagPassword: the text yielded password candidates.
	FlagPassword
	// FlagThreadOpened: an archive was opened with a password from another
	// mail of the conversation.
	FlagThreadOpened
)

// Payload reports whether the message carried anything that can hurt:
// an attachment, an encrypted archive or a link.
func (f Flags) Payload() bool { return f&(FlagAttachment|FlagEncrypted|FlagLink) != 0 }

// Address is a mailbox with its display name; Addr is lowercased.
type Address struct {
	Addr string `json:"a"`
	Name string `json:"n,omitempty"`
}

// Outcome is the lifecycle state a message reached, as far as the
// conversation memory cares.
type Outcome string

// Outcomes.
const (
	OutcomeHeld        Outcome = "held"
	OutcomeDelivered   Outcome = "delivered" // queued or delivered
	OutcomeQuarantined Outcome = "quarantined"
)

// Record is what mailguard remembers of one message relayed in either
// direction. It is keyed by the mailguard ID; recording the same ID again
// (a held message decided later) updates Flags, Outcome, Verdict and the
// secrets, never the relationship counters.
type Record struct {
	ID         string    // mailguard ID
	MessageID  string    // Message-ID without angle brackets
	InReplyTo  []string  // message ids
	References []string  // message ids, oldest first
	Thread     string    // thread key (see ThreadKey)
	Subject    string    // SubjectKey of the base subject (a hash)
	Direction  Direction //
	At         time.Time // when mailguard received it
	From       Address   // header From (the first)
	MailFrom   string    // envelope sender, lowercased
	// Participants are every address the message names: envelope and
	// header senders and recipients, with display names where known.
	Participants []Address
	// External are the correspondents outside the local domains, Internal
	// our users; the relationship counters are kept per pair of them.
	External []string
	Internal []string
	Flags    Flags
	Outcome  Outcome
	// Verdict is the reason tag that quarantined the message, if any.
	Verdict string
	// Passwords are the candidates the text yielded. They are secrets:
	// stores keep them only until Expires and never return them from
	// Recent or Lookup; see Store.Passwords.
	Passwords []string
	// Expires ends the PPAP window: secrets are dropped and a locked
	// message stops waiting for its password.
	Expires time.Time
}

// Pair is the relationship between one correspondent (an address, or a
// domain for the organisation-wide view) and one of our users (or "" for
// the organisation).
type Pair struct {
	External string
	Internal string
	First    time.Time // first message either way
	Last     time.Time // latest message either way
	// FirstDir says who wrote first: Outbound means one of our users did.
	FirstDir Direction
	Inbound  int // messages from the correspondent
	Outbound int // messages from our side
	// Payloads counts inbound messages with an attachment, an encrypted
	// archive or a link.
	Payloads int
}

// Exchanges is the number of messages either way.
func (p Pair) Exchanges() int { return p.Inbound + p.Outbound }

// Query asks the store about one message being inspected.
type Query struct {
	Now time.Time
	// Refs are the ids of In-Reply-To and References.
	Refs []string
	// Sender is the correspondent's address (inbound: header From).
	Sender string
	// Domain is the correspondent's registrable domain.
	Domain string
	// Internal are our users taking part (inbound: the local recipients).
	Internal []string
	// NameKey is NameKey of the sender's display name ("" to skip).
	NameKey string
	// Flagged are the addresses to check against trap flags.
	Flagged []string
	// Exclude is the mailguard ID of the message itself: a held message
	// inspected again was already recorded once.
	Exclude string
}

// History is what the store knows that bears on one message.
type History struct {
	// Parents are the referenced messages mailguard saw.
	Parents []Record
	// Thread are the messages of the parents' thread, newest first,
	// at most MaxThread.
	Thread []Record
	// Pairs are the relationships between Sender and each of Internal
	// that have any history.
	Pairs []Pair
	// Domain is the organisation-wide relationship with Domain (Internal
	// is ""), zero when none.
	Domain Pair
	// Flagged is the first queried address that a trap flagged, or "".
	Flagged string
	// Names are our users (seen on outbound mail) whose display name has
	// the queried NameKey.
	Names []Address
	// Self is the earlier record of the excluded message, if any; its
	// share of the counters is taken out by Analyze.
	Self *Record
}

// MaxThread bounds the thread messages a lookup returns.
const MaxThread = 200

// Relation selects the messages related to one message for PPAP linking
// (shared/reference/targeted-mail-signals.md §b.6): from the same
// correspondent to one of the same users, or in the same thread, received
// at or after Since.
type Relation struct {
	Sender   string
	Internal []string
	Thread   string
	Since    time.Time
}

// Secret is one password candidate of a related message.
type Secret struct {
	MsgID string
	Value string
	At    time.Time
}

// String hides the value so that a Secret printed by mistake leaks nothing.
func (s Secret) String() string { return "Secret{msg=" + s.MsgID + "}" }

// Store is the persistent conversation memory (STYLE.md §6.3). Every
// method must be safe for concurrent use; lookups must use indexes, never
// scan the message table.
type Store interface {
	// Record remembers a message (see Record for the idempotency rule).
	Record(ctx context.Context, r Record) error
	// Lookup returns the history bearing on one message.
	Lookup(ctx context.Context, q Query) (*History, error)
	// Recent returns the messages of a relation, newest first, at most
	// MaxThread, without their secrets.
	Recent(ctx context.Context, rel Relation) ([]Record, error)
	// Passwords returns the unexpired password candidates of the given
	// messages, newest message first.
	Passwords(ctx context.Context, ids []string, now time.Time) ([]Secret, error)
	// Flag marks a sender as caught by a trap address.
	Flag(ctx context.Context, addr string, at time.Time, detail string) error
	// Correspondents returns the domains our users wrote to, the most
	// exchanges first, at most limit.
	Correspondents(ctx context.Context, limit int) ([]Pair, error)
	// Purge forgets messages, relationships and flags last seen before
	// before, and every secret expired at now. It returns the number of
	// rows removed.
	Purge(ctx context.Context, before, now time.Time) (int64, error)
}
