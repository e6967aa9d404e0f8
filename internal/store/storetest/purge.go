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
