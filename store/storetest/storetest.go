// Package storetest is the conformance suite every store.Store
// implementation must pass: run it from the implementation's tests with a
// function that opens a fresh store.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mailguard/mailguard/store"
)

// Run runs the suite. open must return a new, empty store.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("AcceptGetOpen", func(t *testing.T) { testAccept(t, open(t)) })
	t.Run("AcceptDecided", func(t *testing.T) { testAcceptDecided(t, open(t)) })
	t.Run("AcceptReaderError", func(t *testing.T) { testAcceptReaderError(t, open(t)) })
	t.Run("DecideAndDeliver", func(t *testing.T) { testDecideDeliver(t, open(t)) })
	t.Run("Retry", func(t *testing.T) { testRetry(t, open(t)) })
	t.Run("BounceWithDSN", func(t *testing.T) { testBounce(t, open(t)) })
	t.Run("TransitionIsConditional", func(t *testing.T) { testTransition(t, open(t)) })
	t.Run("ListFilters", func(t *testing.T) { testList(t, open(t)) })
	t.Run("ConcurrentAccept", func(t *testing.T) { testConcurrent(t, open(t)) })
	t.Run("ClaimLease", func(t *testing.T) { testLease(t, open(t)) })
	t.Run("PartialFailureDSN", func(t *testing.T) { testPartialDSN(t, open(t)) })
	t.Run("QuarantineQueuedCancelsDelivery", func(t *testing.T) { testCancel(t, open(t)) })
	t.Run("PreLeasedDelivery", func(t *testing.T) { testPreLeased(t, open(t)) })
	t.Run("DeliveredInAnEarlierAttempt", func(t *testing.T) { testDeliveredEarlier(t, open(t)) })
}

var ctx = context.Background()

// Accept stores body under id and fails the test on error.
func Accept(t *testing.T, s store.Store, id, body string, rcpts ...string) *store.Message {
	t.Helper()
	m := &store.Message{ID: id, Direction: "inbound", ClientIP: "192.0.2.1", HELO: "client.example",
		MailFrom: "a@sender.example", Rcpts: rcpts}
	n, err := s.Accept(ctx, m, strings.NewReader(body))
	if err != nil {
		t.Fatalf("Accept(%s): %v", id, err)
	}
	if n != int64(len(body)) {
		t.Fatalf("Accept(%s) = %d bytes, want %d", id, n, len(body))
	}
	return m
}

func testAccept(t *testing.T, s store.Store) {
	body := "Subject: x\r\n\r\nhello\r\n"
	Accept(t, s, "m1", body, "u@corp.example")
	m, err := s.Get(ctx, "m1")
	if err != nil {
		t.Fatal(err)
	}
	if m.State != store.Received || m.Size != int64(len(body)) || m.MailFrom != "a@sender.example" ||
		!cmp.Equal(m.Rcpts, []string{"u@corp.example"}) || m.ReceivedAt.IsZero() {
		t.Errorf("Get = %+v", m)
	}
	f, err := s.Open(ctx, "m1")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f)
	f.Close()
	if string(got) != body {
		t.Errorf("Open = %q, want %q", got, body)
	}
	if _, err := s.Get(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get(nope) err = %v, want ErrNotFound", err)
	}
	if _, err := s.Open(ctx, "../../etc/passwd"); err == nil {
		t.Error("Open with a path in the id succeeded")
	}
}

type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, errors.New("client went away")
	}
	r.n--
	return copy(p, "partial data "), nil
}

func testAcceptReaderError(t *testing.T, s store.Store) {
	_, err := s.Accept(ctx, &store.Message{ID: "bad1"}, &failingReader{n: 3})
	if err == nil || !strings.Contains(err.Error(), "client went away") {
		t.Fatalf("Accept with failing reader: err = %v", err)
	}
	if _, err := s.Get(ctx, "bad1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a failed Accept left a row: %v", err)
	}
	rec, err := s.Recover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Orphans) != 0 {
		t.Errorf("a failed Accept left spool files: %v", rec.Orphans)
	}
}

