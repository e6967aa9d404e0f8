package storetest

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rotorauth/rotor/internal/tokens"
)

// Cases found by adversarial review; each failed before its fix.
func reviewTests() []namedTest {
	return []namedTest{
		{"race: login with the old password against a password change", testLoginRacesPasswordChange},
		{"logout: a used refresh token is reuse: it ends its own session, never the user's others", testLogoutWithDeadToken},
		{"rotation: an expired used token changes nothing", testExpiredUsedToken},
		{"rotation: a clock behind the rotation is never reuse", testGraceWithClockBehind},
		{"revocation: a just-expired session's access tokens are denied too", testRevokeJustExpired},
		{"revocation: taking a role away ends the user's sessions", testRolesReduced},
		{"rotation: the one-statement fast path applies every rule", testRotateActiveRules},
		{"rotation: the fast path refuses what the locked path refuses", testFastPathRefusals},
		{"rotation: the fast path agrees with tokens.Decide on every kind of state", testFastPathAgreesWithDecide},
		{"rotation: fast path, locked path and grace replay agree on expiry and claims", testFastSlowConsistent},
		{"revocation: concurrent role edits cannot hide a lost role", testRoleLossDecidedOnLockedRow},
	}
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

func testExpiredUsedToken(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store)
	t0 := f.MustLogin(f.MustUser())
	f.Clock.Advance(300 * time.Hour)
	t1 := f.MustRefresh(t0.RefreshToken) // t0 used; t1 fresh for 336h
	f.Clock.Advance(40 * time.Hour)      // t0 is past its expiry, t1 is not
	f.MustBeRefused(t0.RefreshToken, "an expired used token")
	if s := f.Session(t0.SessionID); s.RevokedAt != nil {
		t.Fatal("an expired used token revoked the session (SPEC §2.5: changes nothing)")
	}
	f.MustRefresh(t1.RefreshToken)
}

// testGraceWithClockBehind (frozen clock): a replay read by a clock behind
// the rotation's is never reuse (SPEC §2.9). Within MaxClockSkew it is a
// grace replay; five minutes behind it is refused as unavailable and changes
// nothing.
func testGraceWithClockBehind(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store)
	t0 := f.MustLogin(f.MustUser())
	t1 := f.MustRefresh(t0.RefreshToken)
	f.Clock.Advance(-tokens.MaxClockSkew / 2)
	if p, err := f.Refresh(t0.RefreshToken); err != nil || p.RefreshToken != t1.RefreshToken {
		t.Fatalf("replay under a clock %v behind: %v, want the same successor", tokens.MaxClockSkew/2, err)
	}
	f.Clock.Advance(-5 * time.Minute) // an instance whose clock lags badly
	if _, err := f.Refresh(t0.RefreshToken); !errors.Is(err, tokens.ErrUnavailable) || tokens.IsReuse(err) {
		t.Fatalf("replay under a clock 5m behind: %v, want unavailable (never reuse)", err)
	}
	if s := f.Session(t0.SessionID); s.RevokedAt != nil {
		t.Fatalf("a lagging clock revoked the session as %q", s.RevokedReason)
	}
	f.Clock.Advance(5*time.Minute + tokens.MaxClockSkew/2)
	f.MustRefresh(t1.RefreshToken)
}

func testRevokeJustExpired(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store, WithSessionMax(time.Hour))
	u := f.MustUser()
	t0 := f.MustLogin(u)
	f.Clock.Advance(time.Hour - time.Second)
	last := f.MustRefresh(t0.RefreshToken) // an access token valid 15 more minutes
	f.Clock.Advance(time.Minute)           // the session has ended, the token lives
	if _, err := f.Svc.RevokeUserSessions(ctx, tokens.Principal{UserID: uuid.New()}, u.ID, tokens.ClientInfo{}); err != nil {
		t.Fatal(err)
	}
	f.MustBeDenied(last.AccessToken, "access token of a just-expired session after revoke-all")
}

