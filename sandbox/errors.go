package sandbox

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Kind classifies a sandbox error. Kinds are metric label values: the set is
// small and fixed.
type Kind string

// Error kinds.
const (
	// KindUnavailable: the sandbox could not be reached or answered 5xx
	// (connection refused or reset, timeout, 502/503/504, disk full).
	// Temporary.
	KindUnavailable Kind = "unavailable"
	// KindRateLimited: HTTP 429 (or the API's rate-limit error). Temporary;
	// Error.RetryAfter says when to come back.
	KindRateLimited Kind = "rate_limited"
	// KindProtocol: the answer could not be understood (malformed JSON,
	// unexpected HTML or redirect, unexpected status). Temporary when the
	// body was merely garbled, permanent otherwise.
	KindProtocol Kind = "protocol"
	// KindAuth: the sandbox refused our credentials (401/403). Permanent
	// until the configuration changes.
	KindAuth Kind = "auth"
	// KindConfig: the sandbox is set up in a way that refuses the request
	// whatever the file (endpoint disabled, unknown machine, tag or route,
	// TLS verification failure, URL without /apiv2/). Permanent until the
	// configuration changes.
	KindConfig Kind = "config"
	// KindRejected: the sandbox refused this file (empty, too large, an
	// option it cannot carry). Permanent for this file.
	KindRejected Kind = "rejected"
	// KindDuplicate: the sandbox refused the file because it already has it
	// (CAPE's unique submission); search for the existing task instead.
	KindDuplicate Kind = "duplicate"
	// KindNotFound: the task or sample does not exist. Permanent.
	KindNotFound Kind = "not_found"
	// KindTaskFailed: the sandbox gave up on the analysis
	// (failed_analysis, failed_processing, failed_reporting, banned, no
	// usable report). Permanent for that task; resubmitting may help.
	KindTaskFailed Kind = "task_failed"
	// KindInternal: an error on our side (reading the content, a bug).
	KindInternal Kind = "internal"
)

// Error is a classified sandbox error.
type Error struct {
	Op         string        // "submit", "status", "report", "search", ...
	Kind       Kind          // what went wrong
	Temporary  bool          // retrying later may succeed
	HTTPStatus int           // HTTP status code, 0 if none
	RetryAfter time.Duration // when the sandbox asked us to come back (429, 503)
	Msg        string        // the sandbox's message or our description
	Err        error         // underlying error, if any
}

// Error implements error.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("sandbox: ")
	if e.Op != "" {
		b.WriteString(e.Op)
		b.WriteString(": ")
	}
	b.WriteString(string(e.Kind))
	if e.HTTPStatus != 0 {
		b.WriteString(" (http ")
		b.WriteString(strconv.Itoa(e.HTTPStatus))
		b.WriteString(")")
	}
	if e.Msg != "" {
		b.WriteString(": ")
		b.WriteString(e.Msg)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the kind of a sandbox error: the Kind of an *Error in err's
// chain, KindUnavailable for context deadlines, and KindInternal otherwise.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return KindUnavailable
	}
	return KindInternal
}

// IsTemporary reports whether retrying the same request later may succeed.
// Errors that are not classified are treated as temporary: a sandbox error
// must never lose a file.
func IsTemporary(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Temporary
	}
	return true
}

// RetryAfter returns the delay the sandbox asked for, or 0.
func RetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}
