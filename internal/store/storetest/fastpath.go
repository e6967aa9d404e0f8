package storetest

// Probes of the one-statement fast path from its review: every rule, hash
// lengths, and consistency with the locked path.

import (
	"bytes"
	"github.com/google/uuid"
	"testing"
	"time"

	"github.com/rotorauth/rotor/internal/tokens"
)

// fastRotator returns store's fast path, or skips: the capability is
// optional.
func fastRotator(t *testing.T, store tokens.Store) tokens.FastRotator {
	t.Helper()
	fr, ok := store.(tokens.FastRotator)
	if !ok {
		t.Skip("this store has no fast path (tokens.FastRotator): every rotation is decided by tokens.Decide")
	}
	return fr
}

func rotateActive(store tokens.Store, sel, vh []byte, now time.Time, succByte byte) (tokens.RefreshState, bool, error) {
	s := FakeSelector(sel, succByte)
	return store.(tokens.FastRotator).RotateActive(ctx, tokens.ActiveRotation{Selector: sel, VerifierHash: vh,
		Successor: tokens.RefreshRecord{Selector: s, VerifierHash: vh}, RefreshTTL: 336 * time.Hour,
		Now: func() time.Time { return now }, Event: tokens.AuditEvent{Kind: tokens.EventRefresh}})
}

// testFastPathAgreesWithDecide: for every kind of stored state, the fast
// path rotates exactly when tokens.Decide says VerdictRotate for the same
// state and instant, and writes nothing otherwise.
func testFastPathAgreesWithDecide(t *testing.T, store tokens.Store) {
	fastRotator(t, store)
	f := NewFixture(t, store, WithSessionMax(time.Hour))
	pol := tokens.Policy{ReuseGrace: f.Cfg.ReuseGrace}
	other, _ := f.mustClient(tokens.ClientSpec{ID: ClientID("fp"), Type: tokens.ClientPublic})
	type probe struct {
		name     string
		setup    func() (sel, vh []byte, now time.Time) // a token, the hash presented, the instant
		clientID string
	}
	login := func() (tokens.TokenPair, tokens.RefreshRecord) {
		p := f.MustLogin(f.MustUser())
		_, rec, err := store.SessionBySelector(ctx, Selector(t, p.RefreshToken))
		if err != nil {
			t.Fatal(err)
		}
		return p, rec
	}
	now := f.Clock.Now
	probes := []probe{
		{"§2.2 the active token of a live session", func() ([]byte, []byte, time.Time) {
			_, rec := login()
			return rec.Selector, rec.VerifierHash, now()
		}, ""},
		{"§2.3 the predecessor inside the window (locked path only)", func() ([]byte, []byte, time.Time) {
			p, rec := login()
			f.MustRefresh(p.RefreshToken)
			return rec.Selector, rec.VerifierHash, now()
		}, ""},
		{"§2.8 an older ancestor", func() ([]byte, []byte, time.Time) {
			p, rec := login()
			f.MustRefresh(f.MustRefresh(p.RefreshToken).RefreshToken)
			return rec.Selector, rec.VerifierHash, now()
		}, ""},
		{"§2.5 a forged verifier", func() ([]byte, []byte, time.Time) {
			_, rec := login()
			bad := append([]byte(nil), rec.VerifierHash...)
			bad[0] ^= 1
			return rec.Selector, bad, now()
		}, ""},
		{"§2.5 an expired session (at its end)", func() ([]byte, []byte, time.Time) {
			p, rec := login()
			return rec.Selector, rec.VerifierHash, f.Session(p.SessionID).ExpiresAt
		}, ""},
		{"§2.5 a token one microsecond before its expiry", func() ([]byte, []byte, time.Time) {
			_, rec := login()
			return rec.Selector, rec.VerifierHash, rec.ExpiresAt.Add(-time.Microsecond)
		}, ""},
		{"§2.7 a revoked session", func() ([]byte, []byte, time.Time) {
			p, rec := login()
			if err := f.Svc.Logout(ctx, tokens.LogoutRequest{RefreshToken: p.RefreshToken}); err != nil {
				t.Fatal(err)
			}
			return rec.Selector, rec.VerifierHash, now()
		}, ""},
		{"§3 a disabled user", func() ([]byte, []byte, time.Time) {
			_, rec := login()
			s := f.Session(rec.SessionID)
			yes := true
			if _, _, err := store.UpdateUser(ctx, tokens.UserUpdate{ID: s.UserID, Disabled: &yes}); err != nil {
				t.Fatal(err)
			}
			return rec.Selector, rec.VerifierHash, now()
		}, ""},
		{"RFC 6749 §6 another client's token", func() ([]byte, []byte, time.Time) {
			_, rec := login()
			return rec.Selector, rec.VerifierHash, now()
		}, other.ID},
	}
	for _, pr := range probes {
		t.Run(pr.name, func(t *testing.T) {
			sel, vh, at := pr.setup()
			sess, rec, err := store.SessionBySelector(ctx, sel)
			if err != nil {
				t.Fatal(err)
			}
			u, err := store.UserByID(ctx, sess.UserID)
			if err != nil {
				t.Fatal(err)
			}
			v, decErr := tokens.Decide(pol, tokens.Presentation{
				State:      tokens.RefreshState{Token: rec, Session: sess, User: u},
				VerifierOK: bytes.Equal(vh, rec.VerifierHash), ClientID: pr.clientID, Now: at,
			})
			want := decErr == nil && v == tokens.VerdictRotate
			_, ok, err := store.(tokens.FastRotator).RotateActive(ctx, tokens.ActiveRotation{Selector: sel, VerifierHash: vh,
				Successor: tokens.RefreshRecord{Selector: FakeSelector(sel, 0xC1), VerifierHash: vh}, RefreshTTL: time.Hour,
				Now: func() time.Time { return at }, Event: tokens.AuditEvent{Kind: tokens.EventRefresh}, ClientID: pr.clientID})
			if err != nil {
				t.Fatal(err)
			}
			if ok != want {
				t.Fatalf("fast path rotated = %v, Decide says %v (%v)", ok, v, decErr)
			}
			if after := f.Session(sess.ID); !ok && !bytes.Equal(after.Chain.ActiveSelector, sess.Chain.ActiveSelector) {
				t.Fatal("a refused fast path changed the session")
			}
		})
	}
}

