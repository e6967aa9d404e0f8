package tokens_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rotorauth/rotor/internal/tokens"
)

// revStore is a Store whose only working method is Revocations: it serves
// a list of revocations, or fails, and can advance the test clock while a
// sync is in flight (a slow round trip).
type revStore struct {
	tokens.Store // nil: any other call panics
	mu           sync.Mutex
	revs         []tokens.Revocation
	fail         error
	during       func() // runs inside the call, before it answers
}

func (s *revStore) Revocations(_ context.Context, since tokens.SyncCursor, now time.Time) ([]tokens.Revocation, tokens.SyncCursor, error) {
	s.mu.Lock()
	revs, fail, during := s.revs, s.fail, s.during
	s.mu.Unlock()
	if during != nil {
		during()
	}
	if fail != nil {
		return nil, since, fail
	}
	n := int64(len(revs)) + 1
	return revs, tokens.SyncCursor{MaxID: n, Xmax: n}, nil
}

func (s *revStore) set(fn func(s *revStore)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(s)
}

type plainHasher struct{}

func (plainHasher) Hash(pw string) (string, error)      { return "plain:" + pw, nil }
func (plainHasher) Verify(enc, pw string) (bool, error) { return enc == "plain:"+pw, nil }

// TestRevocationFreshness drives the freshness rule with an injected clock:
// an instance that has not completed a sync that STARTED within
// MaxRevocationLag refuses every access token with ErrUnavailable, recovers
// as soon as one completes, and otherwise keeps the denylist's answers.
func TestRevocationFreshness(t *testing.T) {
	ks, err := tokens.GenerateKeySet(tokens.AlgEdDSA)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	clock := t0
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); clock = clock.Add(d) }

	store := &revStore{}
	svc, err := tokens.NewService(store, plainHasher{}, tokens.Config{
		Issuer: testIssuer, Audience: testAudience, AccessTTL: testTTL, RefreshTTL: time.Hour,
		SessionMaxLifetime: time.Hour, Keys: ks, TokenSecret: []byte("0123456789abcdef0123456789abcdef"), Now: now,
	})
	if err != nil {
		t.Fatal(err)
	}
	issuer := tokens.NewAccessTokens(ks, testIssuer, testAudience, testTTL, now)
	issue := func() (string, uuid.UUID) {
		t.Helper()
		sid := uuid.New()
		at, _, err := issuer.Issue(uuid.New(), sid, nil, now())
		if err != nil {
			t.Fatal(err)
		}
		return at, sid
	}
	good, _ := issue()
	doomed, doomedSID := issue()
	ctx := context.Background()
	check := func(what, token string, want error) {
		t.Helper()
		_, err := svc.Authenticate(token)
		if (want == nil) != (err == nil) || (want != nil && !errors.Is(err, want)) {
			t.Fatalf("%s: Authenticate = %v, want %v", what, err, want)
		}
	}

	// Not enforced (a store no other instance writes to): never stale, even
	// before any sync.
	if svc.RevocationsStale() {
		t.Fatal("stale without RequireFreshRevocations")
	}
	if _, ok := svc.RevocationLag(); ok {
		t.Fatal("a lag before any sync")
	}
	check("unenforced, never synced", good, nil)

	// Enforced before the first sync: fail closed.
	svc.RequireFreshRevocations(tokens.MaxRevocationLag)
	check("enforced, never synced", good, tokens.ErrUnavailable)

	if err := svc.FullSyncRevocations(ctx); err != nil {
		t.Fatal(err)
	}
	if at, ok := svc.RevocationsSyncedAt(); !ok || !at.Equal(t0) {
		t.Fatalf("synced at %v %v, want %v", at, ok, t0)
	}
	check("just synced", good, nil)

	// Exactly at the bound still fresh; a nanosecond past it, stale.
	advance(tokens.MaxRevocationLag)
	check("lag == bound", good, nil)
	advance(time.Nanosecond)
	check("lag > bound", good, tokens.ErrUnavailable)
	check("lag > bound, revoked", doomed, tokens.ErrUnavailable)
	if lag, _ := svc.RevocationLag(); lag != tokens.MaxRevocationLag+time.Nanosecond {
		t.Fatalf("lag %v", lag)
	}

	// A failed sync renews nothing.
	store.set(func(s *revStore) { s.fail = tokens.ErrUnavailable })
	if err := svc.SyncRevocations(ctx); err == nil {
		t.Fatal("the failing sync succeeded")
	}
	check("after a failed sync", good, tokens.ErrUnavailable)

	// A revocation committed meanwhile arrives with the next successful
	// sync, which makes the instance fresh again: the revoked token is
	// refused as revoked, the other accepted.
	store.set(func(s *revStore) {
		s.fail = nil
		s.revs = []tokens.Revocation{{ID: 1, Kind: tokens.RevokeSession, Subject: doomedSID, Until: t0.Add(time.Hour)}}
	})
	if err := svc.SyncRevocations(ctx); err != nil {
		t.Fatal(err)
	}
	check("recovered", good, nil)
	check("recovered, revoked", doomed, tokens.ErrInvalidToken)

	// Freshness is the START of the sync: one that took 900 ms leaves only
	// 100 ms of freshness; one that took longer than the bound leaves none.
	store.set(func(s *revStore) { s.during = func() { advance(900 * time.Millisecond) } })
	if err := svc.SyncRevocations(ctx); err != nil {
		t.Fatal(err)
	}
	check("after a 900 ms sync", good, nil)
	advance(100*time.Millisecond + time.Nanosecond)
	check("100 ms after a 900 ms sync", good, tokens.ErrUnavailable)
	store.set(func(s *revStore) { s.during = func() { advance(1100 * time.Millisecond) } })
	if err := svc.SyncRevocations(ctx); err != nil {
		t.Fatal(err)
	}
	check("right after a 1.1 s sync", good, tokens.ErrUnavailable)

	// Freshness never moves back: a sync that started earlier but completes
	// after a later one leaves the later start.
	release, entered := make(chan struct{}), make(chan struct{})
	var calls int
	store.set(func(s *revStore) {
		s.during = func() {
			s.mu.Lock()
			calls++
			first := calls == 1
			s.mu.Unlock()
			if first {
				close(entered)
				<-release
			}
		}
	})
	slowStart := now()
	slow := make(chan error, 1)
	go func() { slow <- svc.SyncRevocations(ctx) }()
	<-entered
	advance(300 * time.Millisecond)
	if err := svc.SyncRevocations(ctx); err != nil {
		t.Fatal(err)
	}
	fastStart := now()
	close(release)
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
	if at, _ := svc.RevocationsSyncedAt(); !at.Equal(fastStart) || !at.After(slowStart) {
		t.Fatalf("synced at %v, want the later start %v", at, fastStart)
	}
	advance(tokens.MaxRevocationLag)
	check("bound after the later start", good, nil)

	// Turning the rule off: never stale again.
	advance(time.Hour)
	svc.RequireFreshRevocations(0)
	fresh, _ := issue()
	check("rule off, an hour without a sync", fresh, nil)
	check("rule off, revoked", doomed, tokens.ErrInvalidToken)
}
