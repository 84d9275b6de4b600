package smtp

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

func newTestQueue(ob Outbox, clock *fakeClock, tr map[Route]Transport) *Queue {
	return &Queue{
		Outbox:       ob,
		Transports:   tr,
		Backoff:      Backoff{Initial: time.Minute, Max: time.Hour, Jitter: -1},
		MaxAge:       48 * time.Hour,
		PollInterval: 50 * time.Millisecond,
		Hostname:     "mx.test.example",
		Now:          clock.Now,
	}
}

func TestQueueDeliversToSmtpSink(t *testing.T) {
	dir := t.TempDir()
	addr := smtpSink(t, dir)
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	ob := newMemOutbox(clock.Now)
	ob.add(Outgoing{ID: "m1", Route: RouteInbound, MailFrom: "a@sender.example", Rcpts: []string{"b@corp.example"}, Received: clock.Now()}, testMessage("queued"))
	q := newTestQueue(ob, clock, map[Route]Transport{RouteInbound: newTestRelay(t, addr, RelayOptions{})})
	if n, err := q.RunOnce(context.Background()); n != 1 || err != nil {
		t.Fatalf("RunOnce = %d, %v", n, err)
	}
	done, failed, retries, queued := ob.snapshot()
	if len(done["m1"]) != 1 || !done["m1"][0].Delivered() || len(failed) != 0 || len(retries) != 0 || queued != 0 {
		t.Fatalf("done %+v failed %+v retries %+v queued %d", done, failed, retries, queued)
	}
	if d := sinkDumps(t, dir); len(d) != 1 || !strings.Contains(d[0], "Subject: queued") {
		t.Errorf("smtp-sink dumps: %q", d)
	}
}

func TestQueueRetryBackoffThenDSNOnExpiry(t *testing.T) {
	addr := smtpSink(t, t.TempDir(), "-r", "RCPT")
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	ob := newMemOutbox(clock.Now)
	received := clock.Now()
	ob.add(Outgoing{ID: "m1", Route: RouteInbound, MailFrom: "alice@sender.example", Rcpts: []string{"b@corp.example"}, Received: received}, testMessage("retry me"))
	q := newTestQueue(ob, clock, map[Route]Transport{RouteInbound: newTestRelay(t, addr, RelayOptions{})})
	q.MaxAge = 10 * time.Minute

	// 1m, 2m, 4m, then capped at the expiry time (received+10m).
	wantDelays := []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute}
	for i, want := range wantDelays {
		if n, _ := q.RunOnce(context.Background()); n != 1 {
			t.Fatalf("attempt %d: claimed %d", i+1, n)
		}
		_, _, retries, _ := ob.snapshot()
		r := retries[len(retries)-1]
		if got := r.at.Sub(clock.Now()); got != want {
			t.Errorf("attempt %d: retry in %v, want %v", i+1, got, want)
		}
		if r.results[0].Code != 450 || r.results[0].Perm || r.dsn != nil {
			t.Errorf("attempt %d: %+v", i+1, r.results[0])
		}
		// Not due yet: nothing is claimed.
		if n, _ := q.RunOnce(context.Background()); n != 0 {
			t.Fatalf("claimed before the retry time")
		}
		clock.Advance(want)
	}
	q.RunOnce(context.Background()) // at received+7m: next would be 8m later, capped at +10m
	_, _, retries, _ := ob.snapshot()
	if at := retries[len(retries)-1].at; !at.Equal(received.Add(10 * time.Minute)) {
		t.Errorf("last retry at %v, want the expiry time %v", at, received.Add(10*time.Minute))
	}
	clock.Advance(3 * time.Minute)
	q.RunOnce(context.Background())
	_, failed, _, queued := ob.snapshot()
	f, ok := failed["m1"]
	if !ok || queued != 0 {
		t.Fatalf("message not failed at expiry (queued %d)", queued)
	}
	if r := f.results[0]; !r.Perm || r.Enhanced != [3]int{4, 4, 7} || !strings.Contains(r.Text, "450") {
		t.Errorf("expired result %+v", r)
	}
	checkDSN(t, f.dsn, "alice@sender.example", map[string]string{"b@corp.example": "4.4.7"}, "Subject: retry me")
}

