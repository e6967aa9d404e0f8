package verify

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// maxIntroCache bounds the introspection cache; when full, expired answers
// are dropped, and if none are, all of them.
const maxIntroCache = 10000

// introCache remembers the issuer's answers for Config.IntrospectionTTL.
type introCache struct {
	mu      sync.Mutex
	answers map[string]introAnswer
}

type introAnswer struct {
	active  bool
	expires time.Time
}

func newIntroCache() *introCache { return &introCache{answers: map[string]introAnswer{}} }

func (c *introCache) get(raw string, now time.Time) (introAnswer, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, ok := c.answers[raw]
	if !ok || !now.Before(a.expires) {
		return introAnswer{}, false
	}
	return a, true
}

func (c *introCache) put(raw string, a introAnswer, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.answers) >= maxIntroCache {
		for k, old := range c.answers {
			if !now.Before(old.expires) {
				delete(c.answers, k)
			}
		}
		if len(c.answers) >= maxIntroCache {
			clear(c.answers)
		}
	}
	c.answers[raw] = a
}

// introspection is the part of Rotor's RFC 7662 answer checked here.
type introspection struct {
	Active bool     `json:"active"`
	Sid    string   `json:"sid"`
	Jti    string   `json:"jti"`
	Aud    []string `json:"aud"`
}

// Introspect is Verify for routes that want the issuer's word: it checks
// raw locally (signature, claims, denylist), then asks Rotor's /introspect
// (RFC 7662) whether it is still active, reusing an answer for
// Config.IntrospectionTTL. A token the issuer calls inactive is ErrRevoked;
// an issuer that cannot answer is ErrUnavailable. Stale revocations do not
// matter here: the issuer's answer is current.
func (v *Verifier) Introspect(ctx context.Context, raw string) (*Claims, error) {
	if v.closed.Load() {
		return nil, fmt.Errorf("verify: %w: the verifier is closed", ErrUnavailable)
	}
	c, err := v.verifyToken(ctx, raw)
	if err != nil {
		return nil, err
	}
	if err := v.checkDenylist(c); err != nil {
		return nil, err
	}
	now := v.now()
	a, ok := v.intr.get(raw, now)
	if !ok {
		a, err = v.introspect(ctx, raw, c)
		if err != nil {
			return nil, err
		}
		if ttl := v.cfg.IntrospectionTTL; ttl > 0 {
			a.expires = now.Add(ttl)
			if a.active && c.ExpiresAt.Before(a.expires) {
				a.expires = c.ExpiresAt
			}
			v.intr.put(raw, a, now)
		}
	}
	if !a.active {
		return nil, fmt.Errorf("verify: %w: the issuer's introspection says the token is not active", ErrRevoked)
	}
	return c, nil
}

func (v *Verifier) introspect(ctx context.Context, raw string, c *Claims) (introAnswer, error) {
	u := v.cfg.Issuer + "/introspect"
	if p := v.introspectURL.Load(); p != nil {
		u = *p
	}
	form := url.Values{"token": {raw}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return introAnswer{}, fmt.Errorf("verify: %w: introspection: %w", ErrUnavailable, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	var in introspection
	if err := v.do(v.authed, req, maxMetadataBytes, &in); err != nil {
		return introAnswer{}, fmt.Errorf("verify: %w: introspection: %w", ErrUnavailable, err)
	}
	if in.Active && (!strings.EqualFold(in.Sid, c.SessionID) || !strings.EqualFold(in.Jti, c.ID) || !slices.Contains(in.Aud, v.cfg.Audience)) {
		return introAnswer{}, fmt.Errorf("verify: %w: introspection at %s describes another token (sid, jti or aud differ)", ErrUnavailable, u)
	}
	return introAnswer{active: in.Active}, nil
}
