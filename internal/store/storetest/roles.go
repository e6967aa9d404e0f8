package storetest

// A login racing a role removal: the token carries the roles of the row the
// session committed against, so no token ever holds a role the user lost
// before the login committed (a removed admin cannot restore itself).

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rotorauth/rotor/internal/tokens"
)

func roleTests() []namedTest {
	return []namedTest{
		{"race: a role removed during the password check is not in the login's token", testRoleRemovedDuringLogin},
		{"race: login against role removal, 30 rounds", testLoginRacesRoleRemoval},
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
