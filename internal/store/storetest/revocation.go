package storetest

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rotorauth/rotor/internal/tokens"
)

var ctx = context.Background()

func testUsers(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store)
	email := Email()
	u, err := f.Svc.Signup(ctx, "  "+strings.ToUpper(email)+" ", Password, nil)
	if err != nil {
		t.Fatal(err)
	}
	if u.Email != email || u.PasswordHash != "" || u.Roles == nil {
		t.Fatalf("Signup returned %+v, want normalized email, no hash, empty roles", u)
	}
	if _, err := f.Svc.Signup(ctx, email, Password, nil); !errors.Is(err, tokens.ErrConflict) {
		t.Fatalf("second sign-up with the same email: %v, want conflict", err)
	}
	for _, bad := range []struct{ email, pw string }{
		{"not-an-email", Password}, {Email(), "short"}, {"a\u200b" + Email(), Password},
		{Email(), strings.Repeat("x", 1025)},
	} {
		if _, err := f.Svc.Signup(ctx, bad.email, bad.pw, nil); !errors.Is(err, tokens.ErrInvalidInput) {
			t.Errorf("Signup(%q, %d-byte password) = %v, want invalid input", bad.email, len(bad.pw), err)
		}
	}
	// A 64-character password works.
	long := strings.Repeat("p4ss", 16)
	u2, err := f.Svc.Signup(ctx, Email(), long, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Svc.Login(ctx, u2.Email, long, tokens.ClientInfo{}); err != nil {
		t.Fatalf("login with a 64-character password: %v", err)
	}
}

func testLoginRefusals(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store)
	u := f.MustUser()
	disabled := f.MustUser()
	yes := true
	admin := tokens.Principal{UserID: uuid.New()}
	if _, err := f.Svc.UpdateUser(ctx, admin, disabled.ID, &yes, nil, tokens.ClientInfo{}); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, email, pw string }{
		{"wrong password", u.Email, "wrong password!"},
		{"unknown email", Email(), Password},
		{"disabled user", disabled.Email, Password},
		{"zero-width variant of the email", "\u200b" + u.Email, Password},
		{"homoglyph of the email (Cyrillic а)", strings.Replace(u.Email, "u", "\u0443", 1), Password},
		{"fullwidth variant of the email", strings.Replace(u.Email, "@", "\uff20", 1), Password},
		{"malformed email", "nobody", Password},
	}
	var first string
	for _, c := range cases {
		_, err := f.Svc.Login(ctx, c.email, c.pw, tokens.ClientInfo{})
		if !errors.Is(err, tokens.ErrInvalidGrant) {
			t.Fatalf("%s: %v, want invalid_grant", c.name, err)
		}
		if first == "" {
			first = err.Error()
		} else if err.Error() != first {
			t.Fatalf("%s: %q differs from %q: the answer reveals something", c.name, err.Error(), first)
		}
	}
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

func testPasswordChange(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store)
	u := f.MustUser()
	keep, lose := f.MustLogin(u), f.MustLogin(u)
	if err := f.Svc.ChangePassword(ctx, keep.Principal, "not the password", "new password 1", tokens.ClientInfo{}); !errors.Is(err, tokens.ErrInvalidGrant) {
		t.Fatalf("wrong current password: %v, want invalid_grant", err)
	}
	if err := f.Svc.ChangePassword(ctx, keep.Principal, Password, "new password 1", tokens.ClientInfo{}); err != nil {
		t.Fatal(err)
	}
	f.MustBeRefused(lose.RefreshToken, "other session after password change")
	f.MustBeDenied(lose.AccessToken, "other session's access token after password change")
	f.MustAuthenticate(keep.AccessToken)
	f.MustRefresh(keep.RefreshToken)
	if _, err := f.Svc.Login(ctx, u.Email, Password, tokens.ClientInfo{}); !errors.Is(err, tokens.ErrInvalidGrant) {
		t.Fatalf("login with the old password: %v", err)
	}
	if _, err := f.Svc.Login(ctx, u.Email, "new password 1", tokens.ClientInfo{}); err != nil {
		t.Fatalf("login with the new password: %v", err)
	}
}