func queue(t *testing.T, s store.Store, id string, rcpts ...string) {
	t.Helper()
	err := s.Decide(ctx, id, []store.State{store.Received}, store.Decided{
		State: store.Queued, Action: "deliver", Reasons: []string{"clean"}, MessageID: "x@y",
		Subject: "hello", Files: []store.FileRef{{SHA256: strings.Repeat("ab", 32), Path: "a.txt", Name: "a.txt", Type: "text/plain", Size: 5}},
		Deliveries: []store.Delivery{{Route: "inbound", MailFrom: "a@sender.example", Rcpts: rcpts}},
	})
	if err != nil {
		t.Fatalf("Decide(%s): %v", id, err)
	}
}

func claimOne(t *testing.T, s store.Store, owner string) store.Delivery {
	t.Helper()
	ds, err := s.Claim(ctx, owner, time.Minute, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 {
		t.Fatalf("Claim = %d deliveries, want 1", len(ds))
	}
	return ds[0]
}

func testDecideDeliver(t *testing.T, s store.Store) {
	Accept(t, s, "m2", "body", "u@corp.example", "v@corp.example")
	queue(t, s, "m2", "u@corp.example", "v@corp.example")
	m, _ := s.Get(ctx, "m2")
	if m.State != store.Queued || m.Action != "deliver" || m.Subject != "hello" || len(m.Files) != 1 {
		t.Errorf("after Decide: %+v", m)
	}
	d := claimOne(t, s, "w1")
	if d.MsgID != "m2" || !cmp.Equal(d.Rcpts, []string{"u@corp.example", "v@corp.example"}) || d.Received.IsZero() {
		t.Errorf("claimed %+v", d)
	}
	if ds, _ := s.Claim(ctx, "w2", time.Minute, 10); len(ds) != 0 {
		t.Errorf("a leased delivery was claimed twice: %+v", ds)
	}
	err := s.DeliveryDone(ctx, d.ID, []store.RcptResult{{Rcpt: "u@corp.example", Code: 250}, {Rcpt: "v@corp.example", Code: 250}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := s.Get(ctx, "m2"); m.State != store.Delivered {
		t.Errorf("state after delivery = %s", m.State)
	}
	if n, _ := s.PendingDeliveries(ctx); n != 0 {
		t.Errorf("pending = %d", n)
	}
}

func testRetry(t *testing.T, s store.Store) {
	Accept(t, s, "m3", "body", "u@corp.example")
	queue(t, s, "m3", "u@corp.example")
	d := claimOne(t, s, "w1")
	future := time.Now().Add(time.Hour)
	if err := s.DeliveryRetry(ctx, d.ID, future, d.Rcpts, []store.RcptResult{{Rcpt: "u@corp.example", Code: 451, Text: "try later"}}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if ds, _ := s.Claim(ctx, "w1", time.Minute, 10); len(ds) != 0 {
		t.Errorf("a delivery due in an hour was claimed: %+v", ds)
	}
	if m, _ := s.Get(ctx, "m3"); m.State != store.Queued {
		t.Errorf("state = %s, want queued", m.State)
	}
}

func testBounce(t *testing.T, s store.Store) {
	Accept(t, s, "m4", "body", "u@corp.example")
	queue(t, s, "m4", "u@corp.example")
	d := claimOne(t, s, "w1")
	dsn := &store.Message{ID: "m4-dsn", Direction: "inbound", MailFrom: "", Rcpts: []string{"a@sender.example"}}
	if err := s.DeliveryDone(ctx, d.ID, []store.RcptResult{{Rcpt: "u@corp.example", Code: 550, Perm: true}}, dsn, []byte("DSN bytes")); err != nil {
		t.Fatal(err)
	}
	if m, _ := s.Get(ctx, "m4"); m.State != store.Bounced {
		t.Errorf("state = %s, want bounced", m.State)
	}
	dd := claimOne(t, s, "w1")
	if dd.MsgID != "m4-dsn" || dd.MailFrom != "" || !cmp.Equal(dd.Rcpts, []string{"a@sender.example"}) {
		t.Errorf("DSN delivery = %+v", dd)
	}
	f, err := s.Open(ctx, "m4-dsn")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	if string(b) != "DSN bytes" {
		t.Errorf("DSN spool = %q", b)
	}
}

func testTransition(t *testing.T, s store.Store) {
	Accept(t, s, "m5", "body", "u@corp.example")
	err := s.Decide(ctx, "m5", []store.State{store.Received}, store.Decided{State: store.Held, Action: "hold"})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Decide(ctx, "m5", []store.State{store.Received}, store.Decided{State: store.Queued})
	if !errors.Is(err, store.ErrState) {
		t.Errorf("Decide from the wrong state: err = %v, want ErrState", err)
	}
	audit := &store.Audit{MsgID: "m5", Actor: "root", Action: "release", Note: "false positive"}
	dels := []store.Delivery{{Route: "inbound", MailFrom: "a@sender.example", Rcpts: []string{"u@corp.example"}, Extra: []byte("X-Mailguard-Released: yes\r\n")}}
	if err := s.Transition(ctx, "m5", []store.State{store.Held, store.Quarantined}, store.Released, dels, audit); err != nil {
		t.Fatal(err)
	}
	// Releasing twice must not queue twice.
	if err := s.Transition(ctx, "m5", []store.State{store.Held, store.Quarantined}, store.Released, dels, audit); !errors.Is(err, store.ErrState) {
		t.Errorf("second release: err = %v, want ErrState", err)
	}
	if n, _ := s.PendingDeliveries(ctx); n != 1 {
		t.Errorf("pending deliveries = %d, want 1", n)
	}
	as, err := s.Audits(ctx, "m5")
	if err != nil || len(as) != 1 || as[0].Note != "false positive" || as[0].At.IsZero() {
		t.Errorf("Audits = %+v, %v", as, err)
	}
	d := claimOne(t, s, "w")
	if !bytes.Contains(d.Extra, []byte("X-Mailguard-Released")) {
		t.Errorf("release delivery lost its extra header: %q", d.Extra)
	}
	if err := s.DeliveryDone(ctx, d.ID, []store.RcptResult{{Rcpt: "u@corp.example", Code: 250}}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if m, _ := s.Get(ctx, "m5"); m.State != store.Delivered {
		t.Errorf("released message state after delivery = %s", m.State)
	}
}

func testList(t *testing.T, s store.Store) {
	Accept(t, s, "l1", "b", "alice@corp.example")
	Accept(t, s, "l2", "b", "bob@corp.example")
	s.Decide(ctx, "l1", nil, store.Decided{State: store.Quarantined, Reasons: []string{"malware_yara", "exec_attachment"}, From: "Evil <evil@bad.example>",
		Files: []store.FileRef{{SHA256: strings.Repeat("cd", 32), Path: "x.exe", Name: "x.exe", Type: "application/x-dosexec", Size: 3}}})
	s.Decide(ctx, "l2", nil, store.Decided{State: store.Held, Reasons: []string{"first_contact_attachment"}})
	check := func(f store.Filter, want ...string) {
		t.Helper()
		ms, err := s.List(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range ms {
			got = append(got, m.ID)
		}
		if !cmp.Equal(got, want) {
			t.Errorf("List(%+v) = %v, want %v", f, got, want)
		}
	}
	check(store.Filter{States: []store.State{store.Quarantined}}, "l1")
	check(store.Filter{States: []store.State{store.Held, store.Quarantined}}, "l2", "l1")
	check(store.Filter{Reason: "exec_attachment"}, "l1")
	check(store.Filter{Reason: "exec"})
	check(store.Filter{Rcpt: "BOB@"}, "l2")
	check(store.Filter{From: "bad.example"}, "l1")
	check(store.Filter{SHA256: strings.Repeat("CD", 32)}, "l1")
	check(store.Filter{Since: time.Now().Add(time.Hour)})
	check(store.Filter{IDs: []string{"l1", "nope"}}, "l1")
	ids, err := s.InState(ctx, store.Held)
	if err != nil || !cmp.Equal(ids, []string{"l2"}) {
		t.Errorf("InState(held) = %v, %v", ids, err)
	}
}

func testConcurrent(t *testing.T, s store.Store) {
	const n = 64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("c%03d", i)
			body := strings.Repeat(id, 1000)
			if _, err := s.Accept(ctx, &store.Message{ID: id}, strings.NewReader(body)); err != nil {
				errs <- err
				return
			}
			f, err := s.Open(ctx, id)
			if err != nil {
				errs <- err
				return
			}
			b, _ := io.ReadAll(f)
			f.Close()
			if string(b) != body {
				errs <- fmt.Errorf("%s: content differs", id)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	ids, _ := s.InState(ctx, store.Received)
	if len(ids) != n {
		t.Errorf("%d received, want %d", len(ids), n)
	}
}

func testLease(t *testing.T, s store.Store) {
	Accept(t, s, "m6", "body", "u@corp.example")
	queue(t, s, "m6", "u@corp.example")
	ds, err := s.Claim(ctx, "dead-worker", time.Millisecond, 10)
	if err != nil || len(ds) != 1 {
		t.Fatalf("Claim = %v, %v", ds, err)
	}
	time.Sleep(5 * time.Millisecond)
	d := claimOne(t, s, "live-worker")
	if d.ID != ds[0].ID {
		t.Errorf("reclaimed %d, want %d", d.ID, ds[0].ID)
	}
	// A restarted node takes back its own leases at once.
	if n, err := s.ReleaseLeases(ctx, "other-node"); err != nil || n != 0 {
		t.Errorf("ReleaseLeases(other) = %d, %v", n, err)
	}
	if n, err := s.ReleaseLeases(ctx, "live-worker"); err != nil || n != 1 {
		t.Errorf("ReleaseLeases(live-worker) = %d, %v", n, err)
	}
	claimOne(t, s, "live-worker")
}

// testPartialDSN: one recipient fails for good while another is retried:
// the DSN is queued at once, the delivery keeps the pending recipient.
func testPartialDSN(t *testing.T, s store.Store) {
	Accept(t, s, "m7", "body", "gone@corp.example", "later@corp.example")
	queue(t, s, "m7", "gone@corp.example", "later@corp.example")
	d := claimOne(t, s, "w")
	dsn := &store.Message{ID: "m7-dsn", Direction: "outbound", Rcpts: []string{"a@sender.example"}}
	err := s.DeliveryRetry(ctx, d.ID, time.Now().Add(-time.Second), []string{"later@corp.example"},
		[]store.RcptResult{{Rcpt: "gone@corp.example", Code: 550, Perm: true}, {Rcpt: "later@corp.example", Code: 451}}, dsn, []byte("dsn"))
	if err != nil {
		t.Fatal(err)
	}
	ds, err := s.Claim(ctx, "w", time.Minute, 10)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	routes := map[string]string{}
	for _, d := range ds {
		got[d.MsgID] = d.Rcpts
		routes[d.MsgID] = d.Route
	}
	if !cmp.Equal(got["m7"], []string{"later@corp.example"}) || !cmp.Equal(got["m7-dsn"], []string{"a@sender.example"}) || routes["m7-dsn"] != "outbound" {
		t.Errorf("after a partial failure: %v routes %v", got, routes)
	}
	if m, _ := s.Get(ctx, "m7"); m.State != store.Queued {
		t.Errorf("state %s, want queued", m.State)
	}
}

// testCancel: a queued message quarantined after the fact (a trap flagged
// its sender) is not delivered.
func testCancel(t *testing.T, s store.Store) {
	Accept(t, s, "m8", "body", "u@corp.example")
	queue(t, s, "m8", "u@corp.example")
	if err := s.Transition(ctx, "m8", []store.State{store.Queued}, store.Quarantined, nil,
		&store.Audit{MsgID: "m8", Actor: "mailguard", Action: "quarantine", Detail: "sender flagged by a trap"}); err != nil {
		t.Fatal(err)
	}
	if ds, _ := s.Claim(ctx, "w", time.Minute, 10); len(ds) != 0 {
		t.Errorf("a quarantined message is still claimable: %+v", ds)
	}
	if n, _ := s.PendingDeliveries(ctx); n != 0 {
		t.Errorf("%d pending deliveries", n)
	}
}

// testPreLeased: a delivery created already leased (the deciding node
// hands it to its own workers) is not claimable by others, carries what
// delivery needs, and comes back when its owner releases its leases.
func testPreLeased(t *testing.T, s store.Store) {
	Accept(t, s, "m9", "Subject: x\r\n\r\nbody\r\n", "u@corp.example")
	dels := []store.Delivery{{Route: "inbound", MailFrom: "a@sender.example", Rcpts: []string{"u@corp.example"}}}
	err := s.Decide(ctx, "m9", []store.State{store.Received}, store.Decided{State: store.Queued, Action: "tag",
		Prepend: []byte("X-Mailguard-Id: m9\r\n"), SubjectPrefix: "[EXT] ", StripAuthResults: true,
		Deliveries: dels, LeaseOwner: "node-a", LeaseUntil: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if dels[0].ID == 0 || dels[0].MsgID != "m9" {
		t.Errorf("Decide did not report the delivery: %+v", dels[0])
	}
	if ds, _ := s.Claim(ctx, "node-b", time.Minute, 10); len(ds) != 0 {
		t.Errorf("a pre-leased delivery was claimed by another node: %+v", ds)
	}
	if n, err := s.ReleaseLeases(ctx, "node-a"); err != nil || n != 1 {
		t.Fatalf("ReleaseLeases = %d, %v", n, err)
	}
	d := claimOne(t, s, "node-a")
	if string(d.Prepend) != "X-Mailguard-Id: m9\r\n" || d.SubjectPrefix != "[EXT] " || !d.StripAuthResults ||
		d.Size != int64(len("Subject: x\r\n\r\nbody\r\n")) || d.Received.IsZero() {
		t.Errorf("claimed delivery lacks what rendering needs: %+v", d)
	}
}

// testDeliveredEarlier: one recipient accepted in the first attempt, the
// other refused for good in the second: the message was delivered, not
// bounced.
func testDeliveredEarlier(t *testing.T, s store.Store) {
	Accept(t, s, "m10", "body", "ok@corp.example", "later@corp.example")
	queue(t, s, "m10", "ok@corp.example", "later@corp.example")
	d := claimOne(t, s, "w")
	err := s.DeliveryRetry(ctx, d.ID, time.Now().Add(-time.Second), []string{"later@corp.example"},
		[]store.RcptResult{{Rcpt: "ok@corp.example", Code: 250}, {Rcpt: "later@corp.example", Code: 451}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	d = claimOne(t, s, "w")
	if err := s.DeliveryDone(ctx, d.ID, []store.RcptResult{{Rcpt: "later@corp.example", Code: 550, Perm: true}}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if m, _ := s.Get(ctx, "m10"); m.State != store.Delivered {
		t.Errorf("state %s, want delivered (a recipient got it in the first attempt)", m.State)
	}
}

func testAcceptDecided(t *testing.T, s store.Store) {
	body := "Subject: hello\r\n\r\nbody\r\n"
	m := &store.Message{ID: "ad1", Direction: "inbound", ClientIP: "192.0.2.1", HELO: "client.example",
		MailFrom: "a@sender.example", Rcpts: []string{"u@corp.example"}}
	until := time.Now().Add(time.Hour)
	d := store.Decided{State: store.Queued, MessageID: "<x@sender.example>", From: "A <a@sender.example>",
		Subject: "hello", Action: "tag", Reasons: []string{"first_contact"}, Score: 2.5,
		Decision: []byte(`{"action":"tag"}`), Prepend: []byte("X-Mailguard-Action: tag\r\n"),
		SubjectPrefix: "[EXTERNAL] ", StripAuthResults: true,
		Files:      []store.FileRef{{SHA256: strings.Repeat("ab", 32), Path: "1", Name: "a.zip", Type: "zip", Size: 10}},
		Deliveries: []store.Delivery{{Route: "inbound", MailFrom: "a@sender.example", Rcpts: []string{"u@corp.example"}}},
		LeaseOwner: "n1", LeaseUntil: until}
	if err := s.AcceptDecided(ctx, m, []byte(body), d); err != nil {
		t.Fatal(err)
	}
	if d.Deliveries[0].ID == 0 {
		t.Error("AcceptDecided did not write the delivery ID back")
	}
	got, err := s.Get(ctx, "ad1")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != store.Queued || got.Action != "tag" || got.Subject != "hello" || got.From != d.From ||
		got.MessageID != d.MessageID || got.Score != 2.5 || got.Size != int64(len(body)) ||
		!cmp.Equal(got.Reasons, d.Reasons) || string(got.Prepend) != string(d.Prepend) || len(got.Files) != 1 ||
		got.Files[0].Name != "a.zip" || !bytes.Equal(got.Decision, d.Decision) {
		t.Errorf("after AcceptDecided: %+v", got)
	}
	if b := readAll(t, s, "ad1"); b != body {
		t.Errorf("bytes = %q, want %q", b, body)
	}
	if ds, _ := s.Claim(ctx, "w2", time.Minute, 10); len(ds) != 0 {
		t.Errorf("a delivery leased at decision was claimed by another node: %+v", ds)
	}
	if n, err := s.ReleaseLeases(ctx, "n1"); err != nil || n != 1 {
		t.Fatalf("ReleaseLeases = %d, %v", n, err)
	}
	dl := claimOne(t, s, "w2")
	if dl.MsgID != "ad1" || dl.SubjectPrefix != "[EXTERNAL] " || !dl.StripAuthResults || string(dl.Prepend) != string(d.Prepend) ||
		dl.Size != int64(len(body)) {
		t.Errorf("claimed %+v", dl)
	}
	if err := s.DeliveryDone(ctx, dl.ID, []store.RcptResult{{Rcpt: "u@corp.example", Code: 250}}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(ctx, "ad1"); got.State != store.Delivered {
		t.Errorf("state after delivery = %s", got.State)
	}

	// Held, larger than any inline or single-chunk size, no deliveries.
	big := strings.Repeat("0123456789abcdef", 300<<10/16)
	held := &store.Message{ID: "ad2", MailFrom: "a@sender.example", Rcpts: []string{"u@corp.example"}}
	if err := s.AcceptDecided(ctx, held, []byte(big), store.Decided{State: store.Held, Action: "hold", HoldUntil: until}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(ctx, "ad2"); got == nil || got.State != store.Held || got.HoldUntil.Unix() != until.Unix() {
		t.Errorf("held: %+v", got)
	}
	if b := readAll(t, s, "ad2"); b != big {
		t.Errorf("held bytes differ (%d, want %d)", len(b), len(big))
	}
	if ids, _ := s.InState(ctx, store.Held); !cmp.Equal(ids, []string{"ad2"}) {
		t.Errorf("held = %v", ids)
	}

	// The same ID twice fails and leaves the first as it was.
	if err := s.AcceptDecided(ctx, &store.Message{ID: "ad2"}, []byte("other"), store.Decided{State: store.Rejected}); err == nil {
		t.Error("a second AcceptDecided with the same ID succeeded")
	}
	if got, _ := s.Get(ctx, "ad2"); got.State != store.Held || readAll(t, s, "ad2") != big {
		t.Errorf("the first message changed: %+v", got)
	}
	if err := s.AcceptDecided(ctx, &store.Message{ID: "../x"}, []byte("x"), store.Decided{State: store.Queued}); err == nil {
		t.Error("an invalid ID was accepted")
	}
}

func readAll(t *testing.T, s store.Store, id string) string {
	t.Helper()
	f, err := s.Open(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