func TestQueuePermanentFailureDSN(t *testing.T) {
	addr := smtpSink(t, t.TempDir(), "-f", "RCPT")
	clock := &fakeClock{t: time.Now()}
	ob := newMemOutbox(clock.Now)
	ob.add(Outgoing{ID: "m1", Route: RouteInbound, MailFrom: "alice@sender.example", Rcpts: []string{"b@corp.example"}, Received: clock.Now()}, testMessage("bounce me"))
	ob.add(Outgoing{ID: "m2", Route: RouteInbound, MailFrom: "", Rcpts: []string{"b@corp.example"}, Received: clock.Now()}, testMessage("a bounce"))
	q := newTestQueue(ob, clock, map[Route]Transport{RouteInbound: newTestRelay(t, addr, RelayOptions{})})
	if n, _ := q.RunOnce(context.Background()); n != 2 {
		t.Fatalf("claimed %d", n)
	}
	_, failed, _, _ := ob.snapshot()
	if r := failed["m1"].results; len(r) != 1 || r[0].Code != 500 || !r[0].Perm {
		t.Errorf("m1 results %+v", r)
	}
	checkDSN(t, failed["m1"].dsn, "alice@sender.example", map[string]string{"b@corp.example": "5.3.0"}, "Subject: bounce me")
	if f, ok := failed["m2"]; !ok || f.dsn != nil {
		t.Errorf("null sender: failed=%v dsn=%q (must be nil)", ok, f.dsn)
	}
}

func TestQueuePartialSuccess(t *testing.T) {
	ds := startDownstream(t, nil, nil)
	ds.rcptErr = func(rcpt string) error {
		switch rcpt {
		case "gone@corp.example":
			return &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
		case "later@corp.example":
			return &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0}, Message: "try later"}
		}
		return nil
	}
	clock := &fakeClock{t: time.Now()}
	ob := newMemOutbox(clock.Now)
	ob.add(Outgoing{ID: "m1", Route: RouteOutbound, MailFrom: "alice@corp.example",
		Rcpts: []string{"ok@corp.example", "gone@corp.example", "later@corp.example"}, Received: clock.Now()}, testMessage("partial"))
	q := newTestQueue(ob, clock, map[Route]Transport{RouteOutbound: newTestRelay(t, ds.addr, RelayOptions{})})
	q.RunOnce(context.Background())
	_, _, retries, _ := ob.snapshot()
	if len(retries) != 1 {
		t.Fatalf("retries %+v", retries)
	}
	r := retries[0]
	if !r.results[0].Delivered() || !r.results[1].Perm || r.results[2].Final() {
		t.Errorf("results %+v", r.results)
	}
	// The permanent failure is reported now, not at the end.
	checkDSN(t, r.dsn, "alice@corp.example", map[string]string{"gone@corp.example": "5.1.1"}, "Subject: partial")
	// Next attempt: only the deferred recipient, and it succeeds.
	ds.mu.Lock()
	ds.rcptErr = nil
	ds.mu.Unlock()
	clock.Advance(time.Minute)
	q.RunOnce(context.Background())
	done, _, _, _ := ob.snapshot()
	if d := done["m1"]; len(d) != 1 || d[0].Rcpt != "later@corp.example" || !d[0].Delivered() {
		t.Errorf("second attempt %+v", d)
	}
	var got []string
	for _, m := range ds.messages() {
		got = append(got, m.rcpts...)
	}
	if strings.Join(got, ",") != "ok@corp.example,later@corp.example" {
		t.Errorf("downstream deliveries %v (each recipient exactly once)", got)
	}
}

func TestQueueDownstreamDownRetries(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	ob := newMemOutbox(clock.Now)
	ob.add(Outgoing{ID: "m1", Route: RouteInbound, MailFrom: "a@sender.example", Rcpts: []string{"b@corp.example"}, Received: clock.Now()}, testMessage("x"))
	q := newTestQueue(ob, clock, map[Route]Transport{RouteInbound: newTestRelay(t, "127.0.0.1:"+itoa(freePort(t)), RelayOptions{})})
	q.RunOnce(context.Background())
	_, _, retries, queued := ob.snapshot()
	if len(retries) != 1 || queued != 1 || retries[0].results[0].Enhanced != [3]int{4, 4, 1} {
		t.Errorf("retries %+v queued %d", retries, queued)
	}
}

