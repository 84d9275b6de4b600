package sqlite

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mailguard/mailguard/sandbox"
	"github.com/mailguard/mailguard/store"
	"github.com/mailguard/mailguard/store/storetest"
)

// testClock is a settable clock for the store.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

// lifecycle builds messages in every state through the Store API. Each
// message carries one file whose hash is derived from its ID.
type lifecycle struct {
	t *testing.T
	s *DB
}

func fileOf(id string) store.FileRef {
	sum := sha256.Sum256([]byte(id))
	return store.FileRef{SHA256: hex.EncodeToString(sum[:]), Path: id + ".zip", Name: id + ".zip", Type: "application/zip", Size: 3}
}

func (l lifecycle) decide(id string, st store.State, dels bool) {
	l.t.Helper()
	storetest.Accept(l.t, l.s, id, "Subject: "+id+"\r\n\r\nbody of "+id+"\r\n", "u@corp.example")
	d := store.Decided{State: st, Action: "x", Files: []store.FileRef{fileOf(id)}}
	if dels {
		d.Deliveries = []store.Delivery{{Route: "inbound", MailFrom: "a@sender.example", Rcpts: []string{"u@corp.example"}}}
	}
	if err := l.s.Decide(context.Background(), id, []store.State{store.Received}, d); err != nil {
		l.t.Fatal(err)
	}
}

// deliver queues id and settles its delivery with code.
func (l lifecycle) deliver(id string, code int) {
	l.t.Helper()
	l.decide(id, store.Queued, true)
	ds, err := l.s.Claim(context.Background(), "n", time.Minute, 10)
	if err != nil || len(ds) != 1 {
		l.t.Fatalf("claim %s: %v %v", id, ds, err)
	}
	res := []store.RcptResult{{Rcpt: "u@corp.example", Code: code, Perm: code >= 500}}
	if err := l.s.DeliveryDone(context.Background(), ds[0].ID, res, nil, nil); err != nil {
		l.t.Fatal(err)
	}
}

func (l lifecycle) transition(id string, from, to store.State, dels bool) {
	l.t.Helper()
	var d []store.Delivery
	if dels {
		d = []store.Delivery{{Route: "inbound", MailFrom: "a@sender.example", Rcpts: []string{"u@corp.example"}}}
	}
	if err := l.s.Transition(context.Background(), id, []store.State{from}, to, d, &store.Audit{MsgID: id, Actor: "op", Action: string(to)}); err != nil {
		l.t.Fatal(err)
	}
}

func (l lifecycle) state(id string) store.State {
	l.t.Helper()
	m, err := l.s.Get(context.Background(), id)
	if errors.Is(err, store.ErrNotFound) {
		return "gone"
	}
	if err != nil {
		l.t.Fatal(err)
	}
	return m.State
}

