package auth

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"mime"
	"net/mail"
	"regexp"
	"strings"

	"golang.org/x/net/idna"
)

// headerField is one field of a message header, split the way go-msgauth
// splits it (so that DKIM-Signature fields line up with its results): a
// line starting with SP or HTAB continues the previous field.
type headerField struct {
	raw  string // the field as received, line terminators included
	name string // text before the first ':', spaces trimmed
}

// value returns the field body after the colon, unfolded.
func (f headerField) value() string {
	_, v, _ := strings.Cut(f.raw, ":")
	v = strings.ReplaceAll(v, "\r\n", "")
	v = strings.ReplaceAll(v, "\n", "")
	return strings.TrimSpace(v)
}

// messageHeader is the header block of a message.
type messageHeader struct {
	fields   []headerField
	raw      []byte // the bytes read, including the blank line if any
	complete bool   // the blank line ending the header was seen
	tooLarge bool   // reading stopped at the size limit
}

var errHeaderTooLarge = errors.New("auth: message header too large")

// readHeader reads the header block of a message from br, at most max
// bytes; br is left at the first byte of the body. Lines end in LF or CRLF.
func readHeader(br *bufio.Reader, max int) (*messageHeader, error) {
	h := &messageHeader{}
	var cur []byte // current field, nil before the first
	flush := func() {
		if cur != nil {
			raw := string(cur)
			name, _, _ := strings.Cut(raw, ":")
			h.fields = append(h.fields, headerField{raw: raw, name: strings.TrimSpace(name)})
			cur = nil
		}
	}
	for {
		line, err := readLine(br, max-len(h.raw))
		h.raw = append(h.raw, line...)
		if errors.Is(err, errHeaderTooLarge) {
			flush()
			h.tooLarge = true
			return h, nil
		}
		if len(line) == 0 || err != nil && !errors.Is(err, io.EOF) {
			flush()
			if errors.Is(err, io.EOF) {
				return h, nil
			}
			return h, err
		}
		if string(line) == "\r\n" || string(line) == "\n" {
			flush()
			h.complete = true
			return h, nil
		}
		if cur != nil && (line[0] == ' ' || line[0] == '\t') {
			cur = append(cur, line...)
		} else {
			flush()
			cur = append([]byte{}, line...)
		}
		if err != nil { // io.EOF after a last line without terminator
			flush()
			return h, nil
		}
	}
}

// readLine reads one line including its LF, at most max bytes.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > max {
			return line, errHeaderTooLarge
		}
		line = append(line, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return line, err
	}
}

// get returns the fields named name (case-insensitive), top to bottom.
func (h *messageHeader) get(name string) []headerField {
	var out []headerField
	for _, f := range h.fields {
		if strings.EqualFold(f.name, name) {
			out = append(out, f)
		}
	}
	return out
}

// authorDomains returns the distinct domains of the RFC 5322 From
// addresses, in A-label form, lower case, and how many From fields there
// are. A From field that does not parse as an address list still yields
// every domain-like word after an '@', so that a malformed field cannot
// hide a domain from DMARC.
func (h *messageHeader) authorDomains() (domains []string, fields int) {
	from := h.get("From")
	seen := map[string]bool{}
	add := func(d string) {
		d = normalizeDomain(d)
		if d != "" && !seen[d] {
			seen[d] = true
			domains = append(domains, d)
		}
	}
	for _, f := range from {
		v := f.value()
		addrs, err := addressParser.ParseList(v)
		if err != nil || len(addrs) == 0 {
			for _, m := range domainAfterAt.FindAllStringSubmatch(v, 16) {
				add(m[1])
			}
			continue
		}
		for _, a := range addrs {
			if i := strings.LastIndexByte(a.Address, '@'); i >= 0 {
				add(a.Address[i+1:])
			}
		}
	}
	return domains, len(from)
}

// addressParser parses From fields; display names in any charset are
// accepted undecoded, since only the addresses matter here.
var addressParser = &mail.AddressParser{WordDecoder: &mime.WordDecoder{
	CharsetReader: func(_ string, input io.Reader) (io.Reader, error) { return input, nil },
}}

var domainAfterAt = regexp.MustCompile(`@\[?([A-Za-z0-9\x80-\xff][A-Za-z0-9\x80-\xff.\-]*)`)

// normalizeDomain lower-cases d, drops a trailing dot and converts an
// internationalized name to its A-label form; "" if that fails.
func normalizeDomain(d string) string {
	d = strings.TrimSuffix(strings.TrimSpace(d), ".")
	if d == "" {
		return ""
	}
	if !isASCII(d) {
		a, err := idna.Lookup.ToASCII(d)
		if err != nil {
			return ""
		}
		d = a
	}
	return strings.ToLower(d)
}

// bodyReader returns a reader of the whole message again: the header bytes
// read (with a blank line added when the header ended at EOF), then rest.
func (h *messageHeader) bodyReader(rest io.Reader) io.Reader {
	hdr := h.raw
	if !h.complete {
		hdr = bytes.Clone(hdr)
		if len(hdr) > 0 && hdr[len(hdr)-1] != '\n' {
			hdr = append(hdr, "\r\n"...)
		}
		hdr = append(hdr, "\r\n"...)
	}
	return io.MultiReader(bytes.NewReader(hdr), rest)
}
