package capetest

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// userSet holds the configured API keys (cape-api.md §2).
type userSet struct {
	enabled   bool
	keys      map[string]bool
	staff     map[string]bool
	revoked   map[string]bool
	forbidden map[string]bool
}

func newUserSet(cfg Config) userSet {
	set := func(xs []string) map[string]bool {
		m := map[string]bool{}
		for _, x := range xs {
			m[x] = true
		}
		return m
	}
	u := userSet{
		keys: set(cfg.Tokens), staff: set(cfg.StaffTokens),
		revoked: set(cfg.RevokedTokens), forbidden: set(cfg.ForbiddenTokens),
	}
	for k := range u.staff {
		u.keys[k] = true
	}
	for k := range u.forbidden {
		u.keys[k] = true
	}
	u.enabled = len(u.keys)+len(u.revoked) > 0
	return u
}

// authenticate runs DRF's authentication, permission and throttle checks in
// that order, writing the DRF error answer and returning false on failure.
func (e *emulator) authenticate(w http.ResponseWriter, r *http.Request, k knobs) bool {
	user := ""
	if e.users.enabled {
		key, msg := tokenFromHeader(r.Header.Get("Authorization"))
		switch {
		case msg != "":
		case key == "":
			msg = "Authentication credentials were not provided."
		case e.users.revoked[key]:
			msg = "API key has been revoked."
		case !e.users.keys[key]:
			msg = "Invalid token."
		}
		if msg != "" {
			w.Header().Set("WWW-Authenticate", "Token")
			e.writeJSON(w, http.StatusUnauthorized, map[string]any{"detail": msg})
			return false
		}
		if e.users.forbidden[key] {
			e.writeJSON(w, http.StatusForbidden, map[string]any{"detail": "You do not have permission to perform this action."})
			return false
		}
		if e.users.staff[key] {
			return true
		}
		user = "token:" + key
	} else {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		user = "ip:" + host
	}
	if k.throttle.num == 0 {
		return true
	}
	wait, ok := e.throttle(user, k.throttle)
	if ok {
		return true
	}
	// DRF Throttled: wait is rounded up, both in the header and the detail.
	secs := int(math.Ceil(wait.Seconds()))
	unit := "seconds"
	if secs == 1 {
		unit = "second"
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	e.writeJSON(w, http.StatusTooManyRequests, map[string]any{
		"detail": fmt.Sprintf("Request was throttled. Expected available in %d %s.", secs, unit)})
	return false
}

// tokenFromHeader parses "Authorization: Token <key>" as
// apikey.authentication.ApiKeyAuthentication does. A header for another
// scheme yields no key and no message (DRF then says no credentials).
func tokenFromHeader(h string) (key, msg string) {
	parts := strings.Fields(h)
	if len(parts) == 0 || !strings.EqualFold(parts[0], "token") {
		return "", ""
	}
	switch {
	case len(parts) == 1:
		return "", "Invalid token header. No credentials provided."
	case len(parts) > 2:
		return "", "Invalid token header. Token string should not contain spaces."
	}
	for _, c := range parts[1] {
		if c < 0x21 || c > 0x7e {
			return "", "Invalid token header. Token string contains invalid characters."
		}
	}
	return parts[1], ""
}

// rateSpec is a DRF rate: num requests per period.
type rateSpec struct {
	num    int
	period time.Duration
}

// parseRate parses a DRF rate such as "5/m" or "600/min" ("" is no limit).
func parseRate(s string) (rateSpec, error) {
	if s == "" {
		return rateSpec{}, nil
	}
	n, p, ok := strings.Cut(s, "/")
	num, err := strconv.Atoi(n)
	if !ok || err != nil || num <= 0 || p == "" {
		return rateSpec{}, fmt.Errorf("capetest: bad rate %q, want like 5/m", s)
	}
	// DRF looks at the first letter of the period only.
	period := map[byte]time.Duration{'s': time.Second, 'm': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour}[p[0]]
	if period == 0 {
		return rateSpec{}, fmt.Errorf("capetest: bad rate period %q", p)
	}
	return rateSpec{num: num, period: period}, nil
}

// throttle is DRF's SimpleRateThrottle: a sliding window of request times
// per user, shared by every endpoint. It returns false and the wait when the
// request is refused.
func (e *emulator) throttle(user string, rs rateSpec) (time.Duration, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	h := e.history[user]
	for len(h) > 0 && !h[len(h)-1].After(now.Add(-rs.period)) {
		h = h[:len(h)-1]
	}
	if len(h) >= rs.num {
		e.history[user] = h
		e.throttled++
		remaining := rs.period - now.Sub(h[len(h)-1])
		available := rs.num - len(h) + 1
		if available <= 0 {
			return remaining, false
		}
		return remaining / time.Duration(available), false
	}
	e.history[user] = append([]time.Time{now}, h...)
	return 0, true
}
