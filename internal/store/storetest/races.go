package storetest

// Race tests: concurrent presentations, logins and revocations, under frozen, real and skewed clocks.

import (
	"context"
	"errors"
	"fmt"
	"github.com/google/uuid"
	"github.com/rotorauth/rotor/internal/tokens"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

func testRealClockRaces(t *testing.T, store tokens.Store) {
	for _, n := range []int{2, 8, 50} {
		t.Run(fmt.Sprintf("%d callers", n), func(t *testing.T) {
			f := NewFixture(t, store, WithNow(time.Now))
			raceRounds(t, f, []*Fixture{f}, n, 100)
		})
	}
}

func testSkewedClockRaces(t *testing.T, store tokens.Store) {
	for _, n := range []int{2, 8, 50} {
		t.Run(fmt.Sprintf("%d callers", n), func(t *testing.T) {
			f := NewFixture(t, store, WithNow(time.Now))
			// Every caller is its own instance, its clock off by up to
			// half the tolerated skew either way: two instances differ by
			// at most MaxClockSkew.
			instances := make([]*Fixture, n)
			for i := range instances {
				off := time.Duration(rand.Int64N(int64(tokens.MaxClockSkew))) - tokens.MaxClockSkew/2 // #nosec G404 -- simulated timing and load, not a secret
				instances[i] = f.Instance(off)
			}
			raceRounds(t, f, instances, n, 100)
		})
	}
}

// raceRounds presents one token from n goroutines at once (caller i through
// instances[i%len]) for the given number of rounds, each round presenting
// the successor the last one agreed on: every caller must get the same
// successor, and the session must stay live with the chain presented ->
// successor.
func raceRounds(t *testing.T, f *Fixture, instances []*Fixture, n, rounds int) {
	t.Helper()
	t0 := f.MustLogin(f.MustUser())
	rt := t0.RefreshToken
	for round := 0; round < rounds; round++ {
		results, errs := presentAcross(instances, rt, n)
		for i := range results {
			if errs[i] != nil {
				s := f.Session(t0.SessionID)
				t.Fatalf("round %d caller %d: %v (session revoked %v as %q, rotated at %v)",
					round, i, errs[i], s.RevokedAt, s.RevokedReason, s.Chain.RotatedAt)
			}
			if results[i].RefreshToken != results[0].RefreshToken {
				t.Fatalf("round %d: caller %d got a different successor: more than one rotation", round, i)
			}
		}
		s := f.Session(t0.SessionID)
		if s.RevokedAt != nil {
			t.Fatalf("round %d: concurrent presentations revoked the session (%s)", round, s.RevokedReason)
		}
		if s.Chain.Generation != Generation(t, rt)+1 || !f.IsActive(results[0].RefreshToken) {
			t.Fatalf("round %d: the chain is not exactly presented -> successor", round)
		}
		for _, inst := range instances[:min(len(instances), 3)] {
			inst.MustAuthenticate(results[0].AccessToken)
		}
		rt = results[0].RefreshToken
	}
	f.MustRefresh(rt)
}

// presentAcross presents rt from n goroutines released by one barrier,
// caller i through instances[i%len(instances)].
func presentAcross(instances []*Fixture, rt string, n int) ([]tokens.TokenPair, []error) {
	results := make([]tokens.TokenPair, n)
	errs := make([]error, n)
	release := make(chan struct{})
	done := make(chan struct{}, n)
	for i := 0; i < n; i++ {
		go func() {
			defer func() { done <- struct{}{} }()
			<-release
			results[i], errs[i] = instances[i%len(instances)].Refresh(rt)
		}()
	}
	close(release)
	for i := 0; i < n; i++ {
		<-done
	}
	return results, errs
}

// presentTogether presents rt from n goroutines released by one barrier.
func presentTogether(f *Fixture, rt string, n int) ([]tokens.TokenPair, []error) {
	results := make([]tokens.TokenPair, n)
	errs := make([]error, n)
	var start, done sync.WaitGroup
	start.Add(1)
	for i := 0; i < n; i++ {
		done.Add(1)
		go func() {
			defer done.Done()
			start.Wait()
			results[i], errs[i] = f.Refresh(rt)
		}()
	}
	start.Done()
	done.Wait()
	return results, errs
}

// testConcurrentGrace: 100 rounds of 50 presentations of one token at once;
// each round yields exactly one successor, which every caller gets.
func testConcurrentGrace(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store)
	t0 := f.MustLogin(f.MustUser())
	rt := t0.RefreshToken
	for round := 0; round < 100; round++ {
		results, errs := presentTogether(f, rt, 50)
		for i := range results {
			if errs[i] != nil {
				t.Fatalf("round %d caller %d: %v", round, i, errs[i])
			}
			if results[i].RefreshToken != results[0].RefreshToken {
				t.Fatalf("round %d: caller %d got a different successor: more than one rotation", round, i)
			}
		}
		s := f.Session(t0.SessionID)
		if s.RevokedAt != nil {
			t.Fatalf("round %d: concurrent presentations inside the window revoked the session", round)
		}
		if s.Chain.Generation != Generation(t, rt)+1 || !f.IsActive(results[0].RefreshToken) || !countIsGeneration(s) {
			t.Fatalf("round %d: the chain is not exactly presented -> successor (one rotation)", round)
		}
		rt = results[0].RefreshToken
		f.Clock.Advance(11 * time.Second) // the next round starts outside the window
	}
	f.MustRefresh(rt)
}

