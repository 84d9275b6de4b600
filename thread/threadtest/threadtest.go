// Package threadtest is the conformance suite of thread.Store: the same
// tests run against the in-memory store and every persistent one
// (store/sqlite), so that the gateway can rely on one behaviour.
package threadtest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mailguard/mailguard/thread"
)

// Run runs the suite; open returns a new, empty store for each subtest.
func Run(t *testing.T, open func(t *testing.T) thread.Store) {
	t.Run("Parents", func(t *testing.T) { testParents(t, open(t)) })
	t.Run("Counters", func(t *testing.T) { testCounters(t, open(t)) })
	t.Run("Names", func(t *testing.T) { testNames(t, open(t)) })
	t.Run("Flags", func(t *testing.T) { testFlags(t, open(t)) })
	t.Run("Recent", func(t *testing.T) { testRecent(t, open(t)) })
	t.Run("Passwords", func(t *testing.T) { testPasswords(t, open(t)) })
	t.Run("Correspondents", func(t *testing.T) { testCorrespondents(t, open(t)) })
	t.Run("Purge", func(t *testing.T) { testPurge(t, open(t)) })
}

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

func at(h int) time.Time { return t0.Add(time.Duration(h) * time.Hour) }

func inbound(id, msgid, from, to string, h int, refs ...string) thread.Record {
	return thread.Record{ID: id, MessageID: msgid, References: refs, Thread: threadOf(msgid, refs),
		Direction: thread.Inbound, At: at(h), From: thread.Address{Addr: from, Name: "Sender " + from},
		MailFrom: from, Participants: []thread.Address{{Addr: from, Name: "Sender"}, {Addr: to}},
		External: []string{from}, Internal: []string{to}, Outcome: thread.OutcomeDelivered, Subject: "k"}
}

func outbound(id, msgid, from, to string, h int, refs ...string) thread.Record {
	r := inbound(id, msgid, from, to, h, refs...)
	r.Direction = thread.Outbound
	r.External, r.Internal = []string{to}, []string{from}
	return r
}

func threadOf(msgid string, refs []string) string {
	if len(refs) > 0 {
		return refs[0]
	}
	return msgid
}

func record(t *testing.T, s thread.Store, rs ...thread.Record) {
	t.Helper()
	for _, r := range rs {
		if err := s.Record(context.Background(), r); err != nil {
			t.Fatalf("record %s: %v", r.ID, err)
		}
	}
}

func lookup(t *testing.T, s thread.Store, q thread.Query) *thread.History {
	t.Helper()
	h, err := s.Lookup(context.Background(), q)
	if err != nil {
		t.Fatalf("lookup: %v", err)
	}
	return h
}

func ids(rs []thread.Record) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

func testParents(t *testing.T, s thread.Store) {
	a := inbound("A", "a@x", "ext@partner.example", "bob@corp.example", 0)
	a.Participants = []thread.Address{{Addr: "ext@partner.example", Name: "Ext Person"}, {Addr: "bob@corp.example", Name: "Bob"}}
	a.InReplyTo = []string{"zz@x"}
	b := outbound("B", "b@x", "bob@corp.example", "ext@partner.example", 1, "a@x")
	c := inbound("C", "c@x", "ext@partner.example", "bob@corp.example", 2, "a@x", "b@x")
	other := inbound("D", "d@x", "other@else.example", "bob@corp.example", 3)
	record(t, s, a, b, c, other)
	h := lookup(t, s, thread.Query{Refs: []string{"b@x", "nothing@x"}, Now: at(4)})
	if got := ids(h.Parents); !cmp.Equal(got, []string{"B"}) {
		t.Errorf("parents = %v, want [B]", got)
	}
	if got := ids(h.Thread); !cmp.Equal(got, []string{"C", "B", "A"}) {
		t.Errorf("thread = %v, want [C B A] (newest first)", got)
	}
	var pa thread.Record
	for _, r := range h.Thread {
		if r.ID == "A" {
			pa = r
		}
	}
	if diff := cmp.Diff(a.Participants, pa.Participants); diff != "" {
		t.Errorf("participants round trip (-want +got):\n%s", diff)
	}
	if !pa.At.Equal(a.At) || pa.Direction != thread.Inbound || pa.Thread != "a@x" || pa.From != a.From ||
		!cmp.Equal(pa.InReplyTo, a.InReplyTo) || pa.Subject != "k" || pa.Outcome != thread.OutcomeDelivered {
		t.Errorf("record round trip: got %+v, want %+v", pa, a)
	}
	if h.Self != nil {
		t.Errorf("Self without Exclude: %+v", h.Self)
	}
	h = lookup(t, s, thread.Query{Exclude: "C", Now: at(4)})
	if h.Self == nil || h.Self.ID != "C" {
		t.Errorf("Self = %+v, want C", h.Self)
	}
	if h := lookup(t, s, thread.Query{Refs: []string{"unknown@x"}}); len(h.Parents)+len(h.Thread) != 0 {
		t.Errorf("unknown refs found %v %v", ids(h.Parents), ids(h.Thread))
	}
}

