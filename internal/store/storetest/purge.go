package storetest

// Audit events and the purge job.

import (
	"errors"
	"github.com/rotorauth/rotor/internal/tokens"
	"strings"
	"testing"
	"time"
)

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
	for _, k := range []tokens.EventKind{tokens.EventLogin, tokens.EventLoginFailed, tokens.EventLogout} {
		if !kinds[k] {
			t.Errorf("no %q event in %v", k, kinds)
		}
	}
	if kinds[tokens.EventRefresh] || kinds[tokens.EventSessionMoved] {
		t.Errorf("an ordinary refresh wrote an audit event: %v", kinds)
	}
	if lim, _, _ := f.Svc.Audit(ctx, u.ID, 0, 2); len(lim) != 2 {
		t.Errorf("limit 2 gave %d events", len(lim))
	}
}

// testAuditSessionMoved: a rotation from another address or user agent than
// the session's last one writes one session_moved event naming both, on
// either path (the fast path and the locked one), and becomes the last
// caller; with AuditEveryRefresh every rotation writes a refresh event.
func testAuditSessionMoved(t *testing.T, store tokens.Store) {
	events := func(f *Fixture, u tokens.User, kind tokens.EventKind) []tokens.AuditEvent {
		t.Helper()
		evs, _, err := f.Svc.Audit(ctx, u.ID, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var out []tokens.AuditEvent
		for _, ev := range evs {
			if ev.Kind == kind {
				out = append(out, ev)
			}
		}
		return out
	}
	f := NewFixture(t, store)
	u := f.MustUser()
	p := f.MustLogin(u)
	p = f.MustRefresh(p.RefreshToken) // same caller as the login: nothing
	phone := tokens.ClientInfo{IP: "203.0.113.77", UserAgent: "a phone"}
	moved, err := f.Svc.Refresh(ctx, p.RefreshToken, phone) // fast path where there is one
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Svc.Refresh(ctx, p.RefreshToken, TestClient); err != nil { // a grace replay: not a rotation
		t.Fatal(err)
	}
	evs := events(f, u, tokens.EventSessionMoved)
	if len(evs) != 1 {
		t.Fatalf("%d session_moved events, want 1", len(evs))
	}
	ev := evs[0]
	if ev.IP != phone.IP || ev.SessionID == nil || *ev.SessionID != p.SessionID || ev.Detail["previous_ip"] != TestClient.IP ||
		ev.Detail["previous_user_agent"] != TestClient.UserAgent || ev.Detail["user_agent"] != phone.UserAgent {
		t.Errorf("session_moved event %+v", ev)
	}
	s := f.Session(p.SessionID)
	if s.LastIP != phone.IP || s.LastUserAgent != phone.UserAgent || s.IP != TestClient.IP || s.RefreshCount != 2 {
		t.Errorf("session after the move: last %q %q, login %q, count %d", s.LastIP, s.LastUserAgent, s.IP, s.RefreshCount)
	}
	// Only the user agent changes, on the locked path (a v2 token whose
	// fast path declines: the clock behind the last rotation).
	f.Clock.Advance(-time.Second)
	if _, err := f.Svc.Refresh(ctx, moved.RefreshToken, tokens.ClientInfo{IP: phone.IP, UserAgent: "the phone, updated"}); err != nil {
		t.Fatal(err)
	}
	if n := len(events(f, u, tokens.EventSessionMoved)); n != 2 {
		t.Errorf("%d session_moved events after a user agent change, want 2", n)
	}
	if n := len(events(f, u, tokens.EventRefresh)); n != 0 {
		t.Errorf("%d refresh events without AuditEveryRefresh", n)
	}

	g := NewFixture(t, store, func(c *tokens.Config) { c.AuditEveryRefresh = true })
	v := g.MustUser()
	q := g.MustRefresh(g.MustLogin(v).RefreshToken)
	g.MustRefresh(q.RefreshToken)
	if n := len(events(g, v, tokens.EventRefresh)); n != 2 {
		t.Errorf("%d refresh events for 2 rotations with AuditEveryRefresh", n)
	}
	if n := len(events(g, v, tokens.EventSessionMoved)); n != 0 {
		t.Errorf("%d session_moved events for an unmoved session", n)
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
	g.MustBeRefused(t0.RefreshToken, "a purged expired token")
	g.MustRefresh(t1.RefreshToken)
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