func testConcurrentStrict(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store, WithGrace(0))
	t0 := f.MustLogin(f.MustUser())
	const n = 50
	var ok, reuse, other int
	var winner tokens.TokenPair
	results, errs := presentTogether(f, t0.RefreshToken, n)
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
			winner = results[i]
		case tokens.IsReuse(err):
			reuse++
		case errors.Is(err, tokens.ErrInvalidGrant):
			other++ // the session was already revoked by another caller
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != 1 || reuse < 1 || ok+reuse+other != n {
		t.Fatalf("strict mode: %d successes, %d reuse, %d refused; want exactly 1 success and a reuse", ok, reuse, other)
	}
	f.MustBeRefused(winner.RefreshToken, "the winner's token after the reuse revocation")
	f.MustBeDenied(winner.AccessToken, "the winner's access token after the reuse revocation")
}

// race runs a and b at the same moment.
func race(a, b func()) {
	var start, done sync.WaitGroup
	start.Add(1)
	done.Add(2)
	for _, fn := range []func(){a, b} {
		go func() {
			defer done.Done()
			start.Wait()
			fn()
		}()
	}
	start.Done()
	done.Wait()
}

func testRefreshRacesRevocation(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store)
	admin := tokens.Principal{UserID: uuid.New()}
	kinds := map[string]func(victim tokens.TokenPair, other tokens.TokenPair) error{
		"logout": func(v, _ tokens.TokenPair) error {
			return f.Svc.Logout(ctx, tokens.LogoutRequest{Principal: &v.Principal})
		},
		"admin revoke": func(v, _ tokens.TokenPair) error {
			return f.Svc.RevokeSession(ctx, admin, v.SessionID, tokens.ClientInfo{})
		},
		"password change": func(_, o tokens.TokenPair) error {
			return f.Svc.ChangePassword(ctx, o.Principal, Password, Password+"!", tokens.ClientInfo{})
		},
	}
	for name, revoke := range kinds {
		t.Run(name, func(t *testing.T) {
			for round := 0; round < 100; round++ {
				u := f.MustUser()
				victim, other := f.MustLogin(u), f.MustLogin(u)
				var rotated tokens.TokenPair
				var refreshErr, revokeErr error
				race(func() { rotated, refreshErr = f.Refresh(victim.RefreshToken) },
					func() { revokeErr = revoke(victim, other) })
				if revokeErr != nil {
					t.Fatalf("round %d: revoke: %v", round, revokeErr)
				}
				if refreshErr != nil && !errors.Is(refreshErr, tokens.ErrInvalidGrant) {
					t.Fatalf("round %d: refresh: %v", round, refreshErr)
				}
				if s := f.Session(victim.SessionID); s.RevokedAt == nil {
					t.Fatalf("round %d: session not revoked", round)
				}
				f.MustBeRefused(victim.RefreshToken, "original token after the race")
				f.MustBeDenied(victim.AccessToken, "original access token after the race")
				if refreshErr == nil {
					f.MustBeRefused(rotated.RefreshToken, "successor after the race")
					f.MustBeDenied(rotated.AccessToken, "successor's access token after the race")
				}
			}
		})
	}
}

func testLoginRacesDisable(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store)
	admin := tokens.Principal{UserID: uuid.New()}
	yes := true
	logins := 0
	for round := 0; round < 100; round++ {
		u := f.MustUser()
		var p tokens.TokenPair
		var loginErr, disableErr error
		race(func() { p, loginErr = f.Svc.Login(ctx, u.Email, Password, tokens.ClientInfo{}) },
			func() { _, disableErr = f.Svc.UpdateUser(ctx, admin, u.ID, &yes, nil, tokens.ClientInfo{}) })
		if disableErr != nil {
			t.Fatalf("round %d: disable: %v", round, disableErr)
		}
		if loginErr != nil && !errors.Is(loginErr, tokens.ErrInvalidGrant) {
			t.Fatalf("round %d: login: %v", round, loginErr)
		}
		active, err := store.ActiveSessions(ctx, u.ID, f.Clock.Now(), nil, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(active) != 0 {
			t.Fatalf("round %d: a disabled user has %d active sessions", round, len(active))
		}
		if loginErr == nil {
			logins++
			f.MustBeRefused(p.RefreshToken, "refresh token of a login that raced a disable")
			f.MustBeDenied(p.AccessToken, "access token of a login that raced a disable")
		}
	}
	t.Logf("%d of 100 logins won the race", logins)
}

