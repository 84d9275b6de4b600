package smtp

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"time"
)

// maxDSNHeaders bounds the original header block attached to a DSN.
const maxDSNHeaders = 64 << 10

// DSN describes a delivery status notification for BuildDSN.
type DSN struct {
	// ReportingMTA is our host name.
	ReportingMTA string
	// Sender is the original MAIL FROM, the DSN's recipient.
	Sender string
	// ID is the mailguard ID of the original message.
	ID string
	// Arrival is when the original message was received.
	Arrival time.Time
	// Date is when the DSN is made; zero means now.
	Date time.Time
	// Results are the recipients to report, all with Action: failed.
	Results []RcptResult
	// Headers is the original message's header section (as read by
	// ReadHeaders); it is attached as text/rfc822-headers.
	Headers []byte
}

// BuildDSN returns an RFC 3464 delivery status notification: a
// multipart/report (RFC 6522) with a human-readable part, a
// message/delivery-status part and the original headers. It is sent with
// the null sender (RFC 5321 §4.5.5). It returns nil when the original
// sender is null: a bounce is never answered with a bounce. When an address
// or the headers are not ASCII, the RFC 6533 types
// (message/global-delivery-status, message/global-headers) are used and the
// DSN must travel with SMTPUTF8.
func BuildDSN(d DSN) []byte {
	if d.Sender == "" || len(d.Results) == 0 {
		return nil
	}
	if d.Date.IsZero() {
		d.Date = time.Now()
	}
	global := !isASCII(d.Sender) || !isASCII(string(d.Headers))
	for _, r := range d.Results {
		global = global || !isASCII(r.Rcpt)
	}
	boundary := "=_mailguard_" + NewID()
	var b bytes.Buffer
	writeDSNHeader(&b, d, boundary)
	fmt.Fprintf(&b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n", boundary)
	writeDSNText(&b, d)
	statusType, headersType := "message/delivery-status", "text/rfc822-headers"
	if global {
		statusType, headersType = "message/global-delivery-status", "message/global-headers"
	}
	fmt.Fprintf(&b, "\r\n--%s\r\nContent-Type: %s\r\n\r\n", boundary, statusType)
	writeDSNStatus(&b, d, global)
	fmt.Fprintf(&b, "\r\n--%s\r\nContent-Type: %s\r\n\r\n", boundary, headersType)
	b.Write(crlfLines(d.Headers))
	fmt.Fprintf(&b, "\r\n--%s--\r\n", boundary)
	metricDSNs.Inc()
	return b.Bytes()
}

func writeDSNHeader(b *bytes.Buffer, d DSN, boundary string) {
	fmt.Fprintf(b, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", d.ReportingMTA)
	fmt.Fprintf(b, "To: <%s>\r\n", oneLine(d.Sender, 900))
	b.WriteString("Subject: Undelivered Mail Returned to Sender\r\n")
	fmt.Fprintf(b, "Date: %s\r\n", d.Date.Format(time.RFC1123Z))
	fmt.Fprintf(b, "Message-ID: <%s.dsn@%s>\r\n", NewID(), d.ReportingMTA)
	b.WriteString("Auto-Submitted: auto-replied\r\n") // RFC 3834 §5
	b.WriteString("MIME-Version: 1.0\r\n")
	fmt.Fprintf(b, "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"%s\"\r\n", boundary)
	if d.ID != "" {
		fmt.Fprintf(b, "X-Mailguard-Id: %s\r\n", oneLine(d.ID, 100))
	}
	b.WriteString("\r\n")
	b.WriteString("This is a MIME-encapsulated message.\r\n\r\n")
}

func writeDSNText(b *bytes.Buffer, d DSN) {
	fmt.Fprintf(b, "This is the mail system at host %s.\r\n\r\n", d.ReportingMTA)
	b.WriteString("Your message could not be delivered to one or more recipients.\r\n")
	b.WriteString("It is attached below (headers only).\r\n\r\n")
	for _, r := range d.Results {
		fmt.Fprintf(b, "<%s>: %s\r\n", oneLine(r.Rcpt, 900), oneLine(diagnosticText(r), 900))
	}
	if d.ID != "" {
		fmt.Fprintf(b, "\r\nReference: %s\r\n", oneLine(d.ID, 100))
	}
}

// writeDSNStatus writes the RFC 3464 §2.2 per-message and §2.3
// per-recipient fields.
func writeDSNStatus(b *bytes.Buffer, d DSN, global bool) {
	addrType := "rfc822"
	if global {
		addrType = "utf-8" // RFC 6533 §3
	}
	fmt.Fprintf(b, "Reporting-MTA: dns; %s\r\n", d.ReportingMTA)
	if d.ID != "" {
		fmt.Fprintf(b, "X-Mailguard-Id: %s\r\n", oneLine(d.ID, 100))
	}
	if !d.Arrival.IsZero() {
		fmt.Fprintf(b, "Arrival-Date: %s\r\n", d.Arrival.Format(time.RFC1123Z))
	}
	for _, r := range d.Results {
		b.WriteString("\r\n")
		fmt.Fprintf(b, "Final-Recipient: %s; %s\r\n", addrType, oneLine(r.Rcpt, 900))
		b.WriteString("Action: failed\r\n")
		fmt.Fprintf(b, "Status: %s\r\n", dsnStatus(r))
		if r.Remote != "" {
			fmt.Fprintf(b, "Remote-MTA: dns; %s\r\n", oneLine(r.Remote, 255))
			fmt.Fprintf(b, "Diagnostic-Code: smtp; %d %d.%d.%d %s\r\n", r.Code, r.Enhanced[0], r.Enhanced[1], r.Enhanced[2], oneLine(r.Text, 800))
		} else {
			fmt.Fprintf(b, "Diagnostic-Code: X-mailguard; %s\r\n", oneLine(diagnosticText(r), 800))
		}
		fmt.Fprintf(b, "Last-Attempt-Date: %s\r\n", d.Date.Format(time.RFC1123Z))
	}
}

// dsnStatus is the RFC 3463 status of a failed recipient.
func dsnStatus(r RcptResult) string {
	e := r.Enhanced
	if e[0] != 4 && e[0] != 5 {
		if r.Code/100 == 4 {
			return "4.0.0"
		}
		return "5.0.0"
	}
	return fmt.Sprintf("%d.%d.%d", e[0], e[1], e[2])
}

func diagnosticText(r RcptResult) string {
	if r.Remote != "" {
		return fmt.Sprintf("host %s said: %d %s", r.Remote, r.Code, r.Text)
	}
	if r.Text == "" {
		return "delivery failed"
	}
	return r.Text
}

// ReadHeaders returns the header section of a message (up to and without
// the empty line), at most 64 KiB, cut at a line end. It is what BuildDSN
// attaches.
func ReadHeaders(r io.Reader) ([]byte, error) {
	br := bufio.NewReader(io.LimitReader(r, maxDSNHeaders))
	var out bytes.Buffer
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			// End of message or of the limit: a partial last line is dropped.
			if err == io.EOF {
				err = nil
			}
			return out.Bytes(), err
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			return out.Bytes(), nil
		}
		out.Write(line)
	}
}

// crlfLines makes every line end in CRLF and the block end in one.
func crlfLines(b []byte) []byte {
	s := strings.ReplaceAll(string(b), "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return nil
	}
	return []byte(strings.ReplaceAll(s, "\n", "\r\n") + "\r\n")
}