func TestQueueNoTransportIsTemporary(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	ob := newMemOutbox(clock.Now)
	ob.add(Outgoing{ID: "m1", Route: "mystery", MailFrom: "a@sender.example", Rcpts: []string{"b@corp.example"}, Received: clock.Now()}, testMessage("x"))
	q := newTestQueue(ob, clock, map[Route]Transport{})
	q.RunOnce(context.Background())
	_, _, retries, _ := ob.snapshot()
	if len(retries) != 1 || retries[0].results[0].Enhanced != [3]int{4, 3, 5} {
		t.Errorf("retries %+v", retries)
	}
}

// funcTransport is a Transport from a function (a pointer, so comparable).
type funcTransport struct {
	f func(ctx context.Context, m Outgoing, r io.Reader) []RcptResult
}

func (f *funcTransport) Deliver(ctx context.Context, m Outgoing, r io.Reader) []RcptResult {
	return f.f(ctx, m, r)
}

func okResults(m Outgoing) []RcptResult {
	return allResults(m.Rcpts, RcptResult{Code: 250, Enhanced: [3]int{2, 0, 0}, Text: "ok"})
}

func TestQueueRunConcurrencyLimits(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	ob := newMemOutbox(clock.Now)
	var cur, peak, curB, peakB atomic.Int32
	track := func(c, p *atomic.Int32) func(context.Context, Outgoing, io.Reader) []RcptResult {
		return func(ctx context.Context, m Outgoing, r io.Reader) []RcptResult {
			n := c.Add(1)
			for {
				old := p.Load()
				if n <= old || p.CompareAndSwap(old, n) {
					break
				}
			}
			_, _ = io.Copy(io.Discard, r)
			time.Sleep(30 * time.Millisecond)
			c.Add(-1)
			return okResults(m)
		}
	}
	shared := &funcTransport{f: track(&cur, &peak)}
	other := &funcTransport{f: track(&curB, &peakB)}
	for i := 0; i < 20; i++ {
		route := RouteInbound
		if i%2 == 1 {
			route = RouteOutbound
		}
		ob.add(Outgoing{ID: "m" + itoa(i), Route: route, MailFrom: "a@x.example", Rcpts: []string{"b@corp.example"}, Received: clock.Now()}, []byte("x\r\n"))
	}
	for i := 0; i < 6; i++ {
		ob.add(Outgoing{ID: "o" + itoa(i), Route: "other", MailFrom: "a@x.example", Rcpts: []string{"b@corp.example"}, Received: clock.Now()}, []byte("x\r\n"))
	}
	q := newTestQueue(ob, clock, map[Route]Transport{RouteInbound: shared, RouteOutbound: shared, "other": other})
	q.Concurrency, q.PerTransport = 6, 2
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- q.Run(ctx) }()
	waitFor(t, "all delivered", func() bool { d, _, _, _ := ob.snapshot(); return len(d) == 26 })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	// Inbound and outbound share one relay: together at most 2.
	if peak.Load() > 2 || peakB.Load() > 2 || peak.Load() < 2 {
		t.Errorf("peak concurrency shared=%d other=%d, want 2 each", peak.Load(), peakB.Load())
	}
}

func TestQueueWakeAndCleanStop(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	ob := newMemOutbox(clock.Now)
	started := make(chan struct{}, 1)
	var sawCancel atomic.Bool
	slow := &funcTransport{f: func(ctx context.Context, m Outgoing, r io.Reader) []RcptResult {
		if m.ID == "slow" {
			started <- struct{}{}
			<-ctx.Done()
			sawCancel.Store(true)
			return allResults(m.Rcpts, tempResult("", 451, [3]int{4, 4, 2}, "interrupted", ""))
		}
		return okResults(m)
	}}
	q := newTestQueue(ob, clock, map[Route]Transport{RouteInbound: slow})
	q.PollInterval = time.Hour // only Wake can make it claim
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- q.Run(ctx) }()
	time.Sleep(50 * time.Millisecond)
	ob.add(Outgoing{ID: "fast", Route: RouteInbound, MailFrom: "a@x.example", Rcpts: []string{"b@corp.example"}, Received: clock.Now()}, []byte("x\r\n"))
	q.Wake()
	waitFor(t, "woken delivery", func() bool { d, _, _, _ := ob.snapshot(); return len(d) == 1 })
	ob.add(Outgoing{ID: "slow", Route: RouteInbound, MailFrom: "a@x.example", Rcpts: []string{"b@corp.example"}, Received: clock.Now()}, []byte("x\r\n"))
	q.Wake()
	<-started
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop")
	}
	_, _, retries, _ := ob.snapshot()
	if !sawCancel.Load() || len(retries) != 1 || !retries[0].at.Equal(clock.Now()) {
		t.Errorf("interrupted attempt: cancel seen %v, retries %+v (want one, due now)", sawCancel.Load(), retries)
	}
}

