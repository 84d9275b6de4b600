package sandbox

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestBackoffSchedules(t *testing.T) {
	s, err := New(Config{Client: nopClient{}, Store: nopStore{}, Backoff: Backoff{Jitter: -1}})
	if err != nil {
		t.Fatal(err)
	}
	var polls []time.Duration
	for n := 1; n <= 7; n++ {
		polls = append(polls, s.pollDelay(n))
	}
	want := []time.Duration{15 * time.Second, 22500 * time.Millisecond, 33750 * time.Millisecond,
		50625 * time.Millisecond, 75937500 * time.Microsecond, 113906250 * time.Microsecond, 2 * time.Minute}
	if fmt.Sprint(polls) != fmt.Sprint(want) {
		t.Errorf("poll delays %v, want %v", polls, want)
	}
	for n, want := range map[int]time.Duration{1: 10 * time.Second, 2: 20 * time.Second, 4: 80 * time.Second, 7: 10 * time.Minute, 60: 10 * time.Minute} {
		if got := s.retryDelay(n, 0); got != want {
			t.Errorf("retryDelay(%d) = %v, want %v", n, got, want)
		}
	}
	if got := s.retryDelay(1, 56*time.Second); got != 56*time.Second {
		t.Errorf("Retry-After not honoured: %v", got)
	}
	j, _ := New(Config{Client: nopClient{}, Store: nopStore{}})
	for range 200 {
		if d := j.pollDelay(1); d < 13500*time.Millisecond || d > 16500*time.Millisecond {
			t.Fatalf("jittered poll delay %v outside ±10%%", d)
		}
		if d := j.retryDelay(1, 30*time.Second); d < 30*time.Second || d > 33*time.Second {
			t.Fatalf("jittered retry %v shorter than Retry-After or too long", d)
		}
	}
}

func TestKey(t *testing.T) {
	h := strings.Repeat("a", 64)
	if Key(h, nil) != h || Key(h, map[string]string{"package": "zip", "password": ""}) != h {
		t.Error("options other than password/file changed the key")
	}
	k1 := Key(h, map[string]string{"password": "pw"})
	k2 := Key(h, map[string]string{"password": "pw2"})
	k3 := Key(h, map[string]string{"file": "pw"})
	if k1 == k2 || k1 == k3 || !strings.HasPrefix(k1, h+"+") || len(k1) != 81 || strings.Contains(k1, "pw") {
		t.Errorf("keys %q %q %q", k1, k2, k3)
	}
	for s, want := range map[string]bool{h: true, strings.ToUpper(h): false, h[:63]: false, h[:63] + "g": false} {
		if ValidSHA256(s) != want {
			t.Errorf("ValidSHA256(%q) = %v", s, !want)
		}
	}
}

func TestErrorClassification(t *testing.T) {
	e := &Error{Op: "status", Kind: KindRateLimited, Temporary: true, HTTPStatus: 429, RetryAfter: time.Minute, Msg: "slow down"}
	wrapped := fmt.Errorf("poll: %w", e)
	if KindOf(wrapped) != KindRateLimited || !IsTemporary(wrapped) || RetryAfter(wrapped) != time.Minute {
		t.Errorf("wrapped: %v %v %v", KindOf(wrapped), IsTemporary(wrapped), RetryAfter(wrapped))
	}
	if got := e.Error(); got != "sandbox: status: rate_limited (http 429): slow down" {
		t.Errorf("Error() = %q", got)
	}
	plain := errors.New("boom")
	if KindOf(plain) != KindInternal || !IsTemporary(plain) || RetryAfter(plain) != 0 {
		t.Error("an unclassified error must be internal and temporary")
	}
	if KindOf(context.DeadlineExceeded) != KindUnavailable {
		t.Error("deadline is not unavailable")
	}
}

type nopClient struct{}

func (nopClient) Submit(context.Context, File) (TaskID, error)    { return "", nil }
func (nopClient) Status(context.Context, TaskID) (Verdict, error) { return Verdict{}, ErrPending }

type nopStore struct{ Store }
