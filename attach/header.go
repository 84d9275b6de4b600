package attach

import (
	"net/mail"
	"strings"
	"time"

	"github.com/jhillyerd/enmime/v2"
)

// decodeHeader builds the Header summary from a parsed entity.
func decodeHeader(e *entity) Header {
	var h Header
	froms := e.getAll("from")
	h.FromFields = len(froms)
	for _, v := range froms {
		h.From = append(h.From, addresses(v)...)
	}
	h.Sender = addresses(strings.Join(e.getAll("sender"), ", "))
	h.ReplyTo = addresses(strings.Join(e.getAll("reply-to"), ", "))
	h.To = addresses(strings.Join(e.getAll("to"), ", "))
	h.Cc = addresses(strings.Join(e.getAll("cc"), ", "))
	h.Subject = decodeWords(e.get("subject"))
	h.MessageID = firstID(e.get("message-id"))
	h.InReplyTo = msgIDs(e.get("in-reply-to"))
	h.References = msgIDs(strings.Join(e.getAll("references"), " "))
	h.List = e.get("list-id") != "" || e.get("list-post") != ""
	if d := e.get("date"); d != "" {
		if t, err := mail.ParseDate(d); err == nil {
			h.Date = t.UTC()
		}
	}
	if h.Date.IsZero() {
		h.Date = time.Time{}
	}
	return h
}

// addresses parses an address list tolerantly (enmime's parser), decoding
// encoded words in display names (split characters joined first: see
// joinWords); unparsable lists yield their bare addr-specs.
func addresses(v string) []Address {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	var out []Address
	list, err := enmime.ParseAddressList(joinWords(v))
	if err == nil {
		for _, a := range list {
			out = append(out, Address{Name: decodeWords(a.Name), Addr: strings.ToLower(decodeRaw(a.Address))})
		}
		return out
	}
	// Salvage: every token that looks like local@domain.
	for _, tok := range strings.FieldsFunc(v, func(r rune) bool {
		return r == ',' || r == ';' || r == '<' || r == '>' || r == ' ' || r == '"' || r == '\t'
	}) {
		if i := strings.LastIndexByte(tok, '@'); i > 0 && i < len(tok)-1 {
			out = append(out, Address{Addr: strings.ToLower(decodeRaw(tok))})
		}
	}
	return out
}

// msgIDs extracts message ids without angle brackets.
func msgIDs(v string) []string {
	var out []string
	for {
		i := strings.IndexByte(v, '<')
		if i < 0 {
			break
		}
		j := strings.IndexByte(v[i:], '>')
		if j < 0 {
			break
		}
		if id := strings.TrimSpace(v[i+1 : i+j]); id != "" {
			out = append(out, id)
		}
		v = v[i+j+1:]
		if len(out) >= 100 {
			break
		}
	}
	if len(out) == 0 {
		for _, f := range strings.Fields(v) {
			out = append(out, f)
			if len(out) >= 100 {
				break
			}
		}
	}
	return out
}

func firstID(v string) string {
	ids := msgIDs(v)
	if len(ids) == 0 {
		return strings.TrimSpace(v)
	}
	return ids[0]
}
