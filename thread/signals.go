package thread

import (
	"fmt"
	"strings"
	"time"

	"github.com/mailguard/mailguard/reason"
)

// Config are the policy settings the signals need.
type Config struct {
	// LocalDomains are our domains: addresses there are our users.
	LocalDomains []string
	// YoungDays and YoungExchanges bound a young relationship.
	YoungDays      int
	YoungExchanges int
	// ReviveAfter is the silence after which a thread counts as revived.
	ReviveAfter time.Duration
	// Window is how long a password may follow its archive (PPAP).
	Window time.Duration
	// VIPNames are the protected display names (lists.vip_names).
	VIPNames []string
}

// Message is the message being inspected, as the conversation memory sees
// it: plain header values, no MIME.
type Message struct {
	ID         string
	Direction  Direction
	At         time.Time
	From       Address
	MailFrom   string
	Rcpts      []string
	To         []Address // header To and Cc
	MessageID  string
	InReplyTo  []string
	References []string
	Subject    string
	Flags      Flags
	List       bool // came through a mailing list (List-Id, List-Post)
}

// maxRefs bounds the ids of a reply looked up.
const maxRefs = 20

// maxPeople bounds the addresses taken from one message.
const maxPeople = 100

// Local reports whether an address is in one of the local domains.
func (c *Config) Local(addr string) bool {
	d := domainOf(addr)
	for _, l := range c.LocalDomains {
		if strings.EqualFold(d, l) {
			return true
		}
	}
	return false
}

// RegistrableOf is the registrable domain (eTLD+1, Unicode) of an
// address, or its plain domain when it has none.
func RegistrableOf(addr string) string {
	d := domainOf(addr)
	if pd, ok := ParseDomain(d); ok {
		return pd.Registrable
	}
	return d
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return strings.ToLower(strings.TrimSuffix(addr[i+1:], "."))
	}
	return ""
}

// Correspondent is the outside party of an inbound message: the header
// From address, or the envelope sender without one.
func (m *Message) Correspondent() string {
	if a := strings.ToLower(m.From.Addr); a != "" {
		return a
	}
	return strings.ToLower(m.MailFrom)
}

