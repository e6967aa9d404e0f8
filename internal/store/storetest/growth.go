package storetest

// Bounded growth: revocation is idempotent, sessions per user are capped,
// audit events expire.

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rotorauth/rotor/internal/tokens"
)

func growthTests() []namedTest {
	return []namedTest{
		{"growth: revoking an already revoked token or session writes nothing", testIdempotentRevocation},
		{"growth: a login past the session cap evicts the least recently used session", testSessionCap},
		{"growth: audit events past retention are purged", testAuditRetention},
		{"growth: the revocation feed pages through large answers and skips nothing", testFeedPages},
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

func testAuditRetention(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store, func(c *tokens.Config) { c.AuditRetention = 24 * time.Hour })
	u := f.MustUser()
	f.MustLogin(u)
	_, before := counts(t, f, u.ID)
	if before == 0 {
		t.Fatal("no audit events to purge")
	}
	f.Clock.Advance(25 * time.Hour)
	v := f.MustUser()
	f.MustLogin(v)
	if _, err := f.Svc.Purge(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, n := counts(t, f, u.ID); n != 0 {
		t.Fatalf("%d audit events older than the retention survived the purge", n)
	}
	if _, n := counts(t, f, v.ID); n == 0 {
		t.Fatal("the purge took recent audit events")
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
