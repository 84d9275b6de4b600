package smtp

import (
	"fmt"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

func poolOutgoing(i int) Outgoing {
	return Outgoing{ID: fmt.Sprintf("m%d", i), MailFrom: "alice@sender.example", Rcpts: []string{"bob@corp.example"}}
}

func deliverOK(t *testing.T, r *Relay, i int) {
	t.Helper()
	for _, res := range deliver(t, r, poolOutgoing(i), testMessage(fmt.Sprint("pool ", i))) {
		if !res.Delivered() {
			t.Fatalf("delivery %d: %+v", i, res)
		}
	}
}

func idleCount(r *Relay) int {
	r.idle.mu.Lock()
	defer r.idle.mu.Unlock()
	return len(r.idle.conns)
}

func TestRelayReusesSession(t *testing.T) {
	ds := startDownstream(t, nil, nil)
	r := newTestRelay(t, ds.addr, RelayOptions{TLS: TLSOff})
	for i := range 3 {
		deliverOK(t, r, i)
	}
	if n := len(ds.helloNames()); n != 1 {
		t.Errorf("%d sessions for 3 deliveries, want 1 (reused)", n)
	}
	if n := len(ds.messages()); n != 3 {
		t.Errorf("downstream got %d messages, want 3", n)
	}
}

func TestRelayReuseOff(t *testing.T) {
	ds := startDownstream(t, nil, nil)
	r := newTestRelay(t, ds.addr, RelayOptions{TLS: TLSOff, IdleConns: -1})
	deliverOK(t, r, 0)
	deliverOK(t, r, 1)
	if n := len(ds.helloNames()); n != 2 {
		t.Errorf("%d sessions, want 2 (no reuse)", n)
	}
	if n := idleCount(r); n != 0 {
		t.Errorf("%d sessions kept with IdleConns -1", n)
	}
}

// A relay that closes a kept session (its idle timeout is shorter than
// ours) costs nothing: the next delivery notices and connects again.
func TestRelaySessionClosedByRelay(t *testing.T) {
	ds := startDownstream(t, nil, func(s *gosmtp.Server) { s.ReadTimeout = 150 * time.Millisecond })
	r := newTestRelay(t, ds.addr, RelayOptions{TLS: TLSOff, IdleTimeout: time.Minute})
	deliverOK(t, r, 0)
	time.Sleep(500 * time.Millisecond)
	deliverOK(t, r, 1)
	if n := len(ds.helloNames()); n != 2 {
		t.Errorf("%d sessions, want 2", n)
	}
}

func TestRelayIdleTimeout(t *testing.T) {
	ds := startDownstream(t, nil, nil)
	r := newTestRelay(t, ds.addr, RelayOptions{TLS: TLSOff, IdleTimeout: 100 * time.Millisecond})
	deliverOK(t, r, 0)
	if n := idleCount(r); n != 1 {
		t.Fatalf("%d sessions kept after a delivery, want 1", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for idleCount(r) != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := idleCount(r); n != 0 {
		t.Fatalf("%d sessions still kept after the idle timeout", n)
	}
	deliverOK(t, r, 1)
	if n := len(ds.helloNames()); n != 2 {
		t.Errorf("%d sessions, want 2", n)
	}
}

// After a 421 the relay is closing the session: it is not kept.
func TestRelayNoReuseAfter421(t *testing.T) {
	ds := startDownstream(t, nil, nil)
	ds.rcptErr = func(string) error {
		return &gosmtp.SMTPError{Code: 421, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0}, Message: "shutting down"}
	}
	r := newTestRelay(t, ds.addr, RelayOptions{TLS: TLSOff})
	res := deliver(t, r, poolOutgoing(0), testMessage("421"))
	if res[0].Delivered() || res[0].Perm {
		t.Fatalf("result after 421: %+v", res[0])
	}
	if n := idleCount(r); n != 0 {
		t.Errorf("a session that got 421 was kept (%d)", n)
	}
}

func TestRelayPoolConcurrent(t *testing.T) {
	ds := startDownstream(t, nil, nil)
	r := newTestRelay(t, ds.addr, RelayOptions{TLS: TLSOff, IdleConns: 4})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 5 {
				deliverOK(t, r, g*10+i)
			}
		})
	}
	wg.Wait()
	if n := len(ds.messages()); n != 40 {
		t.Errorf("downstream got %d messages, want 40", n)
	}
	if n := idleCount(r); n > 4 {
		t.Errorf("%d sessions kept, more than IdleConns 4", n)
	}
	if n := len(ds.helloNames()); n >= 40 {
		t.Errorf("%d sessions for 40 deliveries: none reused", n)
	}
}
