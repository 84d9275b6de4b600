package thread

import (
	"context"
	"slices"
	"sort"
	"sync"
	"time"
)

// Memory is an in-memory Store for tests and tools. It keeps everything
// until Purge; it is not meant for millions of messages.
type Memory struct {
	mu      sync.Mutex
	msgs    map[string]*Record
	pairs   map[[2]string]*Pair
	domains map[string]*Pair
	names   map[string]map[string]nameSeen
	flags   map[string]time.Time
	secrets map[string]memSecret
}

type nameSeen struct {
	a    Address
	last time.Time
}

type memSecret struct {
	values  []string
	at      time.Time
	expires time.Time
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	return &Memory{msgs: map[string]*Record{}, pairs: map[[2]string]*Pair{}, domains: map[string]*Pair{},
		names: map[string]map[string]nameSeen{}, flags: map[string]time.Time{}, secrets: map[string]memSecret{}}
}

// Record implements Store.
func (s *Memory) Record(ctx context.Context, r Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(r.Passwords) > 0 && r.Expires.After(r.At) {
		s.secrets[r.ID] = memSecret{values: slices.Clone(r.Passwords), at: r.At, expires: r.Expires}
	} else {
		delete(s.secrets, r.ID)
	}
	c := clone(r)
	if old, ok := s.msgs[r.ID]; ok {
		old.Flags, old.Outcome, old.Verdict, old.Expires = c.Flags, c.Outcome, c.Verdict, c.Expires
		return nil
	}
	s.msgs[r.ID] = &c
	for _, e := range r.External {
		for _, in := range r.Internal {
			k := [2]string{e, in}
			if s.pairs[k] == nil {
				s.pairs[k] = &Pair{External: e, Internal: in}
			}
			count(s.pairs[k], &r)
		}
	}
	for _, d := range recordDomains(&r) {
		if s.domains[d] == nil {
			s.domains[d] = &Pair{External: d}
		}
		count(s.domains[d], &r)
	}
	if r.Direction == Outbound && r.From.Name != "" {
		if k := NameKey(r.From.Name); k != "" && r.From.Addr != "" {
			if s.names[k] == nil {
				s.names[k] = map[string]nameSeen{}
			}
			s.names[k][r.From.Addr] = nameSeen{a: r.From, last: r.At}
		}
	}
	return nil
}

// recordDomains are the distinct registrable domains of the external
// parties of a record.
func recordDomains(r *Record) []string {
	var out []string
	for _, e := range r.External {
		if d := RegistrableOf(e); d != "" && !contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}

// count adds one message to a relationship's counters.
func count(p *Pair, r *Record) {
	if p.Exchanges() == 0 || r.At.Before(p.First) {
		p.First, p.FirstDir = r.At, r.Direction
	}
	if r.At.After(p.Last) {
		p.Last = r.At
	}
	if r.Direction == Outbound {
		p.Outbound++
	} else {
		p.Inbound++
		if r.Flags.Payload() {
			p.Payloads++
		}
	}
}

func clone(r Record) Record {
	r.InReplyTo = slices.Clone(r.InReplyTo)
	r.References = slices.Clone(r.References)
	r.Participants = slices.Clone(r.Participants)
	r.External = slices.Clone(r.External)
	r.Internal = slices.Clone(r.Internal)
	r.Passwords = nil
	return r
}

// Lookup implements Store.
func (s *Memory) Lookup(ctx context.Context, q Query) (*History, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := &History{}
	if r, ok := s.msgs[q.Exclude]; ok && q.Exclude != "" {
		c := clone(*r)
		h.Self = &c
	}
	for _, r := range s.msgs {
		if r.MessageID != "" && contains(q.Refs, r.MessageID) {
			h.Parents = append(h.Parents, clone(*r))
		}
	}
	sortNewest(h.Parents)
	if len(h.Parents) > 0 {
		key := ThreadKey("", "", nil, nil, h.Parents)
		for _, r := range s.msgs {
			if r.Thread == key {
				h.Thread = append(h.Thread, clone(*r))
			}
		}
		sortNewest(h.Thread)
		if len(h.Thread) > MaxThread {
			h.Thread = h.Thread[:MaxThread]
		}
	}
	for _, in := range q.Internal {
		if p := s.pairs[[2]string{q.Sender, in}]; p != nil {
			h.Pairs = append(h.Pairs, *p)
		}
	}
	if p := s.domains[q.Domain]; p != nil && q.Domain != "" {
		h.Domain = *p
	}
	for _, a := range q.Flagged {
		if _, ok := s.flags[a]; ok && a != "" {
			h.Flagged = a
			break
		}
	}
	if q.NameKey != "" {
		for _, n := range s.names[q.NameKey] {
			h.Names = append(h.Names, n.a)
		}
		sort.Slice(h.Names, func(i, j int) bool { return h.Names[i].Addr < h.Names[j].Addr })
	}
	return h, nil
}

func sortNewest(rs []Record) {
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].At.After(rs[j].At) })
}

