package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rotorauth/rotor/internal/tokens"
)

var ctx = context.Background()

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

// counts returns the number of unexpired denylist entries and the user's
// audit events.
func counts(t *testing.T, f *Fixture, userID uuid.UUID) (revs, events int) {
	t.Helper()
	rs, _, err := f.Store.Revocations(ctx, tokens.SyncCursor{}, f.Clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	evs, err := f.Store.Audit(ctx, userID, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	return len(rs), len(evs)
}

func testIdempotentRevocation(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store)
	twin := f.Twin() // another instance, whose denylist has not heard yet
	u := f.MustUser()
	a, b := f.MustLogin(u), f.MustLogin(u)
	if err := f.Svc.RevokeToken(ctx, a.AccessToken, "access_token", tokens.ClientInfo{}); err != nil {
		t.Fatal(err)
	}
	revs0, evs0 := counts(t, f, u.ID)
	for i := 0; i < 5; i++ {
		for _, svc := range []*tokens.Service{f.Svc, twin.Svc} {
			if err := svc.RevokeToken(ctx, a.AccessToken, "access_token", tokens.ClientInfo{}); err != nil {
				t.Fatalf("repeated revoke: %v", err)
			}
		}
	}
	if revs, evs := counts(t, f, u.ID); revs != revs0 || evs != evs0 {
		t.Fatalf("repeating a token revocation wrote rows: denylist %d -> %d, audit %d -> %d", revs0, revs, evs0, evs)
	}
	f.MustBeDenied(a.AccessToken, "a revoked access token")

	// A session revoked once: its refresh token and access tokens revoke
	// nothing more, through either instance.
	if err := f.Svc.RevokeToken(ctx, b.RefreshToken, "refresh_token", tokens.ClientInfo{}); err != nil {
		t.Fatal(err)
	}
	revs1, evs1 := counts(t, f, u.ID)
	if revs1 != revs0+1 {
		t.Fatalf("revoking a session wrote %d denylist entries, want 1", revs1-revs0)
	}
	for _, svc := range []*tokens.Service{f.Svc, twin.Svc} {
		for _, tok := range []string{b.RefreshToken, b.AccessToken} {
			if err := svc.RevokeToken(ctx, tok, "", tokens.ClientInfo{}); err != nil {
				t.Fatalf("repeated revoke: %v", err)
			}
		}
	}
	if err := f.Svc.Logout(ctx, tokens.LogoutRequest{RefreshToken: b.RefreshToken}); err != nil {
		t.Fatalf("logout of an ended session: %v", err)
	}
	if revs, evs := counts(t, f, u.ID); revs != revs1 || evs != evs1 {
		t.Fatalf("revoking an ended session again wrote rows: denylist %d -> %d, audit %d -> %d", revs1, revs, evs1, evs)
	}
}

// testFeedPages: the feed, read in small pages, lists every entry, none
// twice in a page, and a revocation written while paging arrives by the
// next sequence at the latest.
func testFeedPages(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store)
	u := f.MustUser()
	want := map[uuid.UUID]bool{}
	for i := 0; i < 12; i++ {
		p := f.MustLogin(u)
		if err := f.Svc.RevokeToken(ctx, p.RefreshToken, "", tokens.ClientInfo{}); err != nil {
			t.Fatal(err)
		}
		want[p.SessionID] = true
	}
	seen := map[uuid.UUID]bool{}
	var late tokens.TokenPair
	c := tokens.FeedCursor{}
	for pages := 0; ; pages++ {
		revs, next, more, err := f.Svc.RevocationFeed(ctx, c, 5)
		if err != nil {
			t.Fatal(err)
		}
		if len(revs) > 5 {
			t.Fatalf("page of %d entries, limit 5", len(revs))
		}
		inPage := map[uuid.UUID]bool{}
		for _, r := range revs {
			if inPage[r.Subject] {
				t.Fatalf("subject %s twice in one page", r.Subject)
			}
			inPage[r.Subject], seen[r.Subject] = true, true
		}
		if pages == 0 { // revoked while paging: the next sequence has it
			late = f.MustLogin(u)
			if err := f.Svc.RevokeToken(ctx, late.RefreshToken, "", tokens.ClientInfo{}); err != nil {
				t.Fatal(err)
			}
		}
		c = next
		if !more {
			break
		}
		if pages > 20 {
			t.Fatal("the feed does not end")
		}
	}
	for sid := range want {
		if !seen[sid] {
			t.Fatalf("paging skipped the revocation of session %s", sid)
		}
	}
	for more := true; more; {
		var revs []tokens.Revocation
		var err error
		revs, c, more, err = f.Svc.RevocationFeed(ctx, c, 5)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range revs {
			seen[r.Subject] = true
		}
	}
	if !seen[late.SessionID] {
		t.Fatal("a revocation written while paging never arrived")
	}
}
