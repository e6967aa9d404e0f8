package verify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"
)

// Defaults of Config.
const (
	DefaultLeeway             = 30 * time.Second
	DefaultKeyRefreshInterval = 5 * time.Minute
	DefaultPollInterval       = time.Second
	DefaultStaleAfter         = 5 * time.Second
	DefaultPageLimit          = 1000
	DefaultFullResyncInterval = time.Minute
	DefaultIntrospectionTTL   = 2 * time.Second
	DefaultHTTPTimeout        = 10 * time.Second
)

// Signature algorithms Rotor signs with (JWT_ALG).
const (
	EdDSA = "EdDSA"
	ES256 = "ES256"
	HS256 = "HS256"
)

// minKeyRefetch is the least time between two JWKS fetches caused by
// tokens with an unknown kid.
const minKeyRefetch = 10 * time.Second

// maxTokenLen bounds what Verify parses at all.
const maxTokenLen = 8192

// Config says which tokens a Verifier accepts and where it learns of keys
// and revocations. Issuer, Audience and TokenSource are required; every
// other zero value means the documented default.
type Config struct {
	// Issuer is the iss every token must carry (Rotor's JWT_ISSUER, e.g.
	// https://auth.example.com) and the base URL of discovery and of the
	// default endpoints below.
	Issuer string
	// Audience must be among the token's aud (Rotor's JWT_AUDIENCE).
	Audience string

	// JWKSURL is where the public keys are. Empty: jwks_uri from
	// Issuer + /.well-known/oauth-authorization-server (RFC 8414).
	JWKSURL string
	// HMACSecret verifies HS256 tokens with Rotor's JWT_SECRET instead; no
	// JWKS is fetched then, and asymmetric algorithms are refused.
	HMACSecret []byte
	// Algorithms is the allow-list of alg values. Default: EdDSA and ES256,
	// or HS256 alone with HMACSecret. "none" is never accepted, and HS256
	// never together with an asymmetric algorithm.
	Algorithms []string
	// Leeway is the clock skew tolerated on exp, nbf and iat. Zero means
	// DefaultLeeway; a negative value means none.
	Leeway time.Duration
	// AllowMissingClientID accepts tokens without the client_id claim that
	// RFC 9068 §2.2 requires. Off by default: such tokens are refused.
	AllowMissingClientID bool
	// KeyRefreshInterval is how often the JWKS is fetched again. Default
	// DefaultKeyRefreshInterval. A token with an unknown kid also makes it
	// fetch (at most once per 10 s); a failed fetch keeps the last good set.
	KeyRefreshInterval time.Duration

	// TokenSource authenticates the revocation feed and introspection: its
	// tokens need role introspect or admin at Rotor. In production, a
	// golang.org/x/oauth2/clientcredentials Config. The Verifier caches each
	// token until shortly before its expiry and asks the source again when
	// Rotor refuses it (401), so the source need not cache. One that does
	// (clientcredentials.Config.TokenSource) gives the refused token again
	// until it expires; a source calling clientcredentials.Config.Token
	// fetches a new one at once.
	TokenSource oauth2.TokenSource
	// RevocationsURL is the revocation feed. Default Issuer + /revocations.
	RevocationsURL string
	// PollInterval is how often the feed is polled. Default 1 s.
	PollInterval time.Duration
	// PageLimit is the feed's limit parameter, 1 to 10,000. Default 1000.
	PageLimit int
	// StaleAfter is the age of the last successful poll past which
	// revocations count as stale. Default 5 s; it must exceed PollInterval.
	StaleAfter time.Duration
	// FailOpen keeps accepting tokens (against the denylist as last known)
	// while revocations are stale. Off by default: Verify then fails with
	// ErrStale. Either way Status and the log say so.
	FailOpen bool
	// FullResyncInterval is how often the feed is read again from the
	// start, which heals a cursor that no longer fits the issuer: an
	// in-memory Rotor that restarted numbers its entries from 0 again, and
	// an older cursor would skip them. Default 1 min.
	FullResyncInterval time.Duration

	// IntrospectionURL is Rotor's RFC 7662 endpoint, used by Introspect.
	// Default: the discovered introspection_endpoint, else
	// Issuer + /introspect.
	IntrospectionURL string
	// IntrospectionTTL is how long Introspect reuses an answer. Default 2 s;
	// negative: never.
	IntrospectionTTL time.Duration

	// HTTPClient makes every request (the feed's through TokenSource).
	// Default: a client with a DefaultHTTPTimeout timeout.
	HTTPClient *http.Client
	// Logger receives start-up, key changes and every staleness transition
	// (once each). Default slog.Default().
	Logger *slog.Logger

	// now is the clock (tests).
	now func() time.Time
	// minRefetch overrides minKeyRefetch (tests).
	minRefetch time.Duration
}

