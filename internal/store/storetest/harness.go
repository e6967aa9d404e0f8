// Package storetest is the conformance suite every tokens.Store backend
// passes: the rotation rules of SPEC §2 and the revocations of SPEC §3,
// exercised through tokens.Service with an injected clock, including race
// tests with many goroutines. A backend's test file calls Run.
package storetest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rotorauth/rotor/internal/password"
	"github.com/rotorauth/rotor/internal/tokens"
)

// Clock is a settable clock for tests.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock at the current time, to the microsecond.
func NewClock() *Clock { return &Clock{now: time.Now().UTC().Truncate(time.Microsecond)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// FastPasswords is argon2id with minimal cost, for tests only.
var FastPasswords = password.Argon2id{Params: password.Params{Memory: 64, Time: 1, Threads: 1}}

// Fixture is a Service on the store under test, with its clock.
type Fixture struct {
	T     testing.TB
	Store tokens.Store
	Svc   *tokens.Service
	Clock *Clock
	Cfg   tokens.Config
}

// Option changes a fixture's configuration.
type Option func(*tokens.Config)

// WithGrace sets REFRESH_REUSE_GRACE.
func WithGrace(d time.Duration) Option { return func(c *tokens.Config) { c.ReuseGrace = d } }

// WithSessionMax sets SESSION_MAX_LIFETIME.
func WithSessionMax(d time.Duration) Option {
	return func(c *tokens.Config) { c.SessionMaxLifetime = d }
}

// TestSecret is a fixed TOKEN_SECRET shared by the services of one test, as
// instances of one deployment share theirs.
var TestSecret = []byte("0123456789abcdef0123456789abcdef-test-only")

var testKeys = func() *tokens.KeySet {
	ks, err := tokens.GenerateKeySet(tokens.AlgEdDSA)
	if err != nil {
		panic(err)
	}
	return ks
}()

// NewFixture returns a Service on store with a fresh clock and defaults of
// SPEC §6 (grace 10s).
func NewFixture(t testing.TB, store tokens.Store, opts ...Option) *Fixture {
	t.Helper()
	clock := NewClock()
	cfg := tokens.Config{
		Issuer: "https://rotor.test", Audience: "rotor-test",
		AccessTTL: 15 * time.Minute, RefreshTTL: 336 * time.Hour, SessionMaxLifetime: 720 * time.Hour,
		ReuseGrace: 10 * time.Second, Keys: testKeys, TokenSecret: TestSecret, Now: clock.Now,
	}
	for _, o := range opts {
		o(&cfg)
	}
	svc, err := tokens.NewService(store, FastPasswords, cfg)
	if err != nil {
		t.Fatalf("NewService: %v", err)
	}
	return &Fixture{T: t, Store: store, Svc: svc, Clock: clock, Cfg: cfg}
}

// Twin returns a second Service on the same store and clock: another
// instance of the same deployment.
func (f *Fixture) Twin() *Fixture {
	svc, err := tokens.NewService(f.Store, FastPasswords, f.Cfg)
	if err != nil {
		f.T.Fatalf("NewService: %v", err)
	}
	return &Fixture{T: f.T, Store: f.Store, Svc: svc, Clock: f.Clock, Cfg: f.Cfg}
}

// Email returns an address no other test uses.
func Email() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return fmt.Sprintf("user-%x@example.test", b)
}

// Password is the password MustUser gives every user.
const Password = "correct horse battery"

// TestClient is the caller of the fixture's logins and refreshes.
var TestClient = tokens.ClientInfo{UserAgent: "storetest", IP: "192.0.2.1"}

// MustUser signs up a new user with roles.
func (f *Fixture) MustUser(roles ...string) tokens.User {
	f.T.Helper()
	u, err := f.Svc.Signup(context.Background(), Email(), Password, roles)
	if err != nil {
		f.T.Fatalf("Signup: %v", err)
	}
	return u
}

// MustLogin logs u in.
func (f *Fixture) MustLogin(u tokens.User) tokens.TokenPair {
	f.T.Helper()
	p, err := f.Svc.Login(context.Background(), u.Email, Password, TestClient)
	if err != nil {
		f.T.Fatalf("Login: %v", err)
	}
	return p
}

// MustRefresh rotates rt and fails the test on error.
func (f *Fixture) MustRefresh(rt string) tokens.TokenPair {
	f.T.Helper()
	p, err := f.Svc.Refresh(context.Background(), rt, TestClient)
	if err != nil {
		f.T.Fatalf("Refresh: %v", err)
	}
	return p
}

// Refresh rotates rt.
func (f *Fixture) Refresh(rt string) (tokens.TokenPair, error) {
	return f.Svc.Refresh(context.Background(), rt, TestClient)
}

// MustBeRefused asserts that refreshing rt fails with invalid_grant.
func (f *Fixture) MustBeRefused(rt, why string) {
	f.T.Helper()
	_, err := f.Refresh(rt)
	if !errors.Is(err, tokens.ErrInvalidGrant) {
		f.T.Fatalf("%s: refresh error = %v, want invalid_grant", why, err)
	}
}

// MustBeDenied asserts that an access token no longer authenticates.
func (f *Fixture) MustBeDenied(at, why string) {
	f.T.Helper()
	if _, err := f.Svc.Authenticate(at); !errors.Is(err, tokens.ErrInvalidToken) {
		f.T.Fatalf("%s: Authenticate error = %v, want invalid_token", why, err)
	}
}

// MustAuthenticate asserts that an access token authenticates.
func (f *Fixture) MustAuthenticate(at string) tokens.Principal {
	f.T.Helper()
	p, err := f.Svc.Authenticate(at)
	if err != nil {
		f.T.Fatalf("Authenticate: %v", err)
	}
	return p
}

// Session returns the stored session.
func (f *Fixture) Session(id uuid.UUID) tokens.Session {
	f.T.Helper()
	s, err := f.Store.Session(context.Background(), id)
	if err != nil {
		f.T.Fatalf("Session: %v", err)
	}
	return s
}

// Codec is the refresh codec of TestSecret.
func Codec(t testing.TB) *tokens.RefreshCodec {
	t.Helper()
	c, err := tokens.NewRefreshCodec(TestSecret)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Parse takes a refresh token apart with TestSecret's codec.
func Parse(t testing.TB, rt string) tokens.ParsedRefresh {
	t.Helper()
	p, err := Codec(t).Parse(rt)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return p
}

// IsActive reports whether rt is its session's active token.
func (f *Fixture) IsActive(rt string) bool {
	f.T.Helper()
	p := Parse(f.T, rt)
	s := f.Session(p.SessionID)
	return p.Generation == s.Chain.Generation && Codec(f.T).Matches(p, s.Chain.VerifierHash)
}

// countIsGeneration reports whether a session born under v2 has had as
// many rotations as its generation says.
func countIsGeneration(s tokens.Session) bool {
	return s.RefreshCount >= 0 && uint64(s.RefreshCount) == s.Chain.Generation // #nosec G115 -- checked ≥ 0
}

// Generation is a refresh token's generation.
func Generation(t testing.TB, rt string) uint64 { return Parse(t, rt).Generation }

// namedTest is one case of the suite.
type namedTest struct {
	name string
	fn   func(t *testing.T, store tokens.Store)
}

// WithNow sets the fixture's clock, such as time.Now.
func WithNow(now func() time.Time) Option { return func(c *tokens.Config) { c.Now = now } }

// Instance returns another Service on the same store whose clock is the
// real clock plus offset: an instance of the same deployment whose clock is
// off by offset.
func (f *Fixture) Instance(offset time.Duration) *Fixture {
	cfg := f.Cfg
	cfg.Now = func() time.Time { return time.Now().Add(offset) }
	svc, err := tokens.NewService(f.Store, FastPasswords, cfg)
	if err != nil {
		f.T.Fatalf("NewService: %v", err)
	}
	return &Fixture{T: f.T, Store: f.Store, Svc: svc, Clock: f.Clock, Cfg: cfg}
}

func hasKind(evs []tokens.AuditEvent, kind tokens.EventKind) bool {
	for _, e := range evs {
		if e.Kind == kind {
			return true
		}
	}
	return false
}

func kinds(evs []tokens.AuditEvent) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = string(e.Kind)
	}
	return out
}
