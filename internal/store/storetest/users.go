package storetest

// Users, logins and the session cap.

import (
	"errors"
	"github.com/google/uuid"
	"github.com/rotorauth/rotor/internal/tokens"
	"strings"
	"testing"
	"time"
)

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

func testSessionCap(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store, func(c *tokens.Config) { c.MaxSessionsPerUser = 3 })
	u := f.MustUser()
	s1 := f.MustLogin(u)
	f.Clock.Advance(time.Second)
	s2 := f.MustLogin(u)
	f.Clock.Advance(time.Second)
	s3 := f.MustLogin(u)
	f.Clock.Advance(time.Second)
	s1 = f.MustRefresh(s1.RefreshToken) // s1 is now the most recently used; s2 the least
	f.Clock.Advance(time.Second)
	s4 := f.MustLogin(u)
	active, err := f.Svc.Sessions(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(active) != 3 {
		t.Fatalf("%d active sessions after a login past the cap of 3", len(active))
	}
	gone := f.Session(s2.SessionID)
	if gone.RevokedAt == nil || gone.RevokedReason != tokens.ReasonSessionLimit {
		t.Fatalf("least recently used session: revoked %v as %q, want %q", gone.RevokedAt, gone.RevokedReason, tokens.ReasonSessionLimit)
	}
	f.MustBeDenied(s2.AccessToken, "an access token of an evicted session")
	f.MustBeRefused(s2.RefreshToken, "a refresh token of an evicted session")
	for _, p := range []tokens.TokenPair{s1, s3, s4} {
		f.MustAuthenticate(p.AccessToken)
	}
	evs, err := store.Audit(ctx, u.ID, 0, 100)
	if err != nil || !hasKind(evs, tokens.EventSessionEvicted) {
		t.Fatalf("audit after an eviction: %v (err %v), want %s", kinds(evs), err, tokens.EventSessionEvicted)
	}
	// Another user's sessions are not counted.
	other := f.MustUser()
	o := f.MustLogin(other)
	f.MustLogin(u)
	f.MustAuthenticate(o.AccessToken)
}