func (l lifecycle) hasContent(id string) bool {
	f, err := l.s.Open(context.Background(), id)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// build makes one message in each state at t0 and returns their IDs.
func (l lifecycle) build() {
	l.deliver("delivered", 250)
	l.deliver("bounced", 550)
	l.decide("rejected", store.Rejected, false)
	l.decide("quarantined", store.Quarantined, false)
	l.decide("held", store.Held, false)
	l.decide("queued", store.Queued, true) // never claimed: pending
	l.decide("released", store.Quarantined, false)
	l.transition("released", store.Quarantined, store.Released, true)
	l.decide("deleted", store.Quarantined, false)
	l.transition("deleted", store.Quarantined, store.Deleted, false)
	if err := l.s.RemoveContent(context.Background(), "deleted"); err != nil {
		l.t.Fatal(err)
	}
	storetest.Accept(l.t, l.s, "received", "Subject: r\r\n\r\nx\r\n")
	l.decide("error", store.Quarantined, false)
	l.transition("error", store.Quarantined, store.Error, false)
}

var policyAges = store.Retention{Delivered: 30 * day, Quarantined: 90 * day, Rejected: 7 * day,
	Records: 365 * day, Blobs: 7 * day, Actor: "retention"}

func purgeAt(t *testing.T, s *DB, at time.Time, r store.Retention) store.Purged {
	t.Helper()
	r.Now = at
	p, err := s.Purge(context.Background(), r)
	if err != nil {
		t.Fatalf("Purge at %s: %v", at, err)
	}
	return p
}

func sorted(l []string) []string {
	l = slices.Clone(l)
	slices.Sort(l)
	return l
}

// TestPurgeLifecycle walks the clock through every retention age and
// checks that each purge removes what is due and nothing else; held,
// queued, released, received and error messages survive them all.
func TestPurgeLifecycle(t *testing.T) {
	clk := &testClock{t: t0}
	s := openTemp(t, Options{Now: clk.now})
	l := lifecycle{t, s}
	l.build()
	never := []string{"held", "queued", "released", "received", "error"}
	checkSurvivors := func(at string) {
		t.Helper()
		for _, id := range never {
			if l.state(id) == "gone" || (id != "error" && !l.hasContent(id)) {
				t.Errorf("%s: %s was purged (state %s)", at, id, l.state(id))
			}
		}
	}

	// A dry run a year later lists everything due and changes nothing.
	dry := policyAges
	dry.DryRun = true
	p := purgeAt(t, s, t0.Add(400*day), dry)
	if diff := cmp.Diff([]string{"quarantined"}, p.Deleted); diff != "" {
		t.Errorf("dry run deleted (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"bounced", "delivered", "quarantined", "rejected"}, sorted(p.Content)); diff != "" {
		t.Errorf("dry run content (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"bounced", "deleted", "delivered", "rejected"}, sorted(p.Records)); diff != "" {
		t.Errorf("dry run records (-want +got):\n%s", diff)
	}
	if p.Bytes == 0 {
		t.Error("dry run measured no bytes")
	}
	for _, id := range []string{"delivered", "bounced", "rejected", "quarantined"} {
		if !l.hasContent(id) || l.state(id) == "gone" {
			t.Errorf("dry run removed %s", id)
		}
	}
	if l.state("quarantined") != store.Quarantined {
		t.Errorf("dry run changed quarantined to %s", l.state("quarantined"))
	}

	// Day 8: only rejected content is past its age.
	clk.set(t0.Add(8 * day))
	p = purgeAt(t, s, clk.now(), policyAges)
	if diff := cmp.Diff(store.Purged{Content: []string{"rejected"}, Bytes: p.Bytes}, p); diff != "" {
		t.Errorf("day 8 (-want +got):\n%s", diff)
	}
	if l.hasContent("rejected") || l.state("rejected") != store.Rejected {
		t.Errorf("rejected: content %v, state %s", l.hasContent("rejected"), l.state("rejected"))
	}
	// Again: nothing new (idempotent, and the mark keeps it from being
	// looked at again).
	if p := purgeAt(t, s, clk.now(), policyAges); !p.Empty() {
		t.Errorf("second purge on day 8 = %+v", p)
	}

	// Day 31: delivered and bounced content goes; their records (and the
	// file index hunt uses) stay.
	clk.set(t0.Add(31 * day))
	p = purgeAt(t, s, clk.now(), policyAges)
	if diff := cmp.Diff([]string{"bounced", "delivered"}, sorted(p.Content)); diff != "" || len(p.Records)+len(p.Deleted) != 0 {
		t.Errorf("day 31: %+v %s", p, diff)
	}
	ids, err := s.MessageIDs(context.Background(), store.Filter{SHA256: fileOf("delivered").SHA256})
	if err != nil || len(ids) != 1 {
		t.Errorf("file index after content purge: %v %v", ids, err)
	}
	checkSurvivors("day 31")

	// Day 91: the quarantined message is deleted, audited, and loses its
	// content.
	clk.set(t0.Add(91 * day))
	p = purgeAt(t, s, clk.now(), policyAges)
	if diff := cmp.Diff([]string{"quarantined"}, p.Deleted); diff != "" || !slices.Equal(p.Content, []string{"quarantined"}) {
		t.Errorf("day 91: %+v %s", p, diff)
	}
	if l.state("quarantined") != store.Deleted || l.hasContent("quarantined") {
		t.Errorf("quarantined: state %s, content %v", l.state("quarantined"), l.hasContent("quarantined"))
	}
	audits, _ := s.Audits(context.Background(), "quarantined")
	if len(audits) != 1 || audits[0].Actor != "retention" || audits[0].Action != "delete" ||
		!strings.Contains(audits[0].Note, "90d") {
		t.Errorf("audit of the retention delete: %+v", audits)
	}
	checkSurvivors("day 91")

	// Day 400: records of the messages finished at t0 go, with their file
	// index, deliveries and audit; the one deleted on day 91 stays.
	clk.set(t0.Add(400 * day))
	p = purgeAt(t, s, clk.now(), policyAges)
	if diff := cmp.Diff([]string{"bounced", "deleted", "delivered", "rejected"}, sorted(p.Records)); diff != "" {
		t.Errorf("day 400 records (-want +got):\n%s", diff)
	}
	for _, id := range p.Records {
		if l.state(id) != "gone" {
			t.Errorf("%s still has a row", id)
		}
		if a, _ := s.Audits(context.Background(), id); len(a) != 0 {
			t.Errorf("%s keeps audit rows: %+v", id, a)
		}
	}
	if ids, _ := s.MessageIDs(context.Background(), store.Filter{SHA256: fileOf("delivered").SHA256}); len(ids) != 0 {
		t.Errorf("file index of a purged record: %v", ids)
	}
	var n int
	s.r.QueryRow(`SELECT count(*) FROM deliveries WHERE msg_id IN ('delivered', 'bounced')`).Scan(&n)
	if n != 0 {
		t.Errorf("%d delivery rows left for purged records", n)
	}
	if l.state("quarantined") != store.Deleted {
		t.Errorf("record deleted on day 91 purged on day 400")
	}
	checkSurvivors("day 400")

	// Ten years on, everything finished is gone; the rest is not.
	p = purgeAt(t, s, t0.Add(3650*day), policyAges)
	if !slices.Equal(p.Records, []string{"quarantined"}) {
		t.Errorf("day 3650 records = %v", p.Records)
	}
	checkSurvivors("day 3650")
	// The store still reconciles cleanly: no orphan files, no rows
	// missing their spool.
	rec, err := s.Recover(context.Background())
	if err != nil || len(rec.Orphans)+len(rec.MissingSpool) != 0 {
		t.Errorf("Recover after purges = %+v, %v", rec, err)
	}
}

// TestPurgeForever: zero ages keep everything.
func TestPurgeForever(t *testing.T) {
	clk := &testClock{t: t0}
	s := openTemp(t, Options{Now: clk.now})
	lifecycle{t, s}.build()
	p := purgeAt(t, s, t0.Add(10000*day), store.Retention{Actor: "retention"})
	if !p.Empty() {
		t.Errorf("purge with no ages removed %+v", p)
	}
}

// TestPurgeLimit: a backlog is purged in bounded batches.
func TestPurgeLimit(t *testing.T) {
	clk := &testClock{t: t0}
	s := openTemp(t, Options{Now: clk.now})
	l := lifecycle{t, s}
	for i := range 5 {
		l.deliver(fmt.Sprintf("d%d", i), 250)
	}
	r := policyAges
	r.Limit = 2
	var got []string
	for i := 0; ; i++ {
		p := purgeAt(t, s, t0.Add(31*day), r)
		if len(p.Content) > 2 {
			t.Fatalf("batch of %d, limit 2", len(p.Content))
		}
		got = append(got, p.Content...)
		if !p.More {
			break
		}
		if i > 5 {
			t.Fatal("More never cleared")
		}
	}
	if diff := cmp.Diff([]string{"d0", "d1", "d2", "d3", "d4"}, sorted(got)); diff != "" {
		t.Errorf("purged in batches (-want +got):\n%s", diff)
	}
}

// TestPurgeRaces: what an operator or a crash did between the purge's
// read and its write is respected.
func TestPurgeRaces(t *testing.T) {
	clk := &testClock{t: t0}
	s := openTemp(t, Options{Now: clk.now, InlineMax: -1}) // the crash below is of a spool file
	l := lifecycle{t, s}
	l.decide("q1", store.Quarantined, false)
	l.deliver("d1", 250)
	// A crash after the file went but before the row said so: the next
	// purge finishes the job without an error.
	os.Remove(s.spoolPath("d1"))
	// An operator releases q1 on day 100: its age starts again and it is
	// never deleted by retention (released is not purged).
	clk.set(t0.Add(100 * day))
	l.transition("q1", store.Quarantined, store.Released, true)
	p := purgeAt(t, s, clk.now(), policyAges)
	if len(p.Deleted) != 0 || l.state("q1") != store.Released || !l.hasContent("q1") {
		t.Errorf("released message purged: %+v, state %s", p, l.state("q1"))
	}
	if slices.Contains(p.Content, "d1") {
		t.Errorf("content already gone reported as removed: %v", p.Content)
	}
	if p := purgeAt(t, s, clk.now(), policyAges); !p.Empty() {
		t.Errorf("second purge = %+v", p)
	}
}

// TestPurgeBlobs: only unreferenced, old blobs go; expired verdicts too.
func TestPurgeBlobs(t *testing.T) {
	clk := &testClock{t: t0}
	s := openTemp(t, Options{Now: clk.now})
	ctx := context.Background()
	l := lifecycle{t, s}
	put := func(content string, age time.Duration) string {
		t.Helper()
		sum := sha256.Sum256([]byte(content))
		h := hex.EncodeToString(sum[:])
		if err := s.PutBlob(ctx, h, strings.NewReader(content)); err != nil {
			t.Fatal(err)
		}
		mt := t0.Add(-age)
		if err := os.Chtimes(s.blobPath(h), mt, mt); err != nil {
			t.Fatal(err)
		}
		return h
	}
	// The held message's file (fileOf derives the hash from the ID).
	l.decide("heldmsg", store.Held, false)
	held := fileOf("heldmsg").SHA256
	os.MkdirAll(s.blobPath(held)[:len(s.blobPath(held))-len(held)], 0o750)
	os.WriteFile(s.blobPath(held), []byte("heldmsg"), 0o640)
	old := t0.Add(-30 * day)
	os.Chtimes(s.blobPath(held), old, old)
	tasked := put("in a sandbox task", 30*day)
	if _, _, err := s.Sandbox().AddTask(ctx, sandbox.Task{Key: tasked, SHA256: tasked, Name: "x", Created: t0, NextPoll: t0}); err != nil {
		t.Fatal(err)
	}
	stale := put("nobody needs me", 30*day)
	young := put("fresh", time.Hour)
	// A stranger in the blob directory is not ours to remove.
	os.WriteFile(s.blobPath(stale)+".tmp", []byte("x"), 0o640)
	os.Chtimes(s.blobPath(stale)+".tmp", old, old)

	expired := sandbox.Verdict{Key: "k-expired", SHA256: stale, State: sandbox.StateDone}
	live := sandbox.Verdict{Key: "k-live", SHA256: young, State: sandbox.StateDone}
	s.Sandbox().PutVerdict(ctx, expired, t0.Add(-time.Hour))
	s.Sandbox().PutVerdict(ctx, live, t0.Add(time.Hour))

	p := purgeAt(t, s, t0, policyAges)
	if diff := cmp.Diff([]string{stale}, p.Blobs); diff != "" {
		t.Errorf("blobs (-want +got):\n%s", diff)
	}
	if p.Verdicts != 1 {
		t.Errorf("verdicts removed = %d, want 1", p.Verdicts)
	}
	for _, h := range []string{held, tasked, young} {
		if _, err := os.Stat(s.blobPath(h)); err != nil {
			t.Errorf("blob %s removed: %v", h[:8], err)
		}
	}
	if _, err := os.Stat(s.blobPath(stale) + ".tmp"); err != nil {
		t.Errorf("a file not named by its hash was removed")
	}
	if _, ok, _ := s.Sandbox().GetVerdict(ctx, "k-live", t0); !ok {
		t.Error("live verdict removed")
	}
	// Once the message is no longer held, its blob goes too.
	l.transition("heldmsg", store.Held, store.Quarantined, false)
	if p := purgeAt(t, s, t0, policyAges); !slices.Equal(p.Blobs, []string{held}) {
		t.Errorf("blob of a message no longer held: %v", p.Blobs)
	}
}

// TestMessageIDsAgreeWithList keeps MessageIDs selecting what List does.
func TestMessageIDsAgreeWithList(t *testing.T) {
	clk := &testClock{t: t0}
	s := openTemp(t, Options{Now: clk.now})
	l := lifecycle{t, s}
	for i, st := range []store.State{store.Held, store.Quarantined, store.Rejected, store.Held} {
		clk.set(t0.Add(time.Duration(i) * time.Hour))
		l.decide(fmt.Sprintf("m%d", i), st, false)
	}
	clk.set(t0.Add(10 * time.Hour))
	l.deliver("d", 250)
	filters := []store.Filter{{}, {States: []store.State{store.Held}}, {Since: t0.Add(90 * time.Minute)},
		{From: "SENDER.example"}, {Rcpt: "u@corp"}, {Rcpt: "nobody"}, {SHA256: strings.ToUpper(fileOf("m2").SHA256)},
		{IDs: []string{"m1", "d", "zz"}}, {Limit: 2}, {States: []store.State{store.Held, store.Delivered}, Limit: 2},
		{Reason: "clean"}}
	for _, f := range filters {
		ms, err := s.List(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{}
		for _, m := range ms {
			want = append(want, m.ID)
		}
		got, err := s.MessageIDs(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		if got == nil {
			got = []string{}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("filter %+v (-List +MessageIDs):\n%s", f, diff)
		}
	}
}

// BenchmarkPurgeContent measures the hourly purge of delivered mail's
// bytes: one op is one message whose spool file is removed and marked.
func BenchmarkPurgeContent(b *testing.B) {
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	body := strings.Repeat("x", 20<<10)
	for i := range b.N {
		if _, err := s.Accept(ctx, &store.Message{ID: fmt.Sprintf("p%07d", i)}, strings.NewReader(body)); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := s.w.Exec(`UPDATE messages SET state = 'delivered', state_at = ?`, us(t0)); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	p, err := s.Purge(ctx, store.Retention{Now: t0.Add(31 * day), Delivered: 30 * day, Limit: 1000})
	for err == nil && p.More {
		p, err = s.Purge(ctx, store.Retention{Now: t0.Add(31 * day), Delivered: 30 * day, Limit: 1000})
	}
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	var left int
	s.r.QueryRow(`SELECT count(*) FROM messages WHERE content_purged = 0`).Scan(&left)
	if left != 0 {
		b.Fatalf("%d messages not purged", left)
	}
}
