package storetest

// Logout and the rotation rules at every endpoint that accepts a refresh token.

import (
	"errors"
	"github.com/rotorauth/rotor/internal/tokens"
	"testing"
	"time"
)

func testLogout(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store)
	u := f.MustUser()
	a, b, c := f.MustLogin(u), f.MustLogin(u), f.MustLogin(u)
	if list, _ := f.Svc.Sessions(ctx, u.ID); len(list) != 3 {
		t.Fatalf("Sessions lists %d, want 3", len(list))
	}
	if err := f.Svc.Logout(ctx, tokens.LogoutRequest{Principal: &a.Principal}); err != nil {
		t.Fatal(err)
	}
	f.MustBeRefused(a.RefreshToken, "after logout")
	f.MustBeDenied(a.AccessToken, "after logout")
	f.MustAuthenticate(b.AccessToken)
	// Logout by refresh token alone.
	if err := f.Svc.Logout(ctx, tokens.LogoutRequest{RefreshToken: b.RefreshToken}); err != nil {
		t.Fatal(err)
	}
	f.MustBeRefused(b.RefreshToken, "after logout by refresh token")
	f.MustBeDenied(b.AccessToken, "after logout by refresh token")
	// Another user cannot revoke c, and gets not-found.
	stranger := f.MustLogin(f.MustUser())
	if err := f.Svc.RevokeOwnSession(ctx, stranger.Principal, c.SessionID, tokens.ClientInfo{}); !errors.Is(err, tokens.ErrNotFound) {
		t.Fatalf("revoking another user's session: %v, want not found", err)
	}
	f.MustRefresh(c.RefreshToken)
	d := f.MustLogin(u)
	if err := f.Svc.Logout(ctx, tokens.LogoutRequest{Principal: &d.Principal, Global: true}); err != nil {
		t.Fatal(err)
	}
	if list, _ := f.Svc.Sessions(ctx, u.ID); len(list) != 0 {
		t.Fatalf("after global logout %d sessions remain", len(list))
	}
	f.MustAuthenticate(stranger.AccessToken)
}

func testLogoutWithDeadToken(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store, WithGrace(0))
	u := f.MustUser()
	stolen := f.MustLogin(u)
	next := f.MustRefresh(stolen.RefreshToken)
	f.MustRefresh(next.RefreshToken)
	other := f.MustLogin(u)
	// stolen is now two rotations old: it may not end the user's sessions;
	// presenting it is reuse, which ends its own session only...
	if err := f.Svc.Logout(ctx, tokens.LogoutRequest{RefreshToken: stolen.RefreshToken, Global: true}); !errors.Is(err, tokens.ErrInvalidGrant) || !tokens.IsReuse(err) {
		t.Fatalf("global logout with a used token: %v, want invalid_grant for reuse", err)
	}
	if s := f.Session(stolen.SessionID); s.RevokedAt == nil || s.RevokedReason != tokens.ReasonReuseDetected {
		t.Fatalf("a used token presented to logout: session %v %q, want revoked for reuse", s.RevokedAt, s.RevokedReason)
	}
	f.MustAuthenticate(other.AccessToken)
	fresh := f.MustLogin(u)
	f.MustAuthenticate(fresh.AccessToken)
	// ...and once its session is dead, not the user's new sessions either.
	f.MustBeRefused(stolen.RefreshToken, "a used token of a session revoked for reuse")
	if err := f.Svc.Logout(ctx, tokens.LogoutRequest{RefreshToken: stolen.RefreshToken, Global: true}); !errors.Is(err, tokens.ErrInvalidGrant) {
		t.Fatalf("global logout with a token of a revoked session: %v, want invalid_grant", err)
	}
	f.MustAuthenticate(fresh.AccessToken)
	f.MustRefresh(fresh.RefreshToken)
}

func testReuseAtEveryEndpoint(t *testing.T, store tokens.Store) {
	for _, c := range []struct {
		name    string
		present func(f *Fixture, rt string) error
		wantErr bool
	}{
		{"logout", func(f *Fixture, rt string) error {
			return f.Svc.Logout(ctx, tokens.LogoutRequest{RefreshToken: rt})
		}, true},
		{"global logout", func(f *Fixture, rt string) error {
			return f.Svc.Logout(ctx, tokens.LogoutRequest{RefreshToken: rt, Global: true})
		}, true},
		{"revoke (RFC 7009 answers 200 anyway)", func(f *Fixture, rt string) error {
			return f.Svc.RevokeToken(ctx, rt, "refresh_token", tokens.ClientInfo{})
		}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := NewFixture(t, store)
			u := f.MustUser()
			old := f.MustLogin(u)
			other := f.MustLogin(u)
			cur := f.MustRefresh(old.RefreshToken)
			f.Clock.Advance(11 * time.Second) // past the 10 s window
			err := c.present(f, old.RefreshToken)
			if c.wantErr && !tokens.IsReuse(err) {
				t.Fatalf("a used token past the window: %v, want invalid_grant for reuse", err)
			}
			if !c.wantErr && err != nil {
				t.Fatalf("a used token past the window: %v, want nil", err)
			}
			if s := f.Session(old.SessionID); s.RevokedAt == nil || s.RevokedReason != tokens.ReasonReuseDetected {
				t.Fatalf("session after reuse: revoked %v as %q, want reuse_detected", s.RevokedAt, s.RevokedReason)
			}
			f.MustBeDenied(cur.AccessToken, "the current access token of a session revoked for reuse")
			f.MustBeRefused(cur.RefreshToken, "the current refresh token of a session revoked for reuse")
			f.MustAuthenticate(other.AccessToken) // the user's other session lives
			f.MustRefresh(other.RefreshToken)
			if audit, err := store.Audit(ctx, u.ID, 0, 50); err != nil || !hasKind(audit, tokens.EventReuseDetected) || hasKind(audit, tokens.EventLogout) {
				t.Fatalf("audit after reuse at %s: %v (err %v), want reuse_detected and no logout", c.name, kinds(audit), err)
			}
		})
	}
}

func testLogoutWithGracePredecessor(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store)
	u := f.MustUser()
	t0 := f.MustLogin(u)
	other := f.MustLogin(u)
	t1 := f.MustRefresh(t0.RefreshToken)
	f.Clock.Advance(5 * time.Second) // inside the window: t0 is still in a client's hands
	if err := f.Svc.Logout(ctx, tokens.LogoutRequest{RefreshToken: t0.RefreshToken}); err != nil {
		t.Fatalf("logout with the predecessor inside the window: %v", err)
	}
	if s := f.Session(t0.SessionID); s.RevokedAt == nil || s.RevokedReason != tokens.ReasonLogout {
		t.Fatalf("session after logout: revoked %v as %q, want logout", s.RevokedAt, s.RevokedReason)
	}
	f.MustBeDenied(t1.AccessToken, "an access token of a logged-out session")
	f.MustAuthenticate(other.AccessToken)
	// Logging out again is a no-op, not an error.
	if err := f.Svc.Logout(ctx, tokens.LogoutRequest{RefreshToken: t1.RefreshToken}); err != nil {
		t.Fatalf("second logout: %v", err)
	}
	if err := f.Svc.Logout(ctx, tokens.LogoutRequest{RefreshToken: t1.RefreshToken, Global: true}); !errors.Is(err, tokens.ErrInvalidGrant) {
		t.Fatalf("global logout with a token of an ended session: %v, want invalid_grant", err)
	}
	f.MustAuthenticate(other.AccessToken)
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