// Claims are the claims of a verified access token.
type Claims struct {
	Subject   string    // sub: the user id
	SessionID string    // sid: the session (refresh-token family)
	ID        string    // jti: this token
	ClientID  string    // client_id (RFC 9068 §2.2); empty only with AllowMissingClientID
	Roles     []string  // roles
	Issuer    string    // iss
	Audience  []string  // aud
	ExpiresAt time.Time // exp
	IssuedAt  time.Time // iat
	NotBefore time.Time // nbf; zero when absent
}

// HasRole reports whether the token carries at least one of roles.
func (c *Claims) HasRole(roles ...string) bool {
	for _, r := range roles {
		if slices.Contains(c.Roles, r) {
			return true
		}
	}
	return false
}

// Status is a snapshot of a Verifier, for health endpoints and logs.
type Status struct {
	// Ready: keys are loaded and one poll of the feed completed.
	Ready bool `json:"ready"`
	// KeyIDs are the kids of the key set in use, the signing key first.
	KeyIDs []string `json:"key_ids"`
	// KeysFetchedAt is when that set was fetched.
	KeysFetchedAt time.Time `json:"keys_fetched_at"`
	// KeysError is the last key fetch's failure; empty when it succeeded.
	KeysError string `json:"keys_error,omitempty"`
	// LastSync is when the last complete poll of the feed began: every
	// revocation committed before it is applied.
	LastSync time.Time `json:"last_sync"`
	// Cursor is where the next poll starts.
	Cursor string `json:"cursor"`
	// DeniedSessions and DeniedTokens are the denylist's sizes.
	DeniedSessions int `json:"denied_sessions"`
	DeniedTokens   int `json:"denied_tokens"`
	// Stale: LastSync is older than StaleAfter (or no poll completed yet).
	Stale bool `json:"stale"`
	// FailOpen: stale revocations do not refuse tokens.
	FailOpen bool `json:"fail_open"`
	// FeedError is the last poll's failure; empty when it succeeded.
	FeedError string `json:"feed_error,omitempty"`
}

// Verifier checks Rotor access tokens offline. It is safe for concurrent
// use; its background goroutines run until Close or until the context given
// to New ends.
type Verifier struct {
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	parser  *jwt.Parser
	algs    []string
	hmacKey []byte
	hmacKid string

	plain         *http.Client // JWKS and metadata
	authed        *http.Client // feed and introspection
	introspectURL atomic.Pointer[string]

	keys  *keyCache // nil with HMACSecret
	poll  *poller
	deny  *denylist
	intr  *introCache
	cache *verifiedCache

	started    time.Time
	staleState atomic.Int32

	bg     context.Context
	stop   context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool
}

