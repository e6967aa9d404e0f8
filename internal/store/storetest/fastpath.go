package storetest

// Probes of the one-statement fast path from its review: every rule, hash
// lengths, and consistency with the locked path.

import (
	"testing"
	"time"

	"github.com/google/uuid"

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

// activeRotation is the fast path's request for presented token rt at now,
// with the presented verifier hash replaced by vh if it is not nil.
func activeRotation(t *testing.T, rt string, vh []byte, now time.Time, clientID string) tokens.ActiveRotation {
	c := Codec(t)
	p := Parse(t, rt)
	if vh == nil {
		vh = c.VerifierHash(p)
	}
	return tokens.ActiveRotation{SessionID: p.SessionID, Generation: p.Generation, IssuedAt: p.IssuedAt, VerifierHash: vh,
		SuccessorHash: c.SuccessorSecret(p).Hash, RefreshTTL: 336 * time.Hour,
		Now: func() time.Time { return now }, ClientID: clientID, Client: TestClient}
}

func rotateActive(t *testing.T, store tokens.Store, rt string, vh []byte, now time.Time) (tokens.RefreshState, bool, error) {
	return store.(tokens.FastRotator).RotateActive(ctx, activeRotation(t, rt, vh, now, ""))
}

// testFastPathAgreesWithDecide: for every kind of stored state, the fast
// path rotates exactly when tokens.Decide says VerdictRotate for the same
// state and instant, and writes nothing otherwise.
func testFastPathAgreesWithDecide(t *testing.T, store tokens.Store) {
	fastRotator(t, store)
	f := NewFixture(t, store, WithSessionMax(time.Hour))
	pol := tokens.Policy{ReuseGrace: f.Cfg.ReuseGrace}
	other, _ := f.mustClient(tokens.ClientSpec{ID: ClientID("fp"), Type: tokens.ClientPublic})
	codec := Codec(t)
	type probe struct {
		name     string
		setup    func() (rt string, now time.Time) // a presented token and the instant
		clientID string
	}
	login := func() tokens.TokenPair { return f.MustLogin(f.MustUser()) }
	now := f.Clock.Now
	probes := []probe{
		{"§2.2 the active token of a live session", func() (string, time.Time) {
			return login().RefreshToken, now()
		}, ""},
		{"§2.2 the active token after rotations", func() (string, time.Time) {
			return f.MustRefresh(f.MustRefresh(login().RefreshToken).RefreshToken).RefreshToken, now()
		}, ""},
		{"§2.3 the predecessor inside the window (locked path only)", func() (string, time.Time) {
			p := login()
			f.MustRefresh(p.RefreshToken)
			return p.RefreshToken, now()
		}, ""},
		{"§2.8 an older ancestor", func() (string, time.Time) {
			p := login()
			f.MustRefresh(f.MustRefresh(p.RefreshToken).RefreshToken)
			return p.RefreshToken, now()
		}, ""},
		{"§2.5 a forged secret with a valid tag (the key without the session's secret)", func() (string, time.Time) {
			p := login()
			forged, err := codec.First(p.SessionID, now())
			if err != nil {
				t.Fatal(err)
			}
			return forged.Token, now()
		}, ""},
		{"§2.5 an expired session (at its end)", func() (string, time.Time) {
			p := login()
			return p.RefreshToken, f.Session(p.SessionID).ExpiresAt
		}, ""},
		{"§2.5 a token at its expiry", func() (string, time.Time) {
			p := login()
			return p.RefreshToken, f.Session(p.SessionID).Chain.ActiveExpiresAt
		}, ""},
		{"§2.5 a token one microsecond before its expiry", func() (string, time.Time) {
			p := login()
			return p.RefreshToken, f.Session(p.SessionID).Chain.ActiveExpiresAt.Add(-time.Microsecond)
		}, ""},
		{"§2.9 a clock behind the session's last rotation (locked path decides)", func() (string, time.Time) {
			p := f.MustRefresh(login().RefreshToken)
			return p.RefreshToken, now().Add(-time.Second)
		}, ""},
		{"§2.7 a revoked session", func() (string, time.Time) {
			p := login()
			if err := f.Svc.Logout(ctx, tokens.LogoutRequest{RefreshToken: p.RefreshToken}); err != nil {
				t.Fatal(err)
			}
			return p.RefreshToken, now()
		}, ""},
		{"§3 a disabled user", func() (string, time.Time) {
			p := login()
			s := f.Session(p.SessionID)
			yes := true
			if _, _, err := store.UpdateUser(ctx, tokens.UserUpdate{ID: s.UserID, Disabled: &yes}); err != nil {
				t.Fatal(err)
			}
			return p.RefreshToken, now()
		}, ""},
		{"RFC 6749 §6 another client's token", func() (string, time.Time) {
			return login().RefreshToken, now()
		}, other.ID},
	}
	for _, pr := range probes {
		t.Run(pr.name, func(t *testing.T) {
			rt, at := pr.setup()
			p := Parse(t, rt)
			sess := f.Session(p.SessionID)
			u, err := store.UserByID(ctx, sess.UserID)
			if err != nil {
				t.Fatal(err)
			}
			st := tokens.RefreshState{Session: sess, User: u}
			chk, _ := codec.Check(p, codec.SuccessorSecret(p), st, f.Cfg.RefreshTTL)
			v, decErr := tokens.Decide(pol, tokens.Presentation{State: st, Token: chk, ClientID: pr.clientID, Now: at})
			want := decErr == nil && v == tokens.VerdictRotate
			if pr.name == "§2.9 a clock behind the session's last rotation (locked path decides)" {
				if !want {
					t.Fatalf("Decide says %v (%v) for the active token", v, decErr)
				}
				want = false // the fast path declines; Refresh rotates
			}
			_, ok, err := store.(tokens.FastRotator).RotateActive(ctx, activeRotation(t, rt, nil, at, pr.clientID))
			if err != nil {
				t.Fatal(err)
			}
			if ok != want {
				t.Fatalf("fast path rotated = %v, Decide says %v (%v)", ok, v, decErr)
			}
			if after := f.Session(sess.ID); !ok && after.Chain.Generation != sess.Chain.Generation {
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
		yes := true
		if _, _, err := store.UpdateUser(ctx, tokens.UserUpdate{ID: u.ID, Disabled: &yes}); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := rotateActive(t, store, t0.RefreshToken, nil, f.Clock.Now()); ok || err != nil {
			t.Errorf("disabled user rotated on fast path: %v %v", ok, err)
		}
	}
	// expired token (session still alive)
	{
		t0 := f.MustLogin(f.MustUser())
		exp := f.Session(t0.SessionID).Chain.ActiveExpiresAt
		if _, ok, err := rotateActive(t, store, t0.RefreshToken, nil, exp); ok || err != nil {
			t.Errorf("expired token (now == expires_at) rotated on fast path: %v %v", ok, err)
		}
		if _, ok, err := rotateActive(t, store, t0.RefreshToken, nil, exp.Add(-time.Microsecond)); !ok || err != nil {
			t.Errorf("token 1us before expiry did not rotate: %v %v", ok, err)
		}
	}
	// expired session
	{
		f2 := NewFixture(t, store, WithSessionMax(time.Hour))
		t0 := f2.MustLogin(f2.MustUser())
		sess := f2.Session(t0.SessionID)
		// token expiry is capped at the session's
		if !sess.Chain.ActiveExpiresAt.Equal(sess.ExpiresAt) {
			t.Errorf("first token outlives session: %v vs %v", sess.Chain.ActiveExpiresAt, sess.ExpiresAt)
		}
		if _, ok, err := rotateActive(t, store, t0.RefreshToken, nil, sess.ExpiresAt); ok || err != nil {
			t.Errorf("expired session rotated: %v %v", ok, err)
		}
	}
	// revoked session
	{
		t0 := f.MustLogin(f.MustUser())
		now := f.Clock.Now()
		if _, err := store.RevokeSessions(ctx, tokens.SessionRevocation{SessionID: t0.SessionID, Reason: "logout", At: now, DenyUntil: now.Add(time.Hour),
			Event: tokens.AuditEvent{At: now, Kind: "logout"}}); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := rotateActive(t, store, t0.RefreshToken, nil, now); ok || err != nil {
			t.Errorf("revoked session rotated: %v %v", ok, err)
		}
	}
	// wrong-length verifier hash: presented hash with a trailing extra byte / truncated
	{
		t0 := f.MustLogin(f.MustUser())
		vh := Codec(t).VerifierHash(Parse(t, t0.RefreshToken))
		long := append(append([]byte(nil), vh...), 0x00)
		if _, ok, _ := rotateActive(t, store, t0.RefreshToken, long, f.Clock.Now()); ok {
			t.Errorf("a 33-byte presented hash matched a 32-byte stored hash")
		}
		if _, ok, _ := rotateActive(t, store, t0.RefreshToken, vh[:16], f.Clock.Now()); ok {
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
}

// testRotateActiveRules checks the fast path at the store level: a wrong
// verifier hash, a used token or a revoked session rotate nothing, and a
// rotation moves the generation, the hash, the count and the last caller.
func testRotateActiveRules(t *testing.T, store tokens.Store) {
	fr := fastRotator(t, store)
	f := NewFixture(t, store)
	t0 := f.MustLogin(f.MustUser())
	vh := Codec(t).VerifierHash(Parse(t, t0.RefreshToken))
	now := f.Clock.Now()
	wrong := append([]byte(nil), vh...)
	wrong[len(wrong)-1] ^= 1
	if _, ok, err := fr.RotateActive(ctx, activeRotation(t, t0.RefreshToken, wrong, now, "")); ok || err != nil {
		t.Fatalf("a wrong verifier hash rotated: %v %v", ok, err)
	}
	r := activeRotation(t, t0.RefreshToken, nil, now, "")
	r.RefreshTTL = time.Hour
	r.Client = tokens.ClientInfo{IP: "198.51.100.7", UserAgent: "elsewhere"}
	st, ok, err := fr.RotateActive(ctx, r)
	if !ok || err != nil || st.Session.ID != t0.SessionID || st.User.ID == uuid.Nil || !st.Session.Chain.ActiveExpiresAt.Equal(now.Add(time.Hour)) ||
		st.Session.Chain.Generation != 1 || st.Session.RefreshCount != 1 {
		t.Fatalf("the active token did not rotate: %v %v %+v", ok, err, st)
	}
	if _, ok, _ := fr.RotateActive(ctx, activeRotation(t, t0.RefreshToken, nil, now, "")); ok {
		t.Fatal("a used token rotated again on the fast path")
	}
	s := f.Session(t0.SessionID)
	if s.Chain.Generation != 1 || string(s.Chain.VerifierHash) != string(r.SuccessorHash) || s.RefreshCount != 1 ||
		s.LastIP != "198.51.100.7" || s.LastUserAgent != "elsewhere" || !s.LastUsedAt.Equal(now) || s.IP != TestClient.IP {
		t.Fatalf("the session after a fast rotation: %+v", s)
	}
}