func testFastPathRefusals(t *testing.T, store tokens.Store) {
	fastRotator(t, store)
	f := NewFixture(t, store)
	// disabled user, no revocation written (store-level)
	{
		u := f.MustUser()
		t0 := f.MustLogin(u)
		sel := Selector(t, t0.RefreshToken)
		_, rec, _ := store.SessionBySelector(ctx, sel)
		yes := true
		if _, _, err := store.UpdateUser(ctx, tokens.UserUpdate{ID: u.ID, Disabled: &yes}); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := rotateActive(store, sel, rec.VerifierHash, f.Clock.Now(), 0xB1); ok || err != nil {
			t.Errorf("disabled user rotated on fast path: %v %v", ok, err)
		}
	}
	// expired token (session still alive)
	{
		t0 := f.MustLogin(f.MustUser())
		sel := Selector(t, t0.RefreshToken)
		_, rec, _ := store.SessionBySelector(ctx, sel)
		now := rec.ExpiresAt
		if _, ok, err := rotateActive(store, sel, rec.VerifierHash, now, 0xB2); ok || err != nil {
			t.Errorf("expired token (now == expires_at) rotated on fast path: %v %v", ok, err)
		}
		if _, ok, err := rotateActive(store, sel, rec.VerifierHash, now.Add(-time.Microsecond), 0xB3); !ok || err != nil {
			t.Errorf("token 1us before expiry did not rotate: %v %v", ok, err)
		}
	}
	// expired session
	{
		f2 := NewFixture(t, store, WithSessionMax(time.Hour))
		t0 := f2.MustLogin(f2.MustUser())
		sel := Selector(t, t0.RefreshToken)
		sess, rec, _ := store.SessionBySelector(ctx, sel)
		// token expiry is capped at the session's
		if !rec.ExpiresAt.Equal(sess.ExpiresAt) {
			t.Errorf("first token outlives session: %v vs %v", rec.ExpiresAt, sess.ExpiresAt)
		}
		if _, ok, err := rotateActive(store, sel, rec.VerifierHash, sess.ExpiresAt, 0xB4); ok || err != nil {
			t.Errorf("expired session rotated: %v %v", ok, err)
		}
	}
	// revoked session
	{
		u := f.MustUser()
		t0 := f.MustLogin(u)
		sel := Selector(t, t0.RefreshToken)
		_, rec, _ := store.SessionBySelector(ctx, sel)
		now := f.Clock.Now()
		if _, err := store.RevokeSessions(ctx, tokens.SessionRevocation{SessionID: t0.SessionID, Reason: "logout", At: now, DenyUntil: now.Add(time.Hour),
			Event: tokens.AuditEvent{At: now, Kind: "logout"}}); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := rotateActive(store, sel, rec.VerifierHash, now, 0xB5); ok || err != nil {
			t.Errorf("revoked session rotated: %v %v", ok, err)
		}
	}
	// wrong-length verifier hash: presented hash with a trailing extra byte / truncated
	{
		t0 := f.MustLogin(f.MustUser())
		sel := Selector(t, t0.RefreshToken)
		_, rec, _ := store.SessionBySelector(ctx, sel)
		long := append(append([]byte(nil), rec.VerifierHash...), 0x00)
		_, ok, err := rotateActive(store, sel, long, f.Clock.Now(), 0xB6)
		t.Logf("presented hash 33 bytes (32 matching + 0x00): ok=%v err=%v", ok, err)
		if ok {
			t.Errorf("a 33-byte presented hash matched a 32-byte stored hash")
		}
		short := append([]byte(nil), rec.VerifierHash[:16]...)
		_, ok, _ = rotateActive(store, sel, short, f.Clock.Now(), 0xB7)
		if ok {
			t.Errorf("a 16-byte presented hash matched")
		}
	}
}

func testFastSlowConsistent(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store, WithSessionMax(400*time.Hour))
	u := f.MustUser("introspect")
	t0 := f.MustLogin(u)
	f.Clock.Advance(100 * time.Hour)        // now+336h > session end: capped
	t1 := f.MustRefresh(t0.RefreshToken)    // fast path
	again := f.MustRefresh(t0.RefreshToken) // grace replay (slow path)
	if t1.RefreshToken != again.RefreshToken {
		t.Fatal("grace replay gave another token")
	}
	if t1.RefreshExpiresIn != again.RefreshExpiresIn {
		t.Errorf("refresh_token_expires_in: fast %d, replay %d", t1.RefreshExpiresIn, again.RefreshExpiresIn)
	}
	want := int64((300 * time.Hour) / time.Second)
	if t1.RefreshExpiresIn != want {
		t.Errorf("fast expires_in %d want %d", t1.RefreshExpiresIn, want)
	}
	p1, p2 := f.MustAuthenticate(t1.AccessToken), f.MustAuthenticate(again.AccessToken)
	if p1.UserID != u.ID || len(p1.Roles) != 1 || p1.Roles[0] != "introspect" || p1.UserID != p2.UserID || len(p2.Roles) != 1 {
		t.Errorf("principals: fast %+v replay %+v", p1, p2)
	}
	t.Logf("fast principal email=%q roles=%v", p1.Email, p1.Roles)
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