// New checks cfg and starts the background work (key refresh, feed poll,
// staleness watch) under ctx; it does not wait for the issuer: call
// WaitReady for that. Stop it with Close or by ending ctx.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	v := &Verifier{cfg: cfg, log: cfg.Logger, now: cfg.now, deny: newDenylist(), intr: newIntroCache(), cache: newVerifiedCache()}
	v.algs = cfg.Algorithms
	if len(cfg.HMACSecret) > 0 {
		v.hmacKey = slices.Clone(cfg.HMACSecret)
		v.hmacKid = hmacKid(cfg.HMACSecret)
	}
	v.parser = jwt.NewParser(
		jwt.WithValidMethods(v.algs),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(cfg.now),
		jwt.WithStrictDecoding(),
	)
	v.plain = cfg.HTTPClient
	authed := *cfg.HTTPClient
	base := cfg.HTTPClient.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	authed.Transport = &bearerTransport{src: cfg.TokenSource, base: base, now: cfg.now}
	// The transport adds the feed's token to every request it sends, so
	// a redirect must not take it elsewhere: redirects are not followed.
	authed.CheckRedirect = func(*http.Request, []*http.Request) error {
		return fmt.Errorf("the issuer answered with a redirect; not followed with the feed's token (configure the final URL)")
	}
	v.authed = &authed
	if cfg.IntrospectionURL != "" {
		u := cfg.IntrospectionURL
		v.introspectURL.Store(&u)
	}
	v.started = v.now()
	v.bg, v.stop = context.WithCancel(ctx)
	v.poll = &poller{v: v, url: cfg.RevocationsURL, client: v.authed, limit: cfg.PageLimit,
		interval: cfg.PollInterval, full: cfg.FullResyncInterval, cursor: "0", synced: make(chan struct{})}
	v.wg.Add(2)
	go v.poll.run()
	go v.watch()
	if v.hmacKey == nil {
		v.keys = &keyCache{v: v, algs: v.algs, interval: cfg.KeyRefreshInterval, minRefetch: cfg.minRefetch,
			jwksURL: cfg.JWKSURL, loaded: make(chan struct{})}
		v.wg.Add(1)
		go v.keys.run()
	}
	return v, nil
}

// fill applies the defaults and refuses what cannot work.
func (c *Config) fill() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("verify: Config.%s", fmt.Sprintf(format, args...))
	}
	c.Issuer = strings.TrimSuffix(c.Issuer, "/")
	if u, err := url.Parse(c.Issuer); c.Issuer == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return bad("Issuer: %q is not an http(s) URL such as https://auth.example.com (Rotor's JWT_ISSUER)", c.Issuer)
	}
	if c.Audience == "" {
		return bad("Audience is required (Rotor's JWT_AUDIENCE)")
	}
	if c.TokenSource == nil {
		return bad("TokenSource is required: the revocation feed needs a token with role introspect or admin (a clientcredentials.Config's TokenSource)")
	}
	if len(c.Algorithms) == 0 {
		c.Algorithms = []string{EdDSA, ES256}
		if len(c.HMACSecret) > 0 {
			c.Algorithms = []string{HS256}
		}
	}
	c.Algorithms = slices.Clone(c.Algorithms)
	for _, a := range c.Algorithms {
		switch a {
		case EdDSA, ES256:
			if len(c.HMACSecret) > 0 {
				return bad("Algorithms: %s with HMACSecret: a shared secret allows HS256 alone", a)
			}
		case HS256:
			if len(c.HMACSecret) == 0 {
				return bad("Algorithms: HS256 needs HMACSecret (Rotor's JWT_SECRET)")
			}
		default:
			return bad("Algorithms: %q is not supported (EdDSA, ES256 or HS256)", a)
		}
	}
	if len(c.HMACSecret) > 0 {
		if len(c.HMACSecret) < 32 {
			return bad("HMACSecret: %d bytes; Rotor's JWT_SECRET has at least 32", len(c.HMACSecret))
		}
		if c.JWKSURL != "" {
			return bad("JWKSURL: not used with HMACSecret")
		}
	}
	switch {
	case c.Leeway == 0:
		c.Leeway = DefaultLeeway
	case c.Leeway < 0:
		c.Leeway = 0
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.KeyRefreshInterval, DefaultKeyRefreshInterval)
	def(&c.PollInterval, DefaultPollInterval)
	def(&c.StaleAfter, DefaultStaleAfter)
	def(&c.FullResyncInterval, DefaultFullResyncInterval)
	def(&c.minRefetch, minKeyRefetch)
	switch {
	case c.IntrospectionTTL == 0:
		c.IntrospectionTTL = DefaultIntrospectionTTL
	case c.IntrospectionTTL < 0:
		c.IntrospectionTTL = 0
	}
	if c.StaleAfter <= c.PollInterval {
		return bad("StaleAfter: %s must be longer than PollInterval %s", c.StaleAfter, c.PollInterval)
	}
	if c.PageLimit == 0 {
		c.PageLimit = DefaultPageLimit
	}
	if c.PageLimit < 1 || c.PageLimit > 10000 {
		return bad("PageLimit: %d is outside 1 to 10000", c.PageLimit)
	}
	if c.RevocationsURL == "" {
		c.RevocationsURL = c.Issuer + "/revocations"
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: DefaultHTTPTimeout}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.now == nil {
		c.now = time.Now
	}
	return nil
}