func testAdmin(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store)
	admin := f.MustLogin(f.MustUser("admin")).Principal
	u := f.MustUser()
	a, b, c := f.MustLogin(u), f.MustLogin(u), f.MustLogin(u)
	if err := f.Svc.RevokeSession(ctx, admin, a.SessionID, tokens.ClientInfo{}); err != nil {
		t.Fatal(err)
	}
	f.MustBeRefused(a.RefreshToken, "after admin revoke")
	if err := f.Svc.RevokeSession(ctx, admin, uuid.New(), tokens.ClientInfo{}); !errors.Is(err, tokens.ErrNotFound) {
		t.Fatalf("revoking an unknown session: %v, want not found", err)
	}
	n, err := f.Svc.RevokeUserSessions(ctx, admin, u.ID, tokens.ClientInfo{})
	if err != nil || n != 2 {
		t.Fatalf("RevokeUserSessions = %d, %v; want 2", n, err)
	}
	f.MustBeDenied(b.AccessToken, "after revoke all")
	f.MustBeRefused(c.RefreshToken, "after revoke all")
	d := f.MustLogin(u)
	yes, no := true, false
	roles := []string{"introspect"}
	got, err := f.Svc.UpdateUser(ctx, admin, u.ID, &yes, &roles, tokens.ClientInfo{})
	if err != nil || !got.Disabled || len(got.Roles) != 1 || got.Roles[0] != "introspect" {
		t.Fatalf("UpdateUser = %+v, %v", got, err)
	}
	f.MustBeDenied(d.AccessToken, "after disable")
	f.MustBeRefused(d.RefreshToken, "after disable")
	if _, err := f.Svc.Login(ctx, u.Email, Password, tokens.ClientInfo{}); !errors.Is(err, tokens.ErrInvalidGrant) {
		t.Fatalf("login of a disabled user: %v", err)
	}
	if _, err := f.Svc.UpdateUser(ctx, admin, u.ID, &no, nil, tokens.ClientInfo{}); err != nil {
		t.Fatal(err)
	}
	e := f.MustLogin(u)
	if p := f.MustAuthenticate(e.AccessToken); len(p.Roles) != 1 || p.Roles[0] != "introspect" {
		t.Fatalf("roles in the new access token: %v", p.Roles)
	}
	// Re-enabling un-revokes nothing.
	f.MustBeRefused(d.RefreshToken, "old session after re-enable")
	if _, err := f.Svc.UpdateUser(ctx, admin, uuid.New(), &yes, nil, tokens.ClientInfo{}); !errors.Is(err, tokens.ErrNotFound) {
		t.Fatalf("updating an unknown user: %v", err)
	}
}

func testRevokeEndpoint(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store)
	u := f.MustUser()
	a, b := f.MustLogin(u), f.MustLogin(u)
	if err := f.Svc.RevokeToken(ctx, a.RefreshToken, "refresh_token", tokens.ClientInfo{}); err != nil {
		t.Fatal(err)
	}
	f.MustBeRefused(a.RefreshToken, "after RFC 7009 revoke of the refresh token")
	f.MustBeDenied(a.AccessToken, "access token of a session revoked through RFC 7009")
	if err := f.Svc.RevokeToken(ctx, b.AccessToken, "", tokens.ClientInfo{}); err != nil {
		t.Fatal(err)
	}
	f.MustBeDenied(b.AccessToken, "after RFC 7009 revoke of the access token")
	next := f.MustRefresh(b.RefreshToken) // only that access token was revoked
	f.MustAuthenticate(next.AccessToken)
	for _, unknown := range []string{"rt_unknown", "garbage", "", "a.b.c"} {
		if err := f.Svc.RevokeToken(ctx, unknown, "", tokens.ClientInfo{}); err != nil {
			t.Fatalf("revoking %q: %v, want no error", unknown, err)
		}
	}
}