// Recent implements Store.
func (s *Memory) Recent(ctx context.Context, rel Relation) ([]Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Record
	for _, r := range s.msgs {
		if r.At.Before(rel.Since) {
			continue
		}
		if rel.Thread != "" && r.Thread == rel.Thread || rel.Sender != "" && senderOf(r) == rel.Sender && intersects(r.Internal, rel.Internal) {
			out = append(out, clone(*r))
		}
	}
	sortNewest(out)
	if len(out) > MaxThread {
		out = out[:MaxThread]
	}
	return out, nil
}

// senderOf is the correspondent column of a record: the header From
// address, or the envelope sender.
func senderOf(r *Record) string {
	if r.From.Addr != "" {
		return r.From.Addr
	}
	return r.MailFrom
}

// SenderOf is the address a record is filed under for Relation lookups.
func SenderOf(r *Record) string { return senderOf(r) }

func intersects(a, b []string) bool {
	for _, x := range a {
		if contains(b, x) {
			return true
		}
	}
	return false
}

// Passwords implements Store.
func (s *Memory) Passwords(ctx context.Context, ids []string, now time.Time) ([]Secret, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Secret
	for _, id := range ids {
		sec, ok := s.secrets[id]
		if !ok || !sec.expires.After(now) {
			continue
		}
		for _, v := range sec.values {
			out = append(out, Secret{MsgID: id, Value: v, At: sec.at})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.After(out[j].At) })
	return out, nil
}

// Flag implements Store.
func (s *Memory) Flag(ctx context.Context, addr string, at time.Time, detail string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flags[addr] = at
	return nil
}

// Correspondents implements Store.
func (s *Memory) Correspondents(ctx context.Context, limit int) ([]Pair, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Pair
	for _, p := range s.domains {
		if p.Outbound > 0 {
			out = append(out, *p)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Exchanges() != out[j].Exchanges() {
			return out[i].Exchanges() > out[j].Exchanges()
		}
		return out[i].External < out[j].External
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// Purge implements Store.
func (s *Memory) Purge(ctx context.Context, before, now time.Time) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for id, r := range s.msgs {
		if r.At.Before(before) {
			delete(s.msgs, id)
			n++
		}
	}
	for k, p := range s.pairs {
		if p.Last.Before(before) {
			delete(s.pairs, k)
			n++
		}
	}
	for k, p := range s.domains {
		if p.Last.Before(before) {
			delete(s.domains, k)
			n++
		}
	}
	for k, at := range s.flags {
		if at.Before(before) {
			delete(s.flags, k)
			n++
		}
	}
	for k, m := range s.names {
		for a, seen := range m {
			if seen.last.Before(before) {
				delete(m, a)
				n++
			}
		}
		if len(m) == 0 {
			delete(s.names, k)
		}
	}
	for id, sec := range s.secrets {
		if !sec.expires.After(now) {
			delete(s.secrets, id)
			n++
		}
	}
	return n, nil
}