func testRolesReduced(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store)
	u := f.MustUser("admin", "introspect")
	p := f.MustLogin(u)
	admin := tokens.Principal{UserID: uuid.New()}
	more := []string{"admin", "introspect", "extra"}
	if _, err := f.Svc.UpdateUser(ctx, admin, u.ID, nil, &more, tokens.ClientInfo{}); err != nil {
		t.Fatal(err)
	}
	f.MustAuthenticate(p.AccessToken) // adding a role ends nothing
	less := []string{"introspect"}
	if _, err := f.Svc.UpdateUser(ctx, admin, u.ID, nil, &less, tokens.ClientInfo{}); err != nil {
		t.Fatal(err)
	}
	f.MustBeDenied(p.AccessToken, "an admin token after the admin role was taken away")
	f.MustBeRefused(p.RefreshToken, "a session whose user lost a role")
}

// testRotateActiveRules checks the fast path at the store level: a wrong
// verifier hash, a used token or a revoked session rotate nothing.
func testRotateActiveRules(t *testing.T, store tokens.Store) {
	fr := fastRotator(t, store)
	f := NewFixture(t, store)
	t0 := f.MustLogin(f.MustUser())
	sel := Selector(t, t0.RefreshToken)
	_, rec, err := store.SessionBySelector(ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	now := f.Clock.Now()
	clock := func() time.Time { return now }
	next := func(b byte) tokens.RefreshRecord {
		s := FakeSelector(sel, b)
		return tokens.RefreshRecord{Selector: s, VerifierHash: rec.VerifierHash}
	}
	wrong := append([]byte(nil), rec.VerifierHash...)
	wrong[len(wrong)-1] ^= 1
	if _, ok, err := fr.RotateActive(ctx, tokens.ActiveRotation{Selector: sel, VerifierHash: wrong, Successor: next(0xA1), RefreshTTL: time.Hour,
		Now: clock, Event: tokens.AuditEvent{Kind: tokens.EventRefresh}}); ok || err != nil {
		t.Fatalf("a wrong verifier hash rotated: %v %v", ok, err)
	}
	st, ok, err := fr.RotateActive(ctx, tokens.ActiveRotation{Selector: sel, VerifierHash: rec.VerifierHash, Successor: next(0xA2), RefreshTTL: time.Hour,
		Now: clock, Event: tokens.AuditEvent{Kind: tokens.EventRefresh}})
	if !ok || err != nil || st.Session.ID != t0.SessionID || st.User.ID == uuid.Nil || !st.Session.Chain.ActiveExpiresAt.Equal(now.Add(time.Hour)) {
		t.Fatalf("the active token did not rotate: %v %v %+v", ok, err, st)
	}
	if _, ok, _ := fr.RotateActive(ctx, tokens.ActiveRotation{Selector: sel, VerifierHash: rec.VerifierHash, Successor: next(0xA3), RefreshTTL: time.Hour,
		Now: clock, Event: tokens.AuditEvent{Kind: tokens.EventRefresh}}); ok {
		t.Fatal("a used token rotated again on the fast path")
	}
	s := f.Session(t0.SessionID)
	if !bytes.Equal(s.Chain.ActiveSelector, FakeSelector(sel, 0xA2)) || !bytes.Equal(s.Chain.PrevSelector, sel) {
		t.Fatal("the chain is not t0 -> A2")
	}
}

// testRoleLossDecidedOnLockedRow: the store decides whether a role was lost
// from the row it updates, not from an earlier read.
func testRoleLossDecidedOnLockedRow(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store)
	u := f.MustUser()
	p := f.MustLogin(u)
	now := f.Clock.Now()
	rv := tokens.SessionRevocation{UserID: u.ID, Reason: tokens.ReasonRolesReduced, At: now, DenyUntil: now.Add(time.Hour),
		Event: tokens.AuditEvent{At: now, Kind: tokens.EventRevoked}}
	admin := []string{"admin"}
	none := []string{}
	// Another admin granted "admin" just now; this edit, prepared from the
	// old (empty) roles, sets none: a loss on the row as it is.
	if _, _, err := store.UpdateUser(ctx, tokens.UserUpdate{ID: u.ID, Roles: &admin, RevokeOnRoleLoss: &rv}); err != nil {
		t.Fatal(err)
	}
	f.MustAuthenticate(p.AccessToken) // a gain ends nothing
	_, revs, err := store.UpdateUser(ctx, tokens.UserUpdate{ID: u.ID, Roles: &none, RevokeOnRoleLoss: &rv})
	if err != nil || len(revs) != 1 {
		t.Fatalf("taking admin away revoked %d sessions (%v), want 1", len(revs), err)
	}
}