func TestQueueWorkerPanicRecovered(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	ob := newMemOutbox(clock.Now)
	ob.add(Outgoing{ID: "boom", Route: RouteInbound, MailFrom: "a@x.example", Rcpts: []string{"b@corp.example"}, Received: clock.Now()}, []byte("x\r\n"))
	ob.add(Outgoing{ID: "fine", Route: RouteInbound, MailFrom: "a@x.example", Rcpts: []string{"b@corp.example"}, Received: clock.Now()}, []byte("x\r\n"))
	tr := &funcTransport{f: func(ctx context.Context, m Outgoing, r io.Reader) []RcptResult {
		if m.ID == "boom" {
			panic("transport bug")
		}
		return okResults(m)
	}}
	var logs bytes.Buffer
	q := newTestQueue(ob, clock, map[Route]Transport{RouteInbound: tr})
	q.Log = newBufferLogger(&logs)
	if n, _ := q.RunOnce(context.Background()); n != 2 {
		t.Fatalf("claimed %d", n)
	}
	done, _, retries, _ := ob.snapshot()
	if len(done) != 1 || len(retries) != 1 || retries[0].id != "boom" || retries[0].at.Sub(clock.Now()) != time.Minute {
		t.Errorf("done %v retries %+v", done, retries)
	}
	if !strings.Contains(logs.String(), "transport bug") || !strings.Contains(logs.String(), "delivery worker panic") {
		t.Errorf("panic not logged: %s", logs.String())
	}
}

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Initial: time.Minute, Max: 30 * time.Minute, Factor: 2, Jitter: -1}
	for attempt, want := range map[int]time.Duration{1: time.Minute, 2: 2 * time.Minute, 5: 16 * time.Minute, 6: 30 * time.Minute, 1000: 30 * time.Minute} {
		if got := b.Delay(attempt, 0.5); got != want {
			t.Errorf("Delay(%d) = %v, want %v", attempt, got, want)
		}
	}
	j := Backoff{Initial: time.Minute, Jitter: 0.2}
	if lo, hi := j.Delay(1, 0), j.Delay(1, 0.999999); lo != 48*time.Second || hi < 71*time.Second || hi > 72*time.Second {
		t.Errorf("jitter range %v..%v, want 48s..72s", lo, hi)
	}
	var zero Backoff
	if got := zero.Delay(1, 0.5); got != time.Minute {
		t.Errorf("default first delay %v", got)
	}
}

// checkDSN parses a DSN and checks its structure and per-recipient status.
func checkDSN(t *testing.T, dsn []byte, sender string, statuses map[string]string, headerLine string) {
	t.Helper()
	if dsn == nil {
		t.Fatal("no DSN")
	}
	msg, err := mail.ReadMessage(bytes.NewReader(dsn))
	if err != nil {
		t.Fatalf("DSN does not parse: %v\n%s", err, dsn)
	}
	if to := msg.Header.Get("To"); to != "<"+sender+">" {
		t.Errorf("DSN To %q, want <%s>", to, sender)
	}
	if msg.Header.Get("Auto-Submitted") != "auto-replied" {
		t.Error("DSN lacks Auto-Submitted")
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("DSN type %q %v (%v)", mt, params, err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	var types []string
	var status, headers string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("DSN part: %v", err)
		}
		b, _ := io.ReadAll(p)
		ct := p.Header.Get("Content-Type")
		types = append(types, strings.Split(ct, ";")[0])
		switch {
		case strings.Contains(ct, "delivery-status"):
			status = string(b)
		case strings.Contains(ct, "headers"):
			headers = string(b)
		}
	}
	if strings.Join(types, ",") != "text/plain,message/delivery-status,text/rfc822-headers" &&
		strings.Join(types, ",") != "text/plain,message/global-delivery-status,message/global-headers" {
		t.Errorf("DSN parts %v", types)
	}
	if !strings.Contains(status, "Reporting-MTA: dns; mx.test.example\r\n") {
		t.Errorf("no Reporting-MTA:\n%s", status)
	}
	for rcpt, st := range statuses {
		block := "Final-Recipient: rfc822; " + rcpt + "\r\nAction: failed\r\nStatus: " + st + "\r\n"
		if !strings.Contains(status, block) {
			t.Errorf("DSN status lacks %q:\n%s", block, status)
		}
	}
	if n := strings.Count(status, "Final-Recipient:"); n != len(statuses) {
		t.Errorf("DSN reports %d recipients, want %d", n, len(statuses))
	}
	if !strings.Contains(headers, headerLine) || strings.Contains(headers, "Hello Bob") {
		t.Errorf("DSN headers part %q (want the headers only)", headers)
	}
}

