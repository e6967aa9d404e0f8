package storetest

// Lifetimes at the edges: an access token never outlives its session, and
// a grace retry near a refresh token's end still gets its successor.

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rotorauth/rotor/internal/tokens"
)

func lifetimeTests() []namedTest {
	return []namedTest{
		{"lifetimes: an access token never outlives its session", testAccessCappedAtSessionEnd},
		{"lifetimes: a grace retry of a token that expired after its rotation gets the successor", testGraceRetryAfterTokenExpiry},
		{"logout: a dead refresh token beside a valid access token still ends the access token's session", testLogoutDeadRefreshWithAccess},
		{"race: concurrent logins past the session cap end with at most the cap", testSessionCapUnderConcurrency},
	}
}

func testAccessCappedAtSessionEnd(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store, WithSessionMax(time.Hour))
	t0 := f.MustLogin(f.MustUser())
	end := f.Session(t0.SessionID).ExpiresAt
	f.Clock.Advance(time.Hour - 5*time.Minute)
	t1 := f.MustRefresh(t0.RefreshToken)
	p := f.MustAuthenticate(t1.AccessToken)
	if p.ExpiresAt.After(end) {
		t.Fatalf("access token expires at %v, after its session's end %v", p.ExpiresAt, end)
	}
	if t1.ExpiresIn > int64((5*time.Minute)/time.Second) || t1.ExpiresIn < 1 {
		t.Fatalf("expires_in %d for a session with 5 minutes left", t1.ExpiresIn)
	}
}

func testGraceRetryAfterTokenExpiry(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store, func(c *tokens.Config) { c.RefreshTTL = time.Minute })
	t0 := f.MustLogin(f.MustUser())
	f.Clock.Advance(time.Minute - 500*time.Millisecond)
	t1 := f.MustRefresh(t0.RefreshToken) // rotated while valid
	f.Clock.Advance(time.Second)         // t0 has expired since; t1 lives
	again, err := f.Refresh(t0.RefreshToken)
	if err != nil || again.RefreshToken != t1.RefreshToken {
		t.Fatalf("grace retry of a token that expired after its rotation: %v", err)
	}
	f.Clock.Advance(10 * time.Second) // past the window: refused, not reuse (§2.5)
	f.MustBeRefused(t0.RefreshToken, "an expired used token past the window")
	if s := f.Session(t0.SessionID); s.RevokedAt != nil {
		t.Fatalf("an expired used token revoked the session as %q", s.RevokedReason)
	}
}

func testLogoutDeadRefreshWithAccess(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store)
	u := f.MustUser()
	p := f.MustLogin(u)
	other := f.MustLogin(u)
	dead := "rt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	if err := f.Svc.Logout(ctx, tokens.LogoutRequest{Principal: &p.Principal, RefreshToken: dead}); err != nil {
		t.Fatalf("logout with a valid access token and an unknown refresh token: %v", err)
	}
	if s := f.Session(p.SessionID); s.RevokedAt == nil {
		t.Fatal("the access token's session is still live")
	}
	f.MustBeDenied(p.AccessToken, "the access token of a logged-out session")
	f.MustAuthenticate(other.AccessToken)
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
