package smtp

import (
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/pires/go-proxyproto"
)

// listener wraps a net.Listener so that every connection goes through the
// front end. Accept does no I/O: the PROXY header, the limits and the
// Connect call happen in the connection's own goroutine.
type listener struct {
	net.Listener
	srv  *Server
	conf Listener
}

// Accept returns the next connection, wrapped.
func (l *listener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	c := newConn(l.srv, l.conf, nc)
	l.srv.track(c)
	return c, nil
}

// proxyPolicy is the go-proxyproto ConnPolicy of a PROXY listener: trusted
// peers must send a header (REQUIRE), everyone else is served directly
// (SKIP; the front end drops them if they send a header anyway), or dropped
// at accept when the listener requires PROXY.
//
// USE or REJECT for untrusted peers would be wrong for SMTP: go-proxyproto
// then reads before the first write, and since the server speaks first,
// every direct client would wait ReadHeaderTimeout for its greeting.
func (s *Server) proxyPolicy(conf Listener) proxyproto.ConnPolicyFunc {
	return func(o proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) {
		ap, ok := addrPort(o.Upstream)
		if ok && inPrefixes(ap.Addr(), s.trusted) {
			return proxyproto.REQUIRE, nil
		}
		if conf.ProxyRequired {
			metricConnections.WithLabelValues("proxy_untrusted").Inc()
			return proxyproto.REJECT, fmt.Errorf("%w: %s is not a trusted proxy", proxyproto.ErrInvalidUpstream, o.Upstream)
		}
		return proxyproto.SKIP, nil
	}
}

// limiter enforces MaxConns and MaxConnsPerIP. A connection is charged to
// its real client IP (an IPv6 client to its /64) once that is known (after
// PROXY, again after XCLIENT).
type limiter struct {
	mu      sync.Mutex
	maxAll  int
	maxIP   int
	total   int
	perIP   map[netip.Addr]int
	charged map[*conn]netip.Addr
}

func newLimiter(maxAll, maxIP int) *limiter {
	return &limiter{maxAll: maxAll, maxIP: maxIP, perIP: map[netip.Addr]int{}, charged: map[*conn]netip.Addr{}}
}

// limitKey is what MaxConnsPerIP counts: the IPv4 address, or the /64 of
// an IPv6 address (one client usually holds a whole /64).
func limitKey(ip netip.Addr) netip.Addr {
	if ip.Is6() && !ip.Is4In6() {
		if p, err := ip.Prefix(64); err == nil {
			return p.Addr()
		}
	}
	return ip
}

// admit charges c to ip; it returns the metric reason when a limit is hit.
func (l *limiter) admit(c *conn, ip netip.Addr) (string, bool) {
	ip = limitKey(ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= l.maxAll {
		return "limit_total", false
	}
	if l.perIP[ip] >= l.maxIP {
		return "limit_ip", false
	}
	l.total++
	l.perIP[ip]++
	l.charged[c] = ip
	return "", true
}

// move re-charges c to a new IP (XCLIENT); false when that IP is full.
func (l *limiter) move(c *conn, ip netip.Addr) bool {
	ip = limitKey(ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	old, ok := l.charged[c]
	if !ok || old == ip {
		return ok
	}
	if l.perIP[ip] >= l.maxIP {
		return false
	}
	l.dec(old)
	l.perIP[ip]++
	l.charged[c] = ip
	return true
}

func (l *limiter) release(c *conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ip, ok := l.charged[c]
	if !ok {
		return
	}
	delete(l.charged, c)
	l.total--
	l.dec(ip)
}

func (l *limiter) dec(ip netip.Addr) {
	if l.perIP[ip] <= 1 {
		delete(l.perIP, ip)
		return
	}
	l.perIP[ip]--
}

func (l *limiter) counts() (total int, perIP map[netip.Addr]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := make(map[netip.Addr]int, len(l.perIP))
	for k, v := range l.perIP {
		m[k] = v
	}
	return l.total, m
}