func TestBuildDSN(t *testing.T) {
	d := DSN{ReportingMTA: "mx.test.example", Sender: "alice@sender.example", ID: "0123456789abcdefghjk",
		Arrival: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Date: time.Date(2026, 1, 3, 3, 4, 5, 0, time.UTC),
		Results: []RcptResult{
			{Rcpt: "bob@corp.example", Code: 550, Enhanced: [3]int{5, 1, 1}, Text: "no such user\r\nInjected: header", Perm: true, Remote: "exchange.corp.example"},
			{Rcpt: "carol@corp.example", Code: 451, Enhanced: [3]int{4, 4, 7}, Text: "delivery time expired", Perm: true},
		},
		Headers: []byte("Subject: hi\nFrom: alice@sender.example\n"),
	}
	dsn := BuildDSN(d)
	checkDSN(t, dsn, "alice@sender.example", map[string]string{"bob@corp.example": "5.1.1", "carol@corp.example": "4.4.7"}, "Subject: hi\r\n")
	s := string(dsn)
	for _, want := range []string{
		"Diagnostic-Code: smtp; 550 5.1.1 no such user  Injected: header\r\n",
		"Remote-MTA: dns; exchange.corp.example\r\n",
		"Diagnostic-Code: X-mailguard; delivery time expired\r\n",
		"Arrival-Date: Fri, 02 Jan 2026 03:04:05 +0000\r\n",
		"X-Mailguard-Id: 0123456789abcdefghjk\r\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("DSN lacks %q", want)
		}
	}
	if strings.Contains(s, "\r\nInjected: header") {
		t.Error("reply text injected a header line")
	}
	for _, line := range strings.Split(s, "\r\n") {
		if len(line) > 998 {
			t.Errorf("line of %d octets", len(line))
		}
	}
	if BuildDSN(DSN{ReportingMTA: "x", Sender: "", Results: d.Results}) != nil {
		t.Error("DSN built for the null sender")
	}
	// UTF-8 addresses use the RFC 6533 types.
	u := d
	u.Sender = "ålice@sender.example"
	u.Results = []RcptResult{{Rcpt: "böb@corp.example", Code: 550, Enhanced: [3]int{5, 1, 1}, Perm: true}}
	us := string(BuildDSN(u))
	if !strings.Contains(us, "Content-Type: message/global-delivery-status") || !strings.Contains(us, "Final-Recipient: utf-8; böb@corp.example") {
		t.Errorf("UTF-8 DSN:\n%s", us)
	}
}

func TestReadHeaders(t *testing.T) {
	for in, want := range map[string]string{
		"A: 1\r\nB: 2\r\n\r\nbody\r\n":    "A: 1\r\nB: 2\r\n",
		"A: 1\nB: 2\n\nbody":              "A: 1\nB: 2\n",
		"A: 1\r\n":                        "A: 1\r\n",
		"":                                "",
		"A: 1\r\n folded\r\n\r\nbody":     "A: 1\r\n folded\r\n",
		strings.Repeat("X: y\r\n", 20000): strings.Repeat("X: y\r\n", (64<<10)/6),
	} {
		got, err := ReadHeaders(strings.NewReader(in))
		if err != nil || string(got) != want {
			t.Errorf("ReadHeaders(%.30q...) = %d bytes, %v; want %d bytes", in, len(got), err, len(want))
		}
	}
}

func newBufferLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