func testCounters(t *testing.T, s thread.Store) {
	ext, bob, ann := "ext@partner.example", "bob@corp.example", "ann@corp.example"
	m1 := inbound("1", "1@x", ext, bob, 0)
	m2 := outbound("2", "2@x", bob, ext, 1)
	m3 := inbound("3", "3@x", ext, bob, 2)
	m3.Flags = thread.FlagAttachment
	m4 := outbound("4", "4@x", ann, "other@partner.example", 3)
	record(t, s, m1, m2, m3, m4)
	// Recording again (a held message decided) must not count twice.
	m3.Outcome, m3.Verdict = thread.OutcomeQuarantined, "malware_yara"
	record(t, s, m3)
	h := lookup(t, s, thread.Query{Sender: ext, Domain: "partner.example", Internal: []string{bob, ann}, Now: at(5)})
	want := []thread.Pair{{External: ext, Internal: bob, First: at(0), Last: at(2), FirstDir: thread.Inbound, Inbound: 2, Outbound: 1, Payloads: 1}}
	if diff := cmp.Diff(want, h.Pairs); diff != "" {
		t.Errorf("pairs (-want +got):\n%s", diff)
	}
	wantDom := thread.Pair{External: "partner.example", First: at(0), Last: at(3), FirstDir: thread.Inbound, Inbound: 2, Outbound: 2, Payloads: 1}
	if diff := cmp.Diff(wantDom, h.Domain); diff != "" {
		t.Errorf("domain (-want +got):\n%s", diff)
	}
	// Our user wrote first to a new address.
	record(t, s, outbound("5", "5@x", bob, "new@fresh.example", 4), inbound("6", "6@x", "new@fresh.example", bob, 5))
	h = lookup(t, s, thread.Query{Sender: "new@fresh.example", Domain: "fresh.example", Internal: []string{bob}})
	if len(h.Pairs) != 1 || h.Pairs[0].FirstDir != thread.Outbound || h.Pairs[0].Exchanges() != 2 {
		t.Errorf("pairs = %+v, want one started outbound with 2 exchanges", h.Pairs)
	}
	// The updated outcome is visible.
	h = lookup(t, s, thread.Query{Exclude: "3"})
	if h.Self == nil || h.Self.Outcome != thread.OutcomeQuarantined || h.Self.Verdict != "malware_yara" {
		t.Errorf("self after update = %+v", h.Self)
	}
	if h := lookup(t, s, thread.Query{Sender: "nobody@none.example", Domain: "none.example", Internal: []string{bob}}); len(h.Pairs) != 0 || h.Domain.Exchanges() != 0 {
		t.Errorf("a stranger has history: %+v %+v", h.Pairs, h.Domain)
	}
}

func testNames(t *testing.T, s thread.Store) {
	o := outbound("1", "1@x", "taro@corp.example", "x@partner.example", 0)
	o.From.Name = "山田 太郎"
	i := inbound("2", "2@x", "y@partner.example", "taro@corp.example", 1)
	i.From.Name = "Partner Person"
	record(t, s, o, i)
	h := lookup(t, s, thread.Query{NameKey: thread.NameKey("山田太郎")})
	if len(h.Names) != 1 || h.Names[0].Addr != "taro@corp.example" || h.Names[0].Name != "山田 太郎" {
		t.Errorf("names = %+v, want our user taro", h.Names)
	}
	if h := lookup(t, s, thread.Query{NameKey: thread.NameKey("Partner Person")}); len(h.Names) != 0 {
		t.Errorf("an inbound display name was taken for an internal user: %+v", h.Names)
	}
}

func testFlags(t *testing.T, s thread.Store) {
	ctx := context.Background()
	if err := s.Flag(ctx, "bad@evil.example", at(0), "trap"); err != nil {
		t.Fatal(err)
	}
	if h := lookup(t, s, thread.Query{Flagged: []string{"ok@fine.example", "bad@evil.example"}}); h.Flagged != "bad@evil.example" {
		t.Errorf("flagged = %q", h.Flagged)
	}
	if h := lookup(t, s, thread.Query{Flagged: []string{"ok@fine.example", ""}}); h.Flagged != "" {
		t.Errorf("flagged = %q, want none", h.Flagged)
	}
	// Flagging twice is fine.
	if err := s.Flag(ctx, "bad@evil.example", at(1), "trap"); err != nil {
		t.Fatal(err)
	}
}

func testRecent(t *testing.T, s thread.Store) {
	ext, bob := "ext@partner.example", "bob@corp.example"
	a := inbound("A", "a@x", ext, bob, 0)
	b := inbound("B", "b@x", ext, "ann@corp.example", 1)
	c := inbound("C", "c@x", "other@else.example", bob, 2, "a@x")
	d := inbound("D", "d@x", ext, bob, 3)
	record(t, s, a, b, c, d)
	got, err := s.Recent(context.Background(), thread.Relation{Sender: ext, Internal: []string{bob}, Since: at(0)})
	if err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(ids(got), []string{"D", "A"}) {
		t.Errorf("by pair = %v, want [D A]", ids(got))
	}
	got, _ = s.Recent(context.Background(), thread.Relation{Sender: ext, Internal: []string{bob}, Thread: "a@x", Since: at(1)})
	if !cmp.Equal(ids(got), []string{"D", "C"}) {
		t.Errorf("by pair or thread since 1h = %v, want [D C]", ids(got))
	}
}

