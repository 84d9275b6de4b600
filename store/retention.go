package store

import "time"

// Retention says what one purge removes. Each age counts from the moment a
// message reached its current state (State.StateAt); zero keeps forever.
// Messages that are held, queued, released, received, inspected or in
// state error, and messages with a delivery still pending, are never
// purged, whatever the ages say.
type Retention struct {
	// Now is the purge's clock reading.
	Now time.Time
	// Delivered: spool bytes of delivered and bounced messages older than
	// this are removed (the rows stay until Records).
	Delivered time.Duration
	// Quarantined: quarantined messages older than this are deleted (state
	// Deleted with an audit entry by Actor, content removed).
	Quarantined time.Duration
	// Rejected: spool bytes of rejected messages older than this are
	// removed.
	Rejected time.Duration
	// Records: rows, file index, deliveries and audit trail of finished
	// messages (delivered, bounced, rejected, deleted) older than this are
	// removed, with their bytes if still there.
	Records time.Duration
	// Blobs: blobs (PutBlob) older than this that no held message and no
	// sandbox task refers to are removed; expired sandbox verdicts go too.
	Blobs time.Duration
	// Actor is the audit actor of the deletions ("retention").
	Actor string
	// Limit bounds the messages each step handles in one call (0: no
	// bound), so that a caller can purge a large backlog in bounded
	// batches by calling again while Purged.More is set.
	Limit int
	// DryRun reports what would be removed and changes nothing.
	DryRun bool
}

// Purged is what one purge removed (or, with DryRun, would remove).
type Purged struct {
	// Deleted are quarantined messages moved to Deleted.
	Deleted []string
	// Content are messages whose spool bytes were removed (delivered,
	// bounced, rejected; and deleted ones whose bytes were left behind).
	Content []string
	// Records are messages whose rows were removed.
	Records []string
	// Blobs are the SHA-256 sums of removed blobs.
	Blobs []string
	// Verdicts counts expired sandbox verdicts removed.
	Verdicts int
	// Bytes is the size of the files removed.
	Bytes int64
	// More is set when a step stopped at Limit: call again.
	More bool
}

// Empty reports whether nothing was (or would be) removed.
func (p Purged) Empty() bool {
	return len(p.Deleted)+len(p.Content)+len(p.Records)+len(p.Blobs)+p.Verdicts == 0
}
