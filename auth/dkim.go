package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/emersion/go-msgauth/dkim"
)

// DKIMStatus is an RFC 8601 §2.7.1 DKIM result.
type DKIMStatus string

// The DKIM results of RFC 8601 §2.7.1.
const (
	DKIMNone      DKIMStatus = "none" // not used per signature; no signature is an empty list
	DKIMPass      DKIMStatus = "pass"
	DKIMFail      DKIMStatus = "fail"      // did not verify, or weak crypto (RFC 8301)
	DKIMPolicy    DKIMStatus = "policy"    // verified part, but not acceptable (l= leaving body unsigned)
	DKIMNeutral   DKIMStatus = "neutral"   // not evaluated (over MaxDKIMSignatures)
	DKIMTemperror DKIMStatus = "temperror" // key lookup failed temporarily
	DKIMPermerror DKIMStatus = "permerror" // malformed signature, missing or revoked key
)

// DKIMResult is the verification of one DKIM-Signature field.
type DKIMResult struct {
	Status     DKIMStatus `json:"status"`
	Domain     string     `json:"domain"`               // d=, the signing domain (SDID)
	Selector   string     `json:"selector"`             // s=
	Identifier string     `json:"identifier,omitempty"` // i=, the AUID
	Algorithm  string     `json:"algorithm"`            // a=, e.g. rsa-sha256, ed25519-sha256
	// BodyLength is the l= tag when present: how many canonical body bytes
	// the signature covers.
	BodyLength *int64 `json:"body_length,omitempty"`
	// UnsignedBytes is how many canonical body bytes lie beyond l=.
	UnsignedBytes int64  `json:"unsigned_bytes,omitempty"`
	Reason        string `json:"reason,omitempty"`
	// Signature holds the start of b= (RFC 6008 header.b), to tell
	// signatures of the same domain apart in Authentication-Results.
	Signature string `json:"-"`
}

// sigTags is the part of a DKIM-Signature the results report, parsed
// leniently (go-msgauth decides validity).
type sigTags struct {
	domain, selector, identifier, algorithm, b, canon string
	length                                            int64
	hasLength, lengthBad                              bool
}

func parseSigTags(value string) sigTags {
	var t sigTags
	for _, kv := range strings.Split(value, ";") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		v = stripFWS(v)
		switch strings.TrimSpace(k) {
		case "d":
			t.domain = v
		case "s":
			t.selector = v
		case "i":
			t.identifier = v
		case "a":
			t.algorithm = strings.ToLower(v)
		case "c":
			t.canon = strings.ToLower(v)
		case "b":
			t.b = v
		case "l":
			t.hasLength = true
			n, err := strconv.ParseInt(v, 10, 64)
			t.length, t.lengthBad = n, err != nil || n < 0
		}
	}
	return t
}

func stripFWS(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n':
			return -1
		}
		return r
	}, s)
}

// bodyCanon returns the body canonicalization named by c= (default simple).
func (t sigTags) bodyCanon() string {
	_, body, ok := strings.Cut(t.canon, "/")
	if !ok || body == "" {
		return "simple"
	}
	return body
}

// verifyDKIM verifies every DKIM-Signature field of the message whose
// header is h and whose remaining bytes are body. It returns one result per
// signature, in header order, and how many were left unverified because of
// the max limit.
func verifyDKIM(ctx context.Context, r Resolver, h *messageHeader, body io.Reader, max int) ([]DKIMResult, int) {
	fields := h.get("DKIM-Signature")
	results := make([]DKIMResult, len(fields))
	tags := make([]sigTags, len(fields))
	needLength := false
	for i, f := range fields {
		tags[i] = parseSigTags(f.value())
		t := tags[i]
		results[i] = DKIMResult{Domain: strings.ToLower(t.domain), Selector: t.selector,
			Identifier: t.identifier, Algorithm: t.algorithm, Signature: t.b}
		if t.hasLength && !t.lengthBad {
			results[i].BodyLength = &tags[i].length
			needLength = true
		}
	}
	if len(fields) == 0 {
		return results, 0
	}
	if h.tooLarge {
		for i := range results {
			results[i].Status, results[i].Reason = DKIMPermerror, "message header too large to verify"
		}
		return results, 0
	}
	var counter *bodyLengthCounter
	if needLength {
		counter = &bodyLengthCounter{}
		body = io.TeeReader(body, counter)
	}
	opts := &dkim.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) {
			return r.LookupTXT(ctx, strings.TrimSuffix(name, ".")+".")
		},
		MaxVerifications: max,
	}
	verifs, err := dkim.VerifyWithOptions(h.bodyReader(body), opts)
	if counter != nil {
		_, _ = io.Copy(io.Discard, body) // count the body msgauth did not read
	}
	if err != nil && !errors.Is(err, dkim.ErrTooManySignatures) {
		for i := range results {
			results[i].Status, results[i].Reason = DKIMTemperror, "verification aborted: "+err.Error()
		}
		return results, 0
	}
	skipped := 0
	for i := range results {
		if i >= len(verifs) {
			results[i].Status = DKIMNeutral
			results[i].Reason = fmt.Sprintf("not verified: more than %d signatures", max)
			skipped++
			continue
		}
		classify(&results[i], tags[i], verifs[i].Err, counter)
	}
	return results, skipped
}