func testLoginRacesPasswordChange(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store)
	for round := 0; round < 100; round++ {
		u := f.MustUser()
		owner := f.MustLogin(u)
		var p tokens.TokenPair
		var loginErr, changeErr error
		race(func() { p, loginErr = f.Svc.Login(ctx, u.Email, Password, tokens.ClientInfo{}) },
			func() {
				changeErr = f.Svc.ChangePassword(ctx, owner.Principal, Password, "a brand new password", tokens.ClientInfo{})
			})
		if changeErr != nil {
			t.Fatalf("round %d: change: %v", round, changeErr)
		}
		if loginErr == nil {
			f.MustBeRefused(p.RefreshToken, "a login with the old password that raced the change")
			f.MustBeDenied(p.AccessToken, "a login with the old password that raced the change")
		} else if !errors.Is(loginErr, tokens.ErrInvalidGrant) {
			t.Fatalf("round %d: login: %v", round, loginErr)
		}
	}
}

// hookedPasswords runs hook (once, if set) inside Verify, between the
// login's read of the user and its session insert.
type hookedPasswords struct {
	tokens.PasswordHasher
	hook func()
}

func (h *hookedPasswords) Verify(encoded, pw string) (bool, error) {
	if fn := h.hook; fn != nil {
		h.hook = nil
		fn()
	}
	return h.PasswordHasher.Verify(encoded, pw)
}

func testRoleRemovedDuringLogin(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store)
	hp := &hookedPasswords{PasswordHasher: FastPasswords}
	svc, err := tokens.NewService(store, hp, f.Cfg)
	if err != nil {
		t.Fatal(err)
	}
	u := f.MustUser("admin")
	none := []string{}
	hp.hook = func() {
		if _, err := f.Svc.UpdateUser(ctx, tokens.Principal{UserID: uuid.New()}, u.ID, nil, &none, tokens.ClientInfo{}); err != nil {
			t.Errorf("remove roles: %v", err)
		}
	}
	p, err := svc.Login(ctx, u.Email, Password, tokens.ClientInfo{})
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	if slices.Contains(p.Principal.Roles, "admin") {
		t.Fatalf("the login's token carries roles %v, removed before the session committed", p.Principal.Roles)
	}
	got := f.MustAuthenticate(p.AccessToken)
	if slices.Contains(got.Roles, "admin") {
		t.Fatalf("verified token carries %v", got.Roles)
	}
}

func testLoginRacesRoleRemoval(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store, WithNow(time.Now))
	admin := tokens.Principal{UserID: uuid.New()}
	u := f.MustUser("admin")
	none, back := []string{}, []string{"admin"}
	stale := 0
	for round := 0; round < 30; round++ {
		if _, err := f.Svc.UpdateUser(ctx, admin, u.ID, nil, &back, tokens.ClientInfo{}); err != nil {
			t.Fatal(err)
		}
		var p tokens.TokenPair
		var loginErr, patchErr error
		jitter := time.Duration(rand.Int64N(int64(2 * time.Millisecond))) // #nosec G404 -- simulated timing and load, not a secret
		race(func() { p, loginErr = f.Svc.Login(ctx, u.Email, Password, tokens.ClientInfo{}) },
			func() {
				time.Sleep(jitter)
				_, patchErr = f.Svc.UpdateUser(ctx, admin, u.ID, nil, &none, tokens.ClientInfo{})
			})
		if loginErr != nil || patchErr != nil {
			t.Fatalf("round %d: login %v, role removal %v", round, loginErr, patchErr)
		}
		if !slices.Contains(p.Principal.Roles, "admin") {
			continue // the removal committed first: the token has the new roles
		}
		// The login committed first: the removal must have revoked its
		// session, so the admin token is refused everywhere.
		if _, err := f.Svc.Authenticate(p.AccessToken); !errors.Is(err, tokens.ErrInvalidToken) {
			stale++
			t.Errorf("round %d: a token with a removed admin role still authenticates (%v)", round, err)
		}
		f.MustBeRefused(p.RefreshToken, "the refresh token of a session whose admin role was removed")
	}
	if stale > 0 {
		t.Fatalf("%d of 30 logins kept a removed role", stale)
	}
}

func testSessionCapUnderConcurrency(t *testing.T, store tokens.Store) {
	const limit = 3
	f := NewFixture(t, store, func(c *tokens.Config) { c.MaxSessionsPerUser = limit })
	twin := f.Twin()
	u := f.MustUser()
	for round := 0; round < 5; round++ {
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				svc := f.Svc
				if i%2 == 1 {
					svc = twin.Svc
				}
				if _, err := svc.Login(context.Background(), u.Email, Password, tokens.ClientInfo{}); err != nil {
					t.Errorf("login: %v", err)
				}
			}()
		}
		wg.Wait()
		active, err := f.Svc.Sessions(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(active) > limit {
			t.Fatalf("round %d: %d active sessions after concurrent logins, cap %d", round, len(active), limit)
		}
	}
}
