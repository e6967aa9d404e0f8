package verify

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"slices"
	"sync"
)

// maxVerified bounds the verified-token cache; when full it is emptied.
const maxVerified = 4096

// verifiedCache remembers tokens whose signature and claims checked out,
// by their exact string, so a token presented again costs a map lookup
// instead of a signature check. A hit still needs the token unexpired (with
// the leeway) and its key still in the current set; the denylist and the
// staleness are checked after it on every call, as for a miss.
type verifiedCache struct {
	mu      sync.RWMutex
	entries map[string]verifiedEntry
}

type verifiedEntry struct {
	claims *Claims
	kid    string
	key    any // the key that verified it (nil with HMACSecret)
}

func newVerifiedCache() *verifiedCache {
	return &verifiedCache{entries: make(map[string]verifiedEntry)}
}

// cachedClaims returns a copy of the cached claims of raw if they may be
// used now.
func (v *Verifier) cachedClaims(raw string) (*Claims, bool) {
	v.cache.mu.RLock()
	e, ok := v.cache.entries[raw]
	v.cache.mu.RUnlock()
	if !ok {
		return nil, false
	}
	if !v.now().Before(e.claims.ExpiresAt.Add(v.cfg.Leeway)) {
		v.cache.mu.Lock()
		delete(v.cache.entries, raw)
		v.cache.mu.Unlock()
		return nil, false
	}
	if v.keys != nil {
		set := v.keys.set.Load()
		if set == nil {
			return nil, false
		}
		pk, ok := set.byKid[e.kid]
		if !ok || !sameKey(pk.key, e.key) {
			return nil, false // the key left the set (or changed): verify afresh
		}
	}
	c := *e.claims
	c.Roles, c.Audience = slices.Clone(c.Roles), slices.Clone(c.Audience)
	return &c, true
}

func (v *Verifier) cacheClaims(raw string, c *Claims, kid string, key any) {
	cc := *c
	cc.Roles, cc.Audience = slices.Clone(c.Roles), slices.Clone(c.Audience)
	v.cache.mu.Lock()
	defer v.cache.mu.Unlock()
	if len(v.cache.entries) >= maxVerified {
		clear(v.cache.entries)
	}
	v.cache.entries[raw] = verifiedEntry{claims: &cc, kid: kid, key: key}
}

func sameKey(a, b any) bool {
	switch a := a.(type) {
	case ed25519.PublicKey:
		b, ok := b.(ed25519.PublicKey)
		return ok && a.Equal(b)
	case *ecdsa.PublicKey:
		b, ok := b.(*ecdsa.PublicKey)
		return ok && a.Equal(b)
	}
	return false
}