// classify maps a go-msgauth verification error to a status.
func classify(res *DKIMResult, t sigTags, err error, counter *bodyLengthCounter) {
	switch {
	case err == nil:
		res.Status = DKIMPass
	case dkim.IsTempFail(err):
		res.Status, res.Reason = DKIMTemperror, err.Error()
	case dkim.IsPermFail(err) && strings.HasSuffix(t.algorithm, "-sha1"):
		// RFC 8301 §3.1: rsa-sha1 signatures are not valid.
		res.Status, res.Reason = DKIMFail, "rsa-sha1 is not accepted (RFC 8301)"
	case dkim.IsPermFail(err) && strings.Contains(err.Error(), "key is too short"):
		// RFC 8301 §3.2: keys under 1024 bits are not valid.
		res.Status, res.Reason = DKIMFail, err.Error()+" (RFC 8301)"
	case dkim.IsPermFail(err):
		res.Status, res.Reason = DKIMPermerror, err.Error()
	case t.hasLength && counter != nil:
		// go-msgauth refuses every l= signature once the key and
		// algorithm checks passed, before checking the hashes; we do not
		// verify it either, but say how much of the body lies outside it.
		total := counter.length(t.bodyCanon())
		res.Status = DKIMPolicy
		if total > t.length {
			res.UnsignedBytes = total - t.length
			res.Reason = fmt.Sprintf("l=%d leaves %d of %d body bytes unsigned; body length limits are not accepted",
				t.length, res.UnsignedBytes, total)
		} else {
			res.Reason = fmt.Sprintf("l=%d covers the body, but body length limits are not accepted", t.length)
		}
	default:
		res.Status, res.Reason = DKIMFail, err.Error()
	}
}

// bodyLengthCounter measures the canonicalized length of a message body
// under both canonicalizations of RFC 6376 §3.4.3 and §3.4.4, streaming.
// It sees the bytes after the header; a lone LF ends a line as CRLF does.
type bodyLengthCounter struct {
	simple, relaxed canonLength
	cr              bool // previous byte was an unconsumed CR
}

// canonLength tracks one canonicalization.
type canonLength struct {
	total   int64 // bytes emitted so far
	line    int64 // bytes of the current line
	empties int64 // empty lines held back (dropped if at the end)
	wsp     bool  // relaxed: whitespace pending inside the line
}

// Write counts the body bytes in p; it never fails.
func (c *bodyLengthCounter) Write(p []byte) (int, error) {
	for _, b := range p {
		if c.cr {
			c.cr = false
			if b == '\n' {
				c.endLine()
				continue
			}
			c.char('\r')
		}
		switch b {
		case '\r':
			c.cr = true
		case '\n':
			c.endLine()
		default:
			c.char(b)
		}
	}
	return len(p), nil
}

func (c *bodyLengthCounter) char(b byte) {
	c.simple.line++
	if b == ' ' || b == '\t' {
		c.relaxed.wsp = true
		return
	}
	if c.relaxed.wsp {
		c.relaxed.line++
		c.relaxed.wsp = false
	}
	c.relaxed.line++
}

func (c *bodyLengthCounter) endLine() {
	c.simple.endLine()
	c.relaxed.wsp = false // trailing whitespace is dropped
	c.relaxed.endLine()
}

func (l *canonLength) endLine() {
	if l.line == 0 {
		l.empties++
		return
	}
	l.total += 2*l.empties + l.line + 2
	l.line, l.empties = 0, 0
}

// length returns the canonical body length for "simple" or "relaxed".
func (c *bodyLengthCounter) length(canon string) int64 {
	if canon == "relaxed" {
		l := c.relaxed
		if l.line > 0 { // a last line without CRLF gets one
			l.total += 2*l.empties + l.line + 2
		}
		return l.total
	}
	l := c.simple
	if c.cr {
		l.line++
	}
	if l.line > 0 {
		l.total += 2*l.empties + l.line + 2
	}
	if l.total == 0 {
		return 2 // an empty body is a single CRLF
	}
	return l.total
}
