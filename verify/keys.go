package verify

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Limits on what the issuer may send back.
const (
	maxJWKSBytes     = 1 << 20
	maxMetadataBytes = 1 << 20
	fetchTimeout     = 10 * time.Second
)

// publicKey is one usable key of the JWKS.
type publicKey struct {
	kid string
	alg string // EdDSA or ES256
	key any    // ed25519.PublicKey or *ecdsa.PublicKey
}

// keySet is one fetched JWKS; it is replaced whole, never edited.
type keySet struct {
	byKid     map[string]*publicKey
	kids      []string // in the issuer's order: the signing key first
	fetchedAt time.Time
}

// fetchCall is one JWKS fetch that several callers may wait for.
type fetchCall struct {
	done chan struct{}
	err  error
}

var errRefetchLimited = errors.New("refetch rate-limited")

// keyCache holds the last good key set and refreshes it: periodically, and
// on an unknown kid at most once per minRefetch. One fetch runs at a time;
// callers arriving meanwhile wait for it. A failed fetch keeps the last
// good set.
type keyCache struct {
	v          *Verifier
	algs       []string
	interval   time.Duration
	minRefetch time.Duration

	set atomic.Pointer[keySet]

	mu            sync.Mutex
	jwksURL       string // discovered on the first fetch when not configured
	inflight      *fetchCall
	lastTriggered time.Time // last fetch caused by an unknown kid
	lastErr       error
	closed        bool
	loaded        chan struct{} // closed at the first good set
}

// lookup returns the key for kid, refetching the set once (rate-limited)
// when kid is not in it.
func (k *keyCache) lookup(ctx context.Context, kid string) (*publicKey, error) {
	set := k.set.Load()
	if set != nil {
		if pk, ok := set.byKid[kid]; ok {
			return pk, nil
		}
	}
	c, err := k.refresh(true)
	if err == nil {
		select {
		case <-c.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("verify: %w: waiting for the key set: %w", ErrUnavailable, ctx.Err())
		}
		set = k.set.Load()
		if set != nil {
			if pk, ok := set.byKid[kid]; ok {
				return pk, nil
			}
		}
	}
	if set == nil {
		k.mu.Lock()
		last := k.lastErr
		k.mu.Unlock()
		if last == nil {
			last = errors.New("the first fetch has not finished")
		}
		return nil, fmt.Errorf("verify: %w: no keys loaded yet: %w", ErrUnavailable, last)
	}
	return nil, invalid("kid %q is not in the issuer's key set (%d keys, fetched %s ago)",
		quoteSafe(kid, 64), len(set.kids), k.v.now().Sub(set.fetchedAt).Round(time.Millisecond))
}

// refresh starts a fetch, or joins the one running. triggered fetches (an
// unknown kid) are refused with errRefetchLimited within minRefetch of the
// previous triggered one.
func (k *keyCache) refresh(triggered bool) (*fetchCall, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if c := k.inflight; c != nil {
		return c, nil
	}
	if k.closed {
		return nil, errors.New("verifier closed")
	}
	now := k.v.now()
	if triggered {
		if !k.lastTriggered.IsZero() && now.Sub(k.lastTriggered) < k.minRefetch {
			return nil, errRefetchLimited
		}
		k.lastTriggered = now
	}
	c := &fetchCall{done: make(chan struct{})}
	k.inflight = c
	k.v.wg.Add(1)
	go func() {
		defer k.v.wg.Done()
		ctx, cancel := context.WithTimeout(k.v.bg, fetchTimeout)
		err := k.fetch(ctx)
		cancel()
		k.mu.Lock()
		k.inflight = nil
		k.lastErr = err
		k.mu.Unlock()
		c.err = err
		close(c.done)
	}()
	return c, nil
}

