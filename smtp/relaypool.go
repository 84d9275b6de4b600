package smtp

import (
	"sync"
	"time"
)

// idlePool keeps sessions with one relay open between deliveries (a
// connection cache, as Postfix's smtp client has): a delivery takes the
// most recently used one and skips the connect, the greeting, EHLO,
// STARTTLS and QUIT. A kept session is closed with a QUIT when it stays
// unused for the idle timeout, and checked before reuse: a relay that
// closed it meanwhile is noticed without a round trip.
type idlePool struct {
	mu    sync.Mutex
	conns []*idleConn // most recent last
}

type idleConn struct {
	rc    *relayConn
	timer *time.Timer
}

// take returns a live kept session, or nil.
func (p *idlePool) take() *relayConn {
	for {
		p.mu.Lock()
		n := len(p.conns)
		if n == 0 {
			p.mu.Unlock()
			return nil
		}
		ic := p.conns[n-1]
		p.conns[n-1] = nil
		p.conns = p.conns[:n-1]
		p.mu.Unlock()
		if !ic.timer.Stop() {
			continue // its idle timer fired: the timer closes it
		}
		if connAlive(ic.rc.raw) {
			return ic.rc
		}
		_ = ic.rc.raw.Close()
	}
}

// put keeps rc for reuse, closing the oldest kept session beyond max.
func (p *idlePool) put(rc *relayConn, max int, timeout time.Duration) {
	ic := &idleConn{rc: rc}
	ic.timer = time.AfterFunc(timeout, func() {
		if p.remove(ic) {
			rc.quit()
		}
	})
	p.mu.Lock()
	p.conns = append(p.conns, ic)
	var evict *idleConn
	if len(p.conns) > max {
		evict = p.conns[0]
		p.conns = append(p.conns[:0], p.conns[1:]...)
	}
	p.mu.Unlock()
	if evict != nil && evict.timer.Stop() {
		go evict.rc.quit()
	}
}

// remove takes ic out of the pool; false if a delivery took it first.
func (p *idlePool) remove(ic *idleConn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, c := range p.conns {
		if c == ic {
			p.conns = append(p.conns[:i], p.conns[i+1:]...)
			return true
		}
	}
	return false
}
