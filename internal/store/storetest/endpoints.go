package storetest

// The rotation rules hold at every endpoint that accepts a refresh token:
// logout and RFC 7009 revocation judge the presented token as Refresh does.

import (
	"errors"
	"testing"
	"time"

	"github.com/rotorauth/rotor/internal/tokens"
)

func endpointTests() []namedTest {
	return []namedTest{
		{"reuse: a token rotated away past the window is reuse at logout, global logout and revoke", testReuseAtEveryEndpoint},
		{"reuse: the predecessor inside the window still logs its session out", testLogoutWithGracePredecessor},
	}
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
