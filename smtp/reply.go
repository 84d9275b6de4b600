package smtp

import (
	"errors"
	"strings"

	gosmtp "github.com/emersion/go-smtp"
)

// maxReplyText bounds the text of a reply built from a Reject.
const maxReplyText = 400

// replyFor is the only constructor of error replies. A *Reject anywhere in
// err's chain chooses the code; anything else is temporary: a full disk must
// make the sender retry, never bounce. The ID is always appended and no
// internal error text ever reaches the client.
func replyFor(err error, id string) error {
	if err == nil {
		return nil
	}
	var r *Reject
	if errors.As(err, &r) && r != nil && r.Code >= 400 && r.Code <= 599 {
		enh := r.Enhanced
		if enh[0] != r.Code/100 || enh[1] < 0 || enh[1] > 999 || enh[2] < 0 || enh[2] > 999 {
			enh = [3]int{r.Code / 100, 0, 0}
		}
		return &gosmtp.SMTPError{
			Code:         r.Code,
			EnhancedCode: gosmtp.EnhancedCode(enh),
			Message:      withID(cleanText(r.Text, "rejected"), id),
		}
	}
	return &gosmtp.SMTPError{
		Code:         451,
		EnhancedCode: gosmtp.EnhancedCode{4, 3, 0},
		Message:      withID("temporary local problem, please try again later", id),
	}
}

// queuedReply is the 250 reply to a DATA or BDAT LAST whose message the
// Handler accepted. go-smtp writes an *SMTPError's code verbatim, so a 250
// travels the same way as a refusal.
func queuedReply(id string) error {
	return &gosmtp.SMTPError{
		Code:         250,
		EnhancedCode: gosmtp.EnhancedCode{2, 0, 0},
		Message:      "ok: queued as " + id,
	}
}

func withID(text, id string) string {
	if id == "" {
		return text
	}
	return text + " (" + id + ")"
}

// cleanText makes s safe as one reply line: printable, no CR/LF (which
// go-smtp would turn into extra reply lines), bounded.
func cleanText(s, fallback string) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= maxReplyText {
			break
		}
		switch {
		case r < 0x20 || r == 0x7f:
			b.WriteByte(' ')
		case r == 0xfffd || r > 0x7e:
			// Keep replies 7-bit: the client may not have said SMTPUTF8.
			b.WriteByte('?')
		default:
			b.WriteRune(r)
		}
	}
	out := strings.TrimSpace(b.String())
	if out == "" {
		return fallback
	}
	return out
}

// Refusals mailguard itself produces. Each carries a fixed text and a
// metric reason.
var (
	errRelayDenied    = &Reject{550, [3]int{5, 7, 1}, "relay access denied"}
	errBadSender      = &Reject{501, [3]int{5, 1, 7}, "bad sender address syntax"}
	errBadRcpt        = &Reject{501, [3]int{5, 1, 3}, "bad recipient address syntax"}
	errRoutedSender   = &Reject{553, [3]int{5, 1, 7}, "source routes are not accepted in the sender address"}
	errRoutedRcpt     = &Reject{553, [3]int{5, 1, 3}, "routing syntax (source route, %, !, quoted @) is not accepted in recipient addresses"}
	errNeedUTF8       = &Reject{553, [3]int{5, 6, 7}, "non-ASCII address requires the SMTPUTF8 parameter"}
	errNeedHelo       = &Reject{503, [3]int{5, 5, 1}, "send EHLO or HELO first"}
	errBareNewline    = &Reject{550, [3]int{5, 5, 2}, "bare LF/CR not allowed (RFC 5321 section 2.3.8), message refused"}
	errNUL            = &Reject{550, [3]int{5, 6, 0}, "NUL characters are not allowed in messages"}
	errTooBig         = &Reject{552, [3]int{5, 3, 4}, "message size exceeds fixed maximum message size"}
	errLineTooLong    = &Reject{554, [3]int{5, 6, 0}, "message line too long"}
	errDataTimeout    = &Reject{421, [3]int{4, 4, 2}, "timeout exceeded while receiving the message"}
	errDataAborted    = &Reject{451, [3]int{4, 3, 0}, "message transfer aborted"}
	errHandlerNoDrain = errors.New("smtp: handler returned without consuming the message")
)

// reasonFor names a refusal for the rejections metric (bounded label).
func reasonFor(err error) string {
	var r *Reject
	if !errors.As(err, &r) {
		return "internal"
	}
	switch r {
	case errRelayDenied:
		return "relay_denied"
	case errBadSender, errBadRcpt:
		return "bad_syntax"
	case errRoutedSender, errRoutedRcpt:
		return "routing_syntax"
	case errNeedUTF8:
		return "smtputf8_required"
	case errNeedHelo:
		return "need_helo"
	case errBareNewline:
		return "bare_newline"
	case errNUL:
		return "nul"
	case errTooBig:
		return "size"
	case errLineTooLong:
		return "line_too_long"
	case errDataTimeout:
		return "timeout"
	case errDataAborted:
		return "aborted"
	}
	return "handler"
}
