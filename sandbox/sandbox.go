// Package sandbox owns everything mailguard does with malware sandboxes that
// is not tied to one vendor: the Client seam (a CAPEv2 implementation lives
// in sandbox/cape), the verdict cache and in-flight task table behind the
// Store interface, and the Scheduler that decides which files go to the
// sandbox, never submits the same content twice, polls pending tasks with
// backoff under a request budget, and reports verdicts through a callback.
//
// It must not know SMTP, MIME or policy: callers hand it files (hash, name,
// type, a way to read the bytes) and get verdicts back; what a verdict means
// for a message is the gateway's and the policy's business.
package sandbox

import (
	"context"
	"errors"
	"io"
	"time"
)

// File is one piece of content to analyse.
type File struct {
	// SHA256 is the lowercase hex SHA-256 of the content (64 characters).
	SHA256 string
	// Name is the file name as it appeared in the mail; the client makes an
	// upload-safe name from it.
	Name string
	// Type is a free-form type hint (MIME type or extension); informational.
	Type string
	// Size is the exact content length in bytes.
	Size int64
	// Open returns the content. It may be called more than once (the file is
	// resubmitted when an analysis fails), each time from the start.
	Open func() (io.ReadCloser, error)
	// Options are sandbox options, such as "package", "timeout" or
	// "password". Keys a vendor does not know are passed as analysis options.
	Options map[string]string
	// Ref is an opaque, durable handle chosen by the caller (for example a
	// message ID and attachment path). The Scheduler persists it with the
	// task and passes it back to its Reopen hook when Open is not available
	// (after a restart or on another node).
	Ref string
}

// TaskID identifies a sandbox task. For CAPE it is the decimal task id; an
// upload that the sandbox split into several tasks (an archive unpacked on
// the host) is the ids joined by commas, in the order the sandbox gave them.
type TaskID string

// Verdict states.
const (
	StateDone    = "done"    // the sandbox produced a report
	StateError   = "error"   // no usable analysis (failed repeatedly, refused, unreadable)
	StateTimeout = "timeout" // the analysis did not finish within the deadline
)

// Verdict is what a sandbox said about one piece of content.
type Verdict struct {
	// Key is the cache key (see Key); it equals SHA256 unless a password or
	// archive member option was used.
	Key    string `json:"key,omitempty"`
	SHA256 string `json:"sha256"`
	TaskID TaskID `json:"task_id"`
	// State is StateDone, StateError or StateTimeout.
	State string `json:"state"`
	// Malscore is the sandbox score, 0.0 (nothing seen) to 10.0 (malicious).
	Malscore float64 `json:"malscore"`
	// Malstatus is the sandbox's own label ("Malicious", "Suspicious",
	// "Clean", "Undetected", "Failed") or empty when it gave none.
	Malstatus string `json:"malstatus"`
	// Signatures are the names of the behavioural signatures that matched.
	Signatures []string `json:"signatures"`
	// Detections are malware family names the sandbox detected.
	Detections []string `json:"detections"`
	// Family is the first detected family, if any.
	Family string `json:"family,omitempty"`
	// Error says why State is not StateDone.
	Error string `json:"error,omitempty"`
	// At is when the verdict was reached.
	At time.Time `json:"at"`
}

// ErrPending is returned by Client.Status while the sandbox has no report yet.
// Implementations may wrap it to say more (for example the current status).
var ErrPending = errors.New("sandbox: task pending")

// Client submits one file to a malware sandbox and reports on the task.
// Errors are classified (see Error, KindOf, IsTemporary).
type Client interface {
	// Submit uploads f and returns the task to poll.
	Submit(ctx context.Context, f File) (TaskID, error)
	// Status returns the verdict once the sandbox has a report, ErrPending
	// (possibly wrapped) before that, and a KindTaskFailed error when the
	// sandbox gave up on the analysis.
	Status(ctx context.Context, id TaskID) (Verdict, error)
}

// Searcher is implemented by clients that can look content up on the sandbox
// before uploading it, so that a sample analysed before is not sent again.
type Searcher interface {
	// SearchSHA256 returns a task for content sha256 analysed (or being
	// analysed) with options compatible with opts (same password and archive
	// member), and whether one was found.
	SearchSHA256(ctx context.Context, sha256 string, opts map[string]string) (TaskID, bool, error)
}
