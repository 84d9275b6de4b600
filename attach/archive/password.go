package archive

import (
	"fmt"
	"time"
)

// keyring holds the candidate passwords of one archive: their order, the
// one that worked last (tried first next time), and the attempt budget.
type keyring struct {
	cands     []Password
	good      int // index of the candidate that worked last, -1 for none
	failed    int // wrong-password attempts so far
	spent     time.Duration
	maxFailed int
	maxTime   time.Duration
}

// order lists candidate indexes: the remembered one first, then the rest
// in the caller's order.
func (k *keyring) order() []int {
	idx := make([]int, 0, len(k.cands))
	if k.good >= 0 {
		idx = append(idx, k.good)
	}
	for i := range k.cands {
		if i != k.good {
			idx = append(idx, i)
		}
	}
	return idx
}

// exhausted reports whether the attempt or time budget is used up.
func (k *keyring) exhausted() bool {
	return (k.maxFailed >= 0 && k.failed >= k.maxFailed) || (k.maxTime >= 0 && k.spent >= k.maxTime)
}

// passwordTest tries one password on something locked. It reports ok when
// the password opens it, (false, nil) for a wrong password, and an error
// only when trying must stop (ctx, or a structure too broken to tell).
// remembered says the password already opened something in this archive,
// so a test may skip its slower confirmation.
type passwordTest func(pw string, remembered bool) (ok bool, err error)

// unlock tries the candidates on one locked thing and returns the index of
// the one that opened it, or -1. Each wrong attempt counts against
// MaxAttempts and the time spent against MaxPasswordTime.
func (w *walker) unlock(test passwordTest) (int, error) {
	k := &w.keys
	for _, i := range k.order() {
		if err := w.ctx.Err(); err != nil {
			return -1, err
		}
		if k.exhausted() {
			w.problemOnce(ProblemAttempts, fmt.Sprintf("password budget used up after %d wrong attempts in %v",
				k.failed, k.spent.Round(time.Millisecond)))
			return -1, nil
		}
		start := time.Now()
		ok, err := safeTest(test, k.cands[i].Value, i == k.good)
		k.spent += time.Since(start)
		if err != nil {
			return -1, err
		}
		if ok {
			k.good = i
			return i, nil
		}
		k.failed++
	}
	return -1, nil
}

// source returns the Source label of candidate i.
func (w *walker) source(i int) string {
	if i < 0 || i >= len(w.keys.cands) {
		return ""
	}
	return w.keys.cands[i].Source
}

// safeTest runs a password test; a decoder panic on what a wrong key
// produced counts as a wrong password, so the next candidate is still
// tried.
func safeTest(test passwordTest, pw string, remembered bool) (ok bool, err error) {
	defer func() {
		if v := recover(); v != nil {
			ok, err = false, nil
		}
	}()
	return test(pw, remembered)
}