// run keeps the set fresh until the verifier stops: a fetch at once, then
// every interval; after a failure, retries from 1 s doubling up to the
// interval (at most 30 s).
func (k *keyCache) run() {
	defer k.v.wg.Done()
	backoff := time.Second
	for {
		delay := k.interval
		if c, err := k.refresh(false); err == nil {
			select {
			case <-c.done:
			case <-k.v.bg.Done():
				return
			}
			if c.err != nil {
				delay = min(backoff, k.interval, 30*time.Second)
				backoff *= 2
			} else {
				backoff = time.Second
			}
		}
		t := time.NewTimer(delay)
		select {
		case <-k.v.bg.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// fetch reads the JWKS (discovering its URL first if needed) and, if it
// holds at least one usable key, makes it the set.
func (k *keyCache) fetch(ctx context.Context) error {
	k.mu.Lock()
	u := k.jwksURL
	k.mu.Unlock()
	if u == "" {
		md, err := k.v.discover(ctx)
		if err != nil {
			return err
		}
		u = md.JWKSURI
		k.mu.Lock()
		k.jwksURL = u
		k.mu.Unlock()
	}
	var body struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := k.v.getJSON(ctx, k.v.plain, u, maxJWKSBytes, &body); err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	set, skipped := parseJWKS(body.Keys, k.algs)
	if len(set.kids) == 0 {
		why := ""
		if len(skipped) > 0 {
			why = " (skipped: " + strings.Join(skipped, "; ") + ")"
		}
		return fmt.Errorf("keys: the JWKS at %s has no usable key%s; keeping the last good set", u, why)
	}
	set.fetchedAt = k.v.now()
	old := k.set.Swap(set)
	for _, s := range skipped {
		k.v.log.Warn("verify: JWKS key skipped", "url", u, "reason", s)
	}
	if old == nil {
		k.v.log.Info("verify: keys loaded", "url", u, "kids", set.kids)
		close(k.loaded)
	} else if !slices.Equal(old.kids, set.kids) {
		var removed []string
		for _, kid := range old.kids {
			if _, ok := set.byKid[kid]; !ok {
				removed = append(removed, kid)
			}
		}
		k.v.log.Info("verify: key set changed", "url", u, "kids", set.kids, "removed", removed)
	}
	return nil
}

// jwk is the part of RFC 7517/8037/7518 keys this package uses.
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

// parseJWKS keeps the signature keys of allowed algorithms and says why it
// skipped any other.
func parseJWKS(raw []json.RawMessage, algs []string) (*keySet, []string) {
	set := &keySet{byKid: make(map[string]*publicKey, len(raw))}
	var skipped []string
	for i, r := range raw {
		pk, err := parseJWK(r, algs)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("key %d: %v", i, err))
			continue
		}
		if _, dup := set.byKid[pk.kid]; dup {
			skipped = append(skipped, fmt.Sprintf("key %d: kid %s appears twice; the first is kept", i, pk.kid))
			continue
		}
		set.byKid[pk.kid] = pk
		set.kids = append(set.kids, pk.kid)
	}
	return set, skipped
}

func parseJWK(raw json.RawMessage, algs []string) (*publicKey, error) {
	var j jwk
	if err := json.Unmarshal(raw, &j); err != nil {
		return nil, fmt.Errorf("not a JWK: %w", err)
	}
	if j.Use != "" && j.Use != "sig" {
		return nil, fmt.Errorf("use %q is not sig", j.Use)
	}
	var pk publicKey
	var members map[string]string // RFC 7638 required members
	switch {
	case j.Kty == "OKP" && j.Crv == "Ed25519":
		x, err := b64(j.X, ed25519.PublicKeySize)
		if err != nil {
			return nil, fmt.Errorf("x: %w", err)
		}
		pk.alg, pk.key = "EdDSA", ed25519.PublicKey(x)
		members = map[string]string{"crv": j.Crv, "kty": j.Kty, "x": j.X}
	case j.Kty == "EC" && j.Crv == "P-256":
		x, err := b64(j.X, 32)
		if err != nil {
			return nil, fmt.Errorf("x: %w", err)
		}
		y, err := b64(j.Y, 32)
		if err != nil {
			return nil, fmt.Errorf("y: %w", err)
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return nil, fmt.Errorf("not a P-256 point: %w", err)
		}
		pk.alg, pk.key = "ES256", pub
		members = map[string]string{"crv": j.Crv, "kty": j.Kty, "x": j.X, "y": j.Y}
	default:
		return nil, fmt.Errorf("kty %q crv %q is not supported (OKP/Ed25519 or EC/P-256)", j.Kty, j.Crv)
	}
	if j.Alg != "" && j.Alg != pk.alg {
		return nil, fmt.Errorf("alg %q does not fit a %s %s key", j.Alg, j.Kty, j.Crv)
	}
	if !slices.Contains(algs, pk.alg) {
		return nil, fmt.Errorf("alg %s is not in the allow-list %v", pk.alg, algs)
	}
	pk.kid = j.Kid
	if pk.kid == "" {
		pk.kid = thumbprint(members)
	}
	return &pk, nil
}

// thumbprint is the RFC 7638 JWK thumbprint; encoding/json sorts map keys,
// which gives the required member order without white space.
func thumbprint(members map[string]string) string {
	b, _ := json.Marshal(members)
	sum := sha256.Sum256(b)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func b64(s string, n int) ([]byte, error) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, err
	}
	if len(b) != n {
		return nil, fmt.Errorf("%d bytes, want %d", len(b), n)
	}
	return b, nil
}

// metadata is the part of RFC 8414 authorization server metadata used here.
type metadata struct {
	Issuer                string `json:"issuer"`
	JWKSURI               string `json:"jwks_uri"`
	IntrospectionEndpoint string `json:"introspection_endpoint"`
}

// discover reads the issuer's RFC 8414 metadata. Its issuer must be
// Config.Issuer exactly (RFC 8414 §3.3).
func (v *Verifier) discover(ctx context.Context) (*metadata, error) {
	u := v.cfg.Issuer + "/.well-known/oauth-authorization-server"
	var md metadata
	if err := v.getJSON(ctx, v.plain, u, maxMetadataBytes, &md); err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	if md.Issuer != v.cfg.Issuer {
		return nil, fmt.Errorf("discovery: %s names issuer %q, want %q", u, md.Issuer, v.cfg.Issuer)
	}
	if md.JWKSURI == "" {
		return nil, fmt.Errorf("discovery: %s has no jwks_uri", u)
	}
	if md.IntrospectionEndpoint != "" {
		v.introspectURL.CompareAndSwap(nil, &md.IntrospectionEndpoint)
	}
	return &md, nil
}

// getJSON GETs u with client and decodes a 200 answer of at most max bytes.
func (v *Verifier) getJSON(ctx context.Context, client *http.Client, u string, max int64, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	return v.do(client, req, max, out)
}
