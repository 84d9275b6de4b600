package resolver

import (
	"container/list"
	"sync"
	"time"
)

// cache is an LRU of answers with expiry times, bounded by entry count and
// by the estimated bytes held.
type cache struct {
	maxEntries, maxBytes int
	maxTTL, maxNegTTL    time.Duration

	mu    sync.Mutex
	ll    *list.List // front: most recently used
	items map[string]*list.Element
	bytes int
}

type cacheEntry struct {
	key     string
	a       *answer
	expires time.Time
	size    int
}

func newCache(maxEntries, maxBytes int, maxTTL, maxNegTTL time.Duration) *cache {
	return &cache{maxEntries: maxEntries, maxBytes: maxBytes, maxTTL: maxTTL, maxNegTTL: maxNegTTL,
		ll: list.New(), items: map[string]*list.Element{}}
}

// get returns the unexpired answer for key.
func (c *cache) get(key string, now time.Time) (*answer, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return nil, false
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.expires) {
		c.remove(el)
		return nil, false
	}
	c.ll.MoveToFront(el)
	return e.a, true
}

// put stores a for its TTL, capped by maxTTL or maxNegTTL; a zero TTL is
// not stored. It evicts the least recently used entries to stay in bounds.
func (c *cache) put(key string, a *answer, now time.Time) {
	ttl := min(a.ttl, c.maxTTL)
	if a.notFound {
		ttl = min(a.ttl, c.maxNegTTL)
	}
	size := a.size() + len(key)
	if ttl <= 0 || size > c.maxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.remove(el)
	}
	e := &cacheEntry{key: key, a: a, expires: now.Add(ttl), size: size}
	c.items[key] = c.ll.PushFront(e)
	c.bytes += size
	for c.ll.Len() > c.maxEntries || c.bytes > c.maxBytes {
		c.remove(c.ll.Back())
	}
}

func (c *cache) remove(el *list.Element) {
	e := el.Value.(*cacheEntry)
	c.ll.Remove(el)
	delete(c.items, e.key)
	c.bytes -= e.size
}

// len returns the number of entries, expired ones included.
func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}