func testPasswords(t *testing.T, s thread.Store) {
	ctx := context.Background()
	p1 := inbound("P1", "p1@x", "ext@partner.example", "bob@corp.example", 0)
	p1.Passwords, p1.Expires, p1.Flags = []string{"s3cret-1", "other"}, at(1), thread.FlagPassword
	p2 := inbound("P2", "p2@x", "ext@partner.example", "bob@corp.example", 2)
	p2.Passwords, p2.Expires = []string{"s3cret-2"}, at(3)
	record(t, s, p1, p2)
	got, err := s.Passwords(ctx, []string{"P1", "P2", "none"}, at(0))
	if err != nil {
		t.Fatal(err)
	}
	var vals []string
	for _, x := range got {
		vals = append(vals, x.MsgID+":"+x.Value)
	}
	slices.Sort(vals[1:]) // P2 first (newest), P1's order is free
	if !cmp.Equal(vals, []string{"P2:s3cret-2", "P1:other", "P1:s3cret-1"}) {
		t.Errorf("passwords = %v", vals)
	}
	if got, _ := s.Passwords(ctx, []string{"P1", "P2"}, at(2)); len(got) != 1 || got[0].MsgID != "P2" {
		t.Errorf("after P1's window: %v", got)
	}
	// Secrets never come back with records.
	h := lookup(t, s, thread.Query{Exclude: "P2"})
	if h.Self == nil || len(h.Self.Passwords) != 0 {
		t.Errorf("self carries secrets: %+v", h.Self)
	}
	rs, _ := s.Recent(ctx, thread.Relation{Sender: "ext@partner.example", Internal: []string{"bob@corp.example"}})
	for _, r := range rs {
		if len(r.Passwords) != 0 {
			t.Errorf("Recent returned secrets of %s", r.ID)
		}
	}
	// Purge drops expired secrets even for messages it keeps.
	if _, err := s.Purge(ctx, at(-100), at(4)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Passwords(ctx, []string{"P1", "P2"}, at(0)); len(got) != 0 {
		t.Errorf("expired secrets survived Purge: %d", len(got))
	}
	// Re-recording without passwords removes them.
	p3 := inbound("P3", "p3@x", "ext@partner.example", "bob@corp.example", 5)
	p3.Passwords, p3.Expires = []string{"x1x1x1"}, at(8)
	record(t, s, p3)
	p3.Passwords = nil
	record(t, s, p3)
	if got, _ := s.Passwords(ctx, []string{"P3"}, at(5)); len(got) != 0 {
		t.Errorf("secrets survived a record without them: %d", len(got))
	}
}

func testCorrespondents(t *testing.T, s thread.Store) {
	record(t, s,
		outbound("1", "1@x", "bob@corp.example", "a@big.example", 0),
		outbound("2", "2@x", "bob@corp.example", "b@big.example", 1),
		inbound("3", "3@x", "a@big.example", "bob@corp.example", 2),
		outbound("4", "4@x", "bob@corp.example", "c@small.example", 3),
		inbound("5", "5@x", "x@inbound-only.example", "bob@corp.example", 4))
	got, err := s.Correspondents(context.Background(), 10)
	if err != nil {
		t.Fatal(err)
	}
	var doms []string
	for _, p := range got {
		doms = append(doms, p.External)
	}
	if !cmp.Equal(doms, []string{"big.example", "small.example"}) {
		t.Errorf("correspondents = %v", doms)
	}
	if got, _ := s.Correspondents(context.Background(), 1); len(got) != 1 {
		t.Errorf("limit ignored: %d", len(got))
	}
}

func testPurge(t *testing.T, s thread.Store) {
	ctx := context.Background()
	old := inbound("old", "old@x", "ext@partner.example", "bob@corp.example", 0)
	recent := inbound("new", "new@x", "ext2@partner2.example", "bob@corp.example", 100)
	record(t, s, old, recent)
	if err := s.Flag(ctx, "gone@evil.example", at(0), "trap"); err != nil {
		t.Fatal(err)
	}
	n, err := s.Purge(ctx, at(50), at(100))
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Error("purge removed nothing")
	}
	h := lookup(t, s, thread.Query{Refs: []string{"old@x", "new@x"}, Sender: "ext@partner.example", Domain: "partner.example",
		Internal: []string{"bob@corp.example"}, Flagged: []string{"gone@evil.example"}})
	if !cmp.Equal(ids(h.Parents), []string{"new"}) || len(h.Pairs) != 0 || h.Domain.Exchanges() != 0 || h.Flagged != "" {
		t.Errorf("after purge: parents %v pairs %+v domain %+v flagged %q", ids(h.Parents), h.Pairs, h.Domain, h.Flagged)
	}
}
