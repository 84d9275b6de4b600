// Package smtp owns mailguard's SMTP protocol layer: the inbound server
// (a go-smtp backend with relay control, limits, SMTP smuggling protection,
// HAProxy PROXY protocol and Postfix-compatible XCLIENT), the outbound relay
// client (opportunistic or required STARTTLS), Maildir delivery, and the
// delivery workers that retry with backoff and send RFC 3464 DSNs.
//
// It must not know policy rules, YARA, MIME internals or the store. It talks
// to the gateway only through the small interfaces declared here: Handler
// (one inbound SMTP transaction), Outbox (the delivery queue, leased) and
// Transport (one delivery attempt).
//
// # Inbound design
//
// go-smtp has neither XCLIENT nor PROXY support, keeps one read deadline for
// the whole DATA phase, and cannot bound command lines separately from body
// lines. mailguard therefore puts a protocol front end (conn) between the
// socket and go-smtp. The front end hands go-smtp exactly one command line
// per Read, so go-smtp never buffers ahead, and it follows the replies that
// go-smtp writes, so it always knows whether the next bytes are a command, a
// DATA body (until CRLF.CRLF, by go-smtp's own state machine) or a BDAT
// chunk (a byte count). With that knowledge it:
//
//   - intercepts XCLIENT and STARTTLS before go-smtp sees them: mailguard
//     terminates TLS itself, so the front end always sees cleartext and
//     XCLIENT, the command-line bound and the idle timeout keep working
//     after STARTTLS;
//   - adds STARTTLS and (for trusted peers) XCLIENT to the EHLO reply;
//   - refreshes the read deadline per command line and, inside DATA or a
//     BDAT transaction, caps it by the total DATA deadline;
//   - counts error replies and closes sessions that exceed MaxErrors, closes
//     after any 421, and turns a graceful shutdown into "421 4.3.2" at the
//     next command boundary;
//   - parses DATA bodies itself (bodyReader, dataread.go): go-smtp's reader
//     takes a call per byte, so the session hands the Handler the front
//     end's own parser of the wire, and go-smtp's dataReader, which only
//     drains after the session, is given a bare end-of-data line.
//
// The session (a go-smtp Session) then applies address syntax and relay
// control, hands the Handler a strict stream (bodyReader for DATA,
// checkReader around go-smtp's BDAT stream: bare CR or LF is refused with
// 550 5.5.2, NUL with 550 5.6.0, size is enforced in both paths) and calls
// the Handler. Every error a Handler returns becomes a reply through
// replyFor.
package smtp