func testTwinSync(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store)
	twin := f.Twin()
	if err := twin.Svc.SyncRevocations(ctx); err != nil {
		t.Fatal(err)
	}
	p := f.MustLogin(f.MustUser())
	twin.MustAuthenticate(p.AccessToken)
	if err := f.Svc.Logout(ctx, tokens.LogoutRequest{Principal: &p.Principal}); err != nil {
		t.Fatal(err)
	}
	if err := twin.Svc.SyncRevocations(ctx); err != nil {
		t.Fatal(err)
	}
	twin.MustBeDenied(p.AccessToken, "on another instance after sync")
	// A third instance starting now loads the revocation at start.
	third := f.Twin()
	if err := third.Svc.FullSyncRevocations(ctx); err != nil {
		t.Fatal(err)
	}
	third.MustBeDenied(p.AccessToken, "on an instance started after the revocation")
	// Once every token it covers has expired, the entry is gone.
	f.Clock.Advance(f.Cfg.AccessTTL + 2*time.Minute) // past TTL, leeway and margin
	revs, _, err := store.Revocations(ctx, tokens.SyncCursor{}, f.Clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range revs {
		if r.Subject == p.SessionID {
			t.Fatal("an expired denylist entry is still listed")
		}
	}
}

func testAudit(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store)
	u := f.MustUser()
	p := f.MustLogin(u)
	_, _ = f.Svc.Login(ctx, u.Email, "wrong password", tokens.ClientInfo{IP: "198.51.100.7"})
	p = f.MustRefresh(p.RefreshToken)
	if err := f.Svc.Logout(ctx, tokens.LogoutRequest{Principal: &p.Principal}); err != nil {
		t.Fatal(err)
	}
	evs, _, err := f.Svc.Audit(ctx, u.ID, 0, 50)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[tokens.EventKind]bool{}
	for i, ev := range evs {
		kinds[ev.Kind] = true
		if i > 0 && ev.ID >= evs[i-1].ID {
			t.Fatal("audit events are not newest first")
		}
		if ev.Kind == tokens.EventLoginFailed && ev.IP != "198.51.100.7" {
			t.Errorf("login_failed ip = %q", ev.IP)
		}
		for k, v := range ev.Detail {
			if strings.Contains(v, "rt_") || strings.Contains(v, Password) {
				t.Fatalf("audit detail %s leaks a secret", k)
			}
		}
	}
	for _, k := range []tokens.EventKind{tokens.EventLogin, tokens.EventLoginFailed, tokens.EventRefresh, tokens.EventLogout} {
		if !kinds[k] {
			t.Errorf("no %q event in %v", k, kinds)
		}
	}
	if lim, _, _ := f.Svc.Audit(ctx, u.ID, 0, 2); len(lim) != 2 {
		t.Errorf("limit 2 gave %d events", len(lim))
	}
}

func testPurge(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store, WithSessionMax(time.Hour))
	u := f.MustUser()
	old := f.MustLogin(u)
	gone := f.MustLogin(u)
	if err := f.Svc.Logout(ctx, tokens.LogoutRequest{Principal: &gone.Principal}); err != nil {
		t.Fatal(err)
	}
	f.Clock.Advance(2 * time.Hour)
	fresh := f.MustLogin(u)
	n, err := f.Svc.Purge(ctx, 1)
	if err != nil || n < 2 {
		t.Fatalf("Purge = %d, %v; want at least the expired session and the expired denylist entry", n, err)
	}
	if _, err := store.Session(ctx, old.SessionID); !errors.Is(err, tokens.ErrNotFound) {
		t.Fatalf("expired session still stored: %v", err)
	}
	if _, _, err := store.SessionBySelector(ctx, Selector(t, old.RefreshToken)); !errors.Is(err, tokens.ErrNotFound) {
		t.Fatalf("token of a purged session still stored: %v", err)
	}
	revs, _, err := store.Revocations(ctx, tokens.SyncCursor{}, f.Clock.Now().Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range revs {
		if r.Subject == gone.SessionID {
			t.Fatal("an expired denylist entry survived the purge")
		}
	}
	f.MustRefresh(fresh.RefreshToken)

	// Used tokens of a live session go once expired; the session stays.
	g := NewFixture(t, store)
	t0 := g.MustLogin(g.MustUser())
	g.Clock.Advance(300 * time.Hour)
	t1 := g.MustRefresh(t0.RefreshToken)
	g.Clock.Advance(40 * time.Hour) // t0 expired, t1 not
	if _, err := g.Svc.Purge(ctx, 100); err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.SessionBySelector(ctx, Selector(t, t0.RefreshToken)); !errors.Is(err, tokens.ErrNotFound) {
		t.Fatalf("an expired used token survived the purge: %v", err)
	}
	g.MustBeRefused(t0.RefreshToken, "a purged expired token")
	g.MustRefresh(t1.RefreshToken)
}