// sides returns the external and internal parties of a message.
func (c *Config) sides(m *Message) (ext, in []string) {
	add := func(l []string, a string) []string {
		a = strings.ToLower(a)
		if a == "" || len(l) >= maxPeople || contains(l, a) {
			return l
		}
		return append(l, a)
	}
	switch m.Direction {
	case Outbound:
		in = add(in, m.Correspondent())
		for _, r := range m.Rcpts {
			if !c.Local(r) {
				ext = add(ext, r)
			}
		}
	default:
		if s := m.Correspondent(); !c.Local(s) {
			ext = add(ext, s)
		}
		for _, r := range m.Rcpts {
			if c.Local(r) {
				in = add(in, r)
			}
		}
	}
	return ext, in
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// Query is the store question for a message.
func (c *Config) Query(m *Message) Query {
	q := Query{Now: m.At, Refs: Refs(m.InReplyTo, m.References, maxRefs), Exclude: m.ID}
	if m.Direction != Inbound {
		return q
	}
	q.Sender = m.Correspondent()
	if d, ok := ParseDomain(domainOf(q.Sender)); ok {
		q.Domain = d.Registrable
	}
	_, q.Internal = c.sides(m)
	q.NameKey = NameKey(m.From.Name)
	q.Flagged = []string{q.Sender}
	if mf := strings.ToLower(m.MailFrom); mf != "" && mf != q.Sender {
		q.Flagged = append(q.Flagged, mf)
	}
	return q
}

// Record is the conversation record of a message. The caller adds the
// outcome, verdict, secrets and expiry.
func (c *Config) Record(m *Message, parents []Record) Record {
	r := Record{ID: m.ID, MessageID: CleanID(m.MessageID), Subject: SubjectKey(m.Subject),
		Direction: m.Direction, At: m.At, From: Address{Addr: strings.ToLower(m.From.Addr), Name: clipName(m.From.Name)},
		MailFrom: strings.ToLower(m.MailFrom), Flags: m.Flags}
	for _, s := range m.InReplyTo {
		if s = CleanID(s); s != "" && len(r.InReplyTo) < maxRefs {
			r.InReplyTo = append(r.InReplyTo, s)
		}
	}
	refs := m.References
	if len(refs) > maxRefs {
		refs = append(refs[:1:1], refs[len(refs)-maxRefs+1:]...) // keep the root
	}
	for _, s := range refs {
		if s = CleanID(s); s != "" {
			r.References = append(r.References, s)
		}
	}
	r.Thread = ThreadKey(m.ID, r.MessageID, r.InReplyTo, r.References, parents)
	seen := map[string]bool{}
	add := func(a Address) {
		a.Addr = strings.ToLower(a.Addr)
		if a.Addr == "" || seen[a.Addr] || len(r.Participants) >= maxPeople {
			return
		}
		seen[a.Addr] = true
		a.Name = clipName(a.Name)
		r.Participants = append(r.Participants, a)
	}
	add(m.From)
	add(Address{Addr: m.MailFrom})
	for _, a := range m.To {
		add(a)
	}
	for _, a := range m.Rcpts {
		add(Address{Addr: a})
	}
	r.External, r.Internal = c.sides(m)
	return r
}

func clipName(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 128 {
		s = s[:128]
	}
	return s
}

// Signals are the conversation facts of one message and its findings.
type Signals struct {
	Known            bool    // replies to a thread mailguard saw
	FirstContact     bool    // no earlier mail with the correspondent
	Young            bool    // the relationship is young (see Analyze)
	Exchanges        int     // messages exchanged with the correspondent
	RelationshipDays float64 // since the first of them
	SilenceDays      float64 // since the thread's previous message
	Findings         []reason.Finding
}

// Analyze computes the signals of an inbound message from its history.
// protected are the domains lookalikes are measured against (the local
// domains and known correspondents'). Outbound and internal messages only
// get Known and SilenceDays: they are evidence, not suspects.
func (c *Config) Analyze(m *Message, h *History, protected []Domain) Signals {
	var s Signals
	if h == nil {
		h = &History{}
	}
	h = h.without(m)
	c.threadSignals(m, h, &s)
	if m.Direction != Inbound {
		return s
	}
	sender := m.Correspondent()
	if h.Flagged != "" {
		s.Findings = append(s.Findings, reason.Finding{Tag: reason.TrapRecipient, Detail: "sender flagged by a trap"})
	}
	if sender == "" || c.Local(sender) {
		return s
	}
	c.relationship(m, h, &s)
	if la, ok := FindLookalike(domainOf(sender), protected); ok {
		s.Findings = append(s.Findings, reason.Finding{Tag: reason.LookalikeDomain,
			Detail: fmt.Sprintf("sender domain %s imitates %s (%s)", la.Domain, la.Target, la.Why)})
	}
	c.impersonation(m, h, &s)
	return s
}

// threadSignals: Known, SilenceDays, and thread_hijack for inbound replies.
func (c *Config) threadSignals(m *Message, h *History, s *Signals) {
	if len(h.Parents) == 0 {
		return
	}
	s.Known = true
	last := h.Parents[0].At
	for _, r := range append(h.Parents, h.Thread...) {
		if r.At.After(last) && !r.At.After(m.At) {
			last = r.At
		}
	}
	silence := m.At.Sub(last)
	if silence > 0 {
		s.SilenceDays = silence.Hours() / 24
	}
	if m.Direction != Inbound {
		return
	}
	sender := m.Correspondent()
	people := map[string]bool{}
	domains := map[string]bool{}
	var names []Address
	var protected []Domain
	for _, r := range append(h.Parents, h.Thread...) {
		for _, p := range r.Participants {
			if p.Name != "" && len(names) < maxPeople {
				names = append(names, p)
			}
			if people[p.Addr] {
				continue
			}
			people[p.Addr] = true
			d := domainOf(p.Addr)
			if !domains[d] {
				domains[d] = true
				if pd, ok := ParseDomain(d); ok {
					protected = append(protected, pd)
				}
			}
		}
	}
	hijack := func(detail string) {
		s.Findings = append(s.Findings, reason.Finding{Tag: reason.ThreadHijack, Detail: detail})
	}
	if sender != "" && !people[sender] {
		var reuse string
		for _, p := range names {
			if p.Addr != sender && MatchName(m.From.Name, p.Name) {
				reuse = p.Addr
				break
			}
		}
		la, look := FindLookalike(domainOf(sender), protected)
		if look {
			s.Findings = append(s.Findings, reason.Finding{Tag: reason.LookalikeDomain,
				Detail: fmt.Sprintf("sender domain %s imitates thread participant domain %s (%s)", la.Domain, la.Target, la.Why)})
		}
		switch {
		case reuse != "":
			hijack(fmt.Sprintf("reply into a known thread from %s, which never took part, under the display name of participant %s", sender, reuse))
		case look:
			hijack(fmt.Sprintf("reply into a known thread from %s, a lookalike of participant domain %s", sender, la.Target))
		case !domains[domainOf(sender)]:
			hijack(fmt.Sprintf("reply into a known thread from %s, an address and domain that never took part", sender))
		}
	}
	if c.ReviveAfter > 0 && silence >= c.ReviveAfter && m.Flags&(FlagAttachment|FlagEncrypted) != 0 {
		hijack(fmt.Sprintf("thread revived after %.0f days of silence with an attachment", s.SilenceDays))
	}
}

// relationship: first contact, young relationship, first_contact_attachment.
//
// A relationship is young when it was first seen less than YoungDays ago,
// the correspondent wrote first, and fewer than YoungExchanges messages
// went either way. It is judged on the address pair and, for domains that
// are not free-mail, on the organisation's relationship with the domain;
// the stronger of them counts, so a new colleague of a long-standing
// partner is not a stranger. One of our users having written first (to the
// address, or to the domain) makes it established at once.
func (c *Config) relationship(m *Message, h *History, s *Signals) {
	rels := append([]Pair(nil), h.Pairs...)
	dom := domainOf(m.Correspondent())
	if h.Domain.Exchanges() > 0 && !FreeMail(h.Domain.External) && !FreeMail(dom) {
		rels = append(rels, h.Domain)
	}
	young := true
	var first time.Time
	priorPayload := false
	for _, p := range rels {
		if p.Exchanges() == 0 {
			continue
		}
		s.Exchanges = max(s.Exchanges, p.Exchanges())
		if first.IsZero() || p.First.Before(first) {
			first = p.First
		}
		age := m.At.Sub(p.First)
		if p.FirstDir == Outbound || age >= time.Duration(c.YoungDays)*24*time.Hour || p.Exchanges() >= c.YoungExchanges {
			young = false
		}
		if p.Internal != "" && p.Payloads > 0 {
			priorPayload = true
		}
	}
	s.FirstContact = first.IsZero()
	if !first.IsZero() && m.At.After(first) {
		s.RelationshipDays = m.At.Sub(first).Hours() / 24
	}
	s.Young = young
	if !young || priorPayload || !m.Flags.Payload() {
		return
	}
	what := "a link"
	switch {
	case m.Flags&FlagEncrypted != 0:
		what = "an encrypted archive"
	case m.Flags&FlagAttachment != 0:
		what = "an attachment"
	}
	detail := fmt.Sprintf("first contact from %s, with %s", m.Correspondent(), what)
	if !s.FirstContact {
		detail = fmt.Sprintf("young relationship with %s (%d messages over %.1f days, started by the sender) sends its first payload: %s",
			m.Correspondent(), s.Exchanges, s.RelationshipDays, what)
	}
	s.Findings = append(s.Findings, reason.Finding{Tag: reason.FirstContactAttachment, Detail: detail})
}

// impersonation: a VIP's display name, or one of our users' names seen on
// outbound mail, on mail from an external address.
func (c *Config) impersonation(m *Message, h *History, s *Signals) {
	// "keiri@corp.example" <someone@elsewhere>: a client that shows only
	// the name shows one of our own addresses. Mailing lists write
	// "'user@corp.example' via List" for members' posts, so list mail is
	// left out.
	if !m.List {
		for _, a := range addressesIn(m.From.Name) {
			if c.Local(a) && !strings.EqualFold(a, m.Correspondent()) {
				s.Findings = append(s.Findings, reason.Finding{Tag: reason.DisplayNameImpersonation,
					Detail: fmt.Sprintf("display name shows our address %s, on mail from external address %s", a, m.Correspondent())})
				return
			}
		}
	}
	if v, ok := MatchVIP(m.From.Name, c.VIPNames); ok {
		s.Findings = append(s.Findings, reason.Finding{Tag: reason.DisplayNameImpersonation,
			Detail: fmt.Sprintf("display name %q matches VIP %q on mail from external address %s", clipName(m.From.Name), v, m.Correspondent())})
		return
	}
	for _, n := range h.Names {
		if n.Addr != m.Correspondent() && MatchName(m.From.Name, n.Name) {
			s.Findings = append(s.Findings, reason.Finding{Tag: reason.DisplayNameImpersonation,
				Detail: fmt.Sprintf("display name %q is the name of our user %s, on mail from external address %s", clipName(m.From.Name), n.Addr, m.Correspondent())})
			return
		}
	}
}

// without removes the message's own earlier record from a history: a held
// message inspected again must look as it did the first time.
func (h *History) without(m *Message) *History {
	self := h.Self
	out := *h
	out.Parents = dropID(h.Parents, m.ID)
	out.Thread = dropID(h.Thread, m.ID)
	if self == nil {
		return &out
	}
	out.Pairs = nil
	for _, p := range h.Pairs {
		if p = subtract(p, self); p.Exchanges() > 0 {
			out.Pairs = append(out.Pairs, p)
		}
	}
	if h.Domain.Exchanges() > 0 {
		out.Domain = subtract(h.Domain, self)
	}
	return &out
}

func subtract(p Pair, self *Record) Pair {
	involved := false
	for _, e := range self.External {
		if e == p.External || p.Internal == "" && RegistrableOf(e) == p.External {
			involved = true
		}
	}
	if p.Internal != "" && !contains(self.Internal, p.Internal) {
		involved = false
	}
	if !involved {
		return p
	}
	if self.Direction == Outbound {
		p.Outbound = max(0, p.Outbound-1)
	} else {
		p.Inbound = max(0, p.Inbound-1)
		if self.Flags.Payload() {
			p.Payloads = max(0, p.Payloads-1)
		}
	}
	return p
}

func dropID(rs []Record, id string) []Record {
	var out []Record
	for _, r := range rs {
		if r.ID != id {
			out = append(out, r)
		}
	}
	return out
}
