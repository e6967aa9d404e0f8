package tokens

import (
	"sync"
	"time"
)

// verifyCacheSize bounds the verified-token cache (about 1 KiB an entry).
const verifyCacheSize = 16384

// verifyCache remembers access tokens whose signature and claims were
// verified, keyed by the exact token string, so the hot path (/me,
// /introspect, every authenticated call) skips the signature check for a
// token it has seen. Only tokens that passed full verification are stored;
// any other string, even one differing by a byte, misses and is verified in
// full. Expiry is still checked on every hit, and the denylist is consulted
// by the caller as always.
type verifyCache struct {
	mu sync.RWMutex
	m  map[string]Principal
}

func newVerifyCache() *verifyCache { return &verifyCache{m: make(map[string]Principal)} }

func (c *verifyCache) get(token string, now time.Time) (Principal, bool) {
	c.mu.RLock()
	p, ok := c.m[token]
	c.mu.RUnlock()
	if !ok {
		return Principal{}, false
	}
	if !now.Before(p.ExpiresAt.Add(Leeway)) {
		c.mu.Lock()
		delete(c.m, token)
		c.mu.Unlock()
		return Principal{}, false
	}
	return p, true
}

func (c *verifyCache) put(token string, p Principal) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= verifyCacheSize {
		// Drop an arbitrary eighth (map order is random): cheap, and the
		// cache only ever saves work, never decides validity.
		n := verifyCacheSize / 8
		for k := range c.m {
			delete(c.m, k)
			if n--; n == 0 {
				break
			}
		}
	}
	c.m[token] = p
}