// hmacKid is the kid Rotor gives an HS256 secret (internal/tokens
// NewHMACKeySet): it names the secret without revealing it.
func hmacKid(secret []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("rotor hs256 kid"))
	return "hs-" + base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:12])
}

// tokenClaims is the JSON of a Rotor access token's claims.
type tokenClaims struct {
	jwt.RegisteredClaims
	SessionID string   `json:"sid"`
	ClientID  string   `json:"client_id"`
	Roles     []string `json:"roles"`
}

// forbiddenHeaders would let a token name its own key, or demand
// extensions this package does not implement (RFC 7515 §4.1.11).
var forbiddenHeaders = []string{"jku", "x5u", "jwk", "x5c", "crit"}

// Verify checks raw, a compact JWS access token: the alg against the
// allow-list, typ at+jwt, no jku/x5u/jwk/x5c/crit header, a kid in the key
// set, the signature, iss, aud, exp/nbf/iat within the leeway, sub, sid,
// jti and (by default) client_id, and the denylist by sid and jti. While
// revocations are stale it fails with ErrStale unless Config.FailOpen.
// A token that verified before is answered from a cache (its expiry and
// its key's presence in the set still checked); the returned Claims are the
// caller's own. Errors wrap ErrInvalidToken (refuse: 401) or ErrUnavailable
// (503).
func (v *Verifier) Verify(ctx context.Context, raw string) (*Claims, error) {
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
	if v.observe() && !v.cfg.FailOpen {
		// staleErr takes the poller's lock: a poll may just have completed.
		if err := v.poll.staleErr(v.now()); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// verifyToken is Verify without the denylist and staleness.
func (v *Verifier) verifyToken(ctx context.Context, raw string) (*Claims, error) {
	if raw == "" {
		return nil, invalid("empty token")
	}
	if len(raw) > maxTokenLen {
		return nil, invalid("token is %d bytes, more than %d", len(raw), maxTokenLen)
	}
	if c, ok := v.cachedClaims(raw); ok {
		return c, nil
	}
	var keyErr error
	var usedKid string
	var usedKey any
	keyFor := func(t *jwt.Token) (any, error) {
		k, err := v.keyFor(ctx, t)
		keyErr = err
		if err == nil {
			usedKid, _ = t.Header["kid"].(string)
			if v.hmacKey == nil {
				usedKey = k
			}
		}
		return k, err
	}
	var tc tokenClaims
	tok, err := v.parser.ParseWithClaims(raw, &tc, keyFor)
	if err != nil {
		if keyErr != nil {
			return nil, keyErr
		}
		return nil, v.describe(tok, &tc, err)
	}
	switch {
	case tc.Subject == "":
		return nil, invalid("no sub claim")
	case tc.SessionID == "":
		return nil, invalid("no sid claim")
	case tc.ID == "":
		return nil, invalid("no jti claim")
	case tc.IssuedAt == nil:
		return nil, invalid("no iat claim")
	case tc.ClientID == "" && !v.cfg.AllowMissingClientID:
		return nil, invalid("no client_id claim (RFC 9068 §2.2; Config.AllowMissingClientID accepts such tokens)")
	}
	c := &Claims{
		Subject: tc.Subject, SessionID: lowerIfNeeded(tc.SessionID), ID: lowerIfNeeded(tc.ID),
		ClientID: tc.ClientID, Roles: tc.Roles, Issuer: tc.Issuer, Audience: tc.Audience,
		ExpiresAt: tc.ExpiresAt.Time, IssuedAt: tc.IssuedAt.Time,
	}
	if c.Roles == nil {
		c.Roles = []string{}
	}
	if tc.NotBefore != nil {
		c.NotBefore = tc.NotBefore.Time
	}
	v.cacheClaims(raw, c, usedKid, usedKey)
	return c, nil
}

// lowerIfNeeded makes an id comparable with the feed's canonical
// lower-case UUIDs without allocating for ids that already are.
func lowerIfNeeded(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// keyFor checks the header and finds the key.
func (v *Verifier) keyFor(ctx context.Context, t *jwt.Token) (any, error) {
	typ, _ := t.Header["typ"].(string)
	if !strings.EqualFold(typ, "at+jwt") && !strings.EqualFold(typ, "application/at+jwt") {
		return nil, invalid("typ is %q, want at+jwt (RFC 9068)", quoteSafe(typ, 32))
	}
	for _, h := range forbiddenHeaders {
		if _, ok := t.Header[h]; ok {
			return nil, invalid("header %s is refused: keys come from the issuer's key set only", h)
		}
	}
	kid, ok := t.Header["kid"].(string)
	if !ok || kid == "" {
		return nil, invalid("no kid header")
	}
	alg := t.Method.Alg()
	if v.hmacKey != nil {
		if kid != v.hmacKid {
			return nil, invalid("kid %q is not the shared secret's", quoteSafe(kid, 64))
		}
		return v.hmacKey, nil
	}
	pk, err := v.keys.lookup(ctx, kid)
	if err != nil {
		return nil, err
	}
	if pk.alg != alg {
		return nil, invalid("kid %s is an %s key, the token says alg %s", kid, pk.alg, alg)
	}
	return pk.key, nil
}

// describe turns a golang-jwt error into one that says what failed.
func (v *Verifier) describe(tok *jwt.Token, tc *tokenClaims, err error) error {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return invalid("malformed token: %s", strings.TrimPrefix(err.Error(), jwt.ErrTokenMalformed.Error()+": "))
	case tok != nil && tok.Method != nil && !slices.Contains(v.algs, tok.Method.Alg()):
		return invalid("alg %q is not allowed (allowed: %s)", quoteSafe(tok.Method.Alg(), 16), strings.Join(v.algs, ", "))
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return invalid("unverifiable token: %v", err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return invalid("signature is invalid")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return invalid("no exp claim")
	case errors.Is(err, jwt.ErrTokenExpired):
		return invalid("token expired at %s (leeway %s)", tc.ExpiresAt.UTC().Format(time.RFC3339), v.cfg.Leeway)
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return invalid("token not valid before %s (leeway %s)", tc.NotBefore.UTC().Format(time.RFC3339), v.cfg.Leeway)
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return invalid("iat %s is in the future (leeway %s)", tc.IssuedAt.UTC().Format(time.RFC3339), v.cfg.Leeway)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return invalid("iss is %q, want %q", quoteSafe(tc.Issuer, 128), v.cfg.Issuer)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		aud := make([]string, len(tc.Audience))
		for i, a := range tc.Audience {
			aud[i] = quoteSafe(a, 64)
		}
		return invalid("aud %v does not include %q", aud, v.cfg.Audience)
	}
	return invalid("%v", err)
}

// checkDenylist refuses a token of a revoked session or a revoked token.
func (v *Verifier) checkDenylist(c *Claims) error {
	what, until, denied := v.deny.check(c.SessionID, c.ID)
	if !denied {
		return nil
	}
	if what == "session" {
		return fmt.Errorf("verify: %w: session %s was revoked (denylisted until %s)", ErrRevoked, c.SessionID, until.UTC().Format(time.RFC3339))
	}
	return fmt.Errorf("verify: %w: token %s was revoked (denylisted until %s)", ErrRevoked, c.ID, until.UTC().Format(time.RFC3339))
}

// Status returns a snapshot of the key set and the revocation feed.
func (v *Verifier) Status() Status {
	st := Status{FailOpen: v.cfg.FailOpen, KeyIDs: []string{}}
	keysReady := true
	if v.keys != nil {
		if set := v.keys.set.Load(); set != nil {
			st.KeyIDs, st.KeysFetchedAt = slices.Clone(set.kids), set.fetchedAt
		} else {
			keysReady = false
		}
		v.keys.mu.Lock()
		if v.keys.lastErr != nil {
			st.KeysError = v.keys.lastErr.Error()
		}
		v.keys.mu.Unlock()
	} else {
		st.KeyIDs = []string{v.hmacKid}
	}
	var err error
	st.LastSync, st.Cursor, err = v.poll.state()
	if err != nil {
		st.FeedError = err.Error()
	}
	st.DeniedSessions, st.DeniedTokens = v.deny.size()
	st.Stale = v.observe()
	st.Ready = keysReady && !st.LastSync.IsZero()
	return st
}

// WaitReady blocks until the key set is loaded and one poll of the
// revocation feed has completed, or until ctx ends; then its error says
// what is missing and why.
func (v *Verifier) WaitReady(ctx context.Context) error {
	var keysLoaded <-chan struct{}
	if v.keys != nil {
		keysLoaded = v.keys.loaded
	} else {
		c := make(chan struct{})
		close(c)
		keysLoaded = c
	}
	v.poll.mu.Lock()
	synced := v.poll.synced
	v.poll.mu.Unlock()
	if synced == nil {
		c := make(chan struct{})
		close(c)
		synced = c
	}
	for _, ch := range []<-chan struct{}{keysLoaded, synced} {
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("verify: %w: not ready: %s: %w", ErrUnavailable, v.notReady(), ctx.Err())
		case <-v.bg.Done():
			return fmt.Errorf("verify: %w: stopped before it was ready: %s", ErrUnavailable, v.notReady())
		}
	}
	return nil
}

// notReady says what WaitReady still waits for.
func (v *Verifier) notReady() string {
	var parts []string
	st := v.Status()
	if v.keys != nil && len(st.KeyIDs) == 0 {
		why := "no keys loaded yet"
		if st.KeysError != "" {
			why += " (" + st.KeysError + ")"
		}
		parts = append(parts, why)
	}
	if st.LastSync.IsZero() {
		why := "no complete poll of " + v.cfg.RevocationsURL + " yet"
		if st.FeedError != "" {
			why += " (" + st.FeedError + ")"
		}
		parts = append(parts, why)
	}
	if len(parts) == 0 {
		return "ready now"
	}
	return strings.Join(parts, "; ")
}

// Close stops the background goroutines and waits for them. Verify fails
// with ErrUnavailable afterwards. Close is idempotent.
func (v *Verifier) Close() error {
	if v.closed.Swap(true) {
		return nil
	}
	v.stop()
	if v.keys != nil {
		v.keys.mu.Lock()
		v.keys.closed = true
		v.keys.mu.Unlock()
	}
	v.wg.Wait()
	return nil
}

// errorBody is Rotor's one error shape.
type errorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// do sends req and decodes a 200 JSON answer of at most max bytes into out;
// any other answer becomes an error naming the URL, the status and Rotor's
// error code and description.
func (v *Verifier) do(client *http.Client, req *http.Request, max int64, out any) error {
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", req.Method, req.URL.Redacted(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", req.Method, req.URL.Redacted(), err)
	}
	if resp.StatusCode != http.StatusOK {
		var eb errorBody
		detail := ""
		if json.Unmarshal(body, &eb) == nil && eb.Error != "" {
			detail = ": " + eb.Error
			if eb.Description != "" {
				detail += ": " + eb.Description
			}
		}
		return fmt.Errorf("%s %s: %s%s", req.Method, req.URL.Redacted(), resp.Status, detail)
	}
	if int64(len(body)) > max {
		return fmt.Errorf("%s %s: the answer is larger than %d bytes", req.Method, req.URL.Redacted(), max)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s %s: bad JSON: %w", req.Method, req.URL.Redacted(), err)
	}
	return nil
}
