package gateway

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"net/netip"
	"strings"
	"time"

	"github.com/mailguard/mailguard/auth"
	"github.com/mailguard/mailguard/store"
)

// maxHeaderBytes bounds the header block read for rewriting at delivery.
const maxHeaderBytes = 1 << 20

// readHeader returns the header block of a message (up to and including
// the empty line), bounded by maxHeaderBytes.
func readHeader(ra io.ReaderAt, size int64) ([]byte, error) {
	n := min(size, maxHeaderBytes)
	buf := make([]byte, n)
	if _, err := ra.ReadAt(buf, 0); err != nil && err != io.EOF {
		return nil, err
	}
	return buf[:headerEnd(buf)], nil
}

// headerEnd is the offset just after the empty line that ends the header,
// or len(b) when there is none in b.
func headerEnd(b []byte) int {
	if bytes.HasPrefix(b, []byte("\r\n")) {
		return 2
	}
	if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
		return i + 4
	}
	return len(b)
}

// prependHeaders are the fields mailguard adds on top of the message, in
// the order they appear: our Received trace field, Authentication-Results
// (inbound only) and the X-Mailguard fields.
func (g *Gateway) prependHeaders(m *store.Message, rep *Report) string {
	p := g.Policy()
	var b strings.Builder
	b.WriteString(received(p.Gateway.Hostname, m))
	if rep.Auth != nil {
		h := rep.Auth.Header(p.Gateway.Hostname)
		b.WriteString(h)
		if !strings.HasSuffix(h, "\r\n") {
			b.WriteString("\r\n")
		}
	}
	fmt.Fprintf(&b, "X-Mailguard-Id: %s\r\n", m.ID)
	fmt.Fprintf(&b, "X-Mailguard-Action: %s\r\n", rep.Action)
	b.WriteString(foldList("X-Mailguard-Reasons", tagStrings(rep.Reasons)))
	return b.String()
}

// received builds the RFC 5321 §4.4 trace field for our hop.
func received(hostname string, m *store.Message) string {
	var b strings.Builder
	helo := sanitize(m.HELO)
	if helo == "" {
		helo = "unknown"
	}
	fmt.Fprintf(&b, "Received: from %s ([%s])\r\n\tby %s (mailguard) with %s id %s", helo,
		ipLiteral(m.ClientIP), hostname, orDefault(m.Proto, "ESMTP"), m.ID)
	if len(m.Rcpts) == 1 {
		fmt.Fprintf(&b, "\r\n\tfor <%s>", sanitize(m.Rcpts[0]))
	}
	fmt.Fprintf(&b, ";\r\n\t%s\r\n", m.ReceivedAt.UTC().Format(time.RFC1123Z))
	return b.String()
}

func ipLiteral(ip string) string {
	if a, err := netip.ParseAddr(ip); err == nil && a.Is6() && !a.Is4In6() {
		return "IPv6:" + a.String()
	}
	return ip
}

// sanitize keeps client-supplied text from breaking the header structure.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '(' || r == ')' || r == '[' || r == ']' || r == ';' {
			return -1
		}
		return r
	}, s)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// foldList writes "Name: a, b, c" folded at about 78 columns.
func foldList(name string, items []string) string {
	var b strings.Builder
	b.WriteString(name + ":")
	col := len(name) + 1
	for i, it := range items {
		sep := " "
		if i > 0 {
			b.WriteString(",")
			col++
		}
		if col+len(it)+1 > 78 && i > 0 {
			b.WriteString("\r\n")
			sep = "\t"
			col = 0
		}
		b.WriteString(sep + it)
		col += len(it) + 1
	}
	b.WriteString("\r\n")
	return b.String()
}

// formatAddress renders a mailbox for display ("Name <addr>").
func formatAddress(name, addr string) string {
	if name == "" {
		return addr
	}
	return (&mail.Address{Name: name, Address: addr}).String()
}

func parseAddr(s string) (netip.Addr, error) { return netip.ParseAddr(s) }

// rewriteHeader applies the delivery-time changes to a header block:
// forged Authentication-Results claiming our authserv-id are removed and a
// subject prefix is added. Everything else stays byte for byte.
func rewriteHeader(hdr []byte, authservID string, stripAR bool, subjectPrefix string) []byte {
	if stripAR {
		hdr, _ = auth.StripAuthResults(hdr, authservID)
	}
	if subjectPrefix != "" {
		hdr = prefixSubject(hdr, subjectPrefix)
	}
	return hdr
}

// prefixSubject inserts prefix at the start of the first Subject field (as
// an RFC 2047 encoded-word when it is not ASCII, with its own spaces inside
// the encoded word), or adds a Subject field when there is none.
func prefixSubject(hdr []byte, prefix string) []byte {
	enc := prefix
	if !isASCII(prefix) {
		// Whitespace between encoded-words is not displayed (RFC 2047 §6.2),
		// so the prefix's own trailing space is inside the word and a
		// separating space follows it.
		enc = mime.BEncoding.Encode("UTF-8", prefix) + " "
	}
	for off := 0; off < len(hdr); {
		end := bytes.IndexByte(hdr[off:], '\n')
		if end < 0 {
			end = len(hdr) - off
		}
		line := hdr[off : off+end]
		if len(line) >= 8 && strings.EqualFold(string(line[:8]), "subject:") {
			at := off + 8
			for at < len(hdr) && (hdr[at] == ' ' || hdr[at] == '\t') {
				at++
			}
			out := append([]byte{}, hdr[:at]...)
			out = append(out, enc...)
			return append(out, hdr[at:]...)
		}
		off += end + 1
	}
	end := len(hdr)
	if bytes.HasSuffix(hdr, []byte("\r\n\r\n")) {
		end -= 2
	} else if bytes.Equal(hdr, []byte("\r\n")) {
		end = 0
	}
	out := append([]byte{}, hdr[:end]...)
	out = append(out, "Subject: "+strings.TrimRight(enc, " ")+"\r\n"...)
	return append(out, hdr[end:]...)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
