package storetest

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rotorauth/rotor/internal/tokens"
)

func testChain(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store)
	u := f.MustUser()
	p := f.MustLogin(u)
	seen := map[string]bool{p.RefreshToken: true}
	for i := 0; i < 5; i++ {
		f.Clock.Advance(time.Minute)
		next := f.MustRefresh(p.RefreshToken)
		if seen[next.RefreshToken] {
			t.Fatalf("rotation %d returned a token seen before", i)
		}
		if next.SessionID != p.SessionID {
			t.Fatalf("rotation changed the session: %v -> %v", p.SessionID, next.SessionID)
		}
		pr := f.MustAuthenticate(next.AccessToken)
		if pr.UserID != u.ID || pr.SessionID != p.SessionID {
			t.Fatalf("access token names %v/%v, want %v/%v", pr.UserID, pr.SessionID, u.ID, p.SessionID)
		}
		seen[next.RefreshToken] = true
		p = next
	}
	s := f.Session(p.SessionID)
	if !s.LastUsedAt.Equal(f.Clock.Now()) {
		t.Errorf("last_used_at = %v, want the last rotation %v", s.LastUsedAt, f.Clock.Now())
	}
	if !f.IsActive(p.RefreshToken) || !countIsGeneration(s) {
		t.Error("the session's active token is not the last one issued")
	}
}

func testReuseAfterWindow(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store)
	u := f.MustUser()
	t0 := f.MustLogin(u)
	t1 := f.MustRefresh(t0.RefreshToken)
	f.Clock.Advance(11 * time.Second) // past the 10s window
	_, err := f.Refresh(t0.RefreshToken)
	if !tokens.IsReuse(err) {
		t.Fatalf("reuse of a rotated token after the window: err = %v, want reuse", err)
	}
	s := f.Session(t0.SessionID)
	if s.RevokedAt == nil || s.RevokedReason != tokens.ReasonReuseDetected {
		t.Fatalf("session revoked_at=%v reason=%q, want revoked for reuse_detected", s.RevokedAt, s.RevokedReason)
	}
	f.MustBeRefused(t1.RefreshToken, "the current token of a session revoked for reuse")
	f.MustBeDenied(t1.AccessToken, "access token of a session revoked for reuse")
	f.MustBeDenied(t0.AccessToken, "older access token of a session revoked for reuse")
	// Revoked is terminal: presenting the tokens again changes nothing.
	f.MustBeRefused(t0.RefreshToken, "reuse again")
	if again := f.Session(t0.SessionID); !again.RevokedAt.Equal(*s.RevokedAt) {
		t.Fatalf("a second reuse moved revoked_at from %v to %v", s.RevokedAt, again.RevokedAt)
	}
}

func testAncestorIsReuse(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store)
	t0 := f.MustLogin(f.MustUser())
	t1 := f.MustRefresh(t0.RefreshToken)
	t2 := f.MustRefresh(t1.RefreshToken)
	f.Clock.Advance(time.Second) // well inside the window
	if _, err := f.Refresh(t0.RefreshToken); !tokens.IsReuse(err) {
		t.Fatalf("grandparent inside the window: err = %v, want reuse", err)
	}
	f.MustBeRefused(t2.RefreshToken, "current token after ancestor reuse")
	f.MustBeDenied(t2.AccessToken, "current access token after ancestor reuse")
}

func testGraceReplay(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store)
	t0 := f.MustLogin(f.MustUser())
	t1 := f.MustRefresh(t0.RefreshToken)
	f.Clock.Advance(9 * time.Second)
	again := f.MustRefresh(t0.RefreshToken)
	if again.RefreshToken != t1.RefreshToken {
		t.Fatal("a retry inside the window got a different successor")
	}
	if again.AccessToken == t1.AccessToken {
		t.Fatal("a retry inside the window got the same access token, want a new one")
	}
	if again.RefreshExpiresIn > t1.RefreshExpiresIn || again.RefreshExpiresIn < t1.RefreshExpiresIn-10 {
		t.Fatalf("replay refresh_token_expires_in = %d, want the successor's remaining %d-9", again.RefreshExpiresIn, t1.RefreshExpiresIn)
	}
	f.MustAuthenticate(again.AccessToken)
	// The successor rotates normally: the replay made no branch.
	t2 := f.MustRefresh(t1.RefreshToken)
	// Now t1 is the predecessor and t0 an ancestor.
	if replay := f.MustRefresh(t1.RefreshToken); replay.RefreshToken != t2.RefreshToken {
		t.Fatal("replay of the new predecessor got a different successor")
	}
	// The grace clock is the rotation time: 9s after t1 was rotated, the
	// window for t1 is over even though t1 was replayed since.
	f.Clock.Advance(10 * time.Second)
	if _, err := f.Refresh(t1.RefreshToken); !tokens.IsReuse(err) {
		t.Fatalf("replay past the window counted from rotation: err = %v, want reuse", err)
	}
}

func testStrictMode(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store, WithGrace(0))
	t0 := f.MustLogin(f.MustUser())
	t1 := f.MustRefresh(t0.RefreshToken)
	if _, err := f.Refresh(t0.RefreshToken); !tokens.IsReuse(err) {
		t.Fatalf("immediate replay in strict mode: err = %v, want reuse", err)
	}
	f.MustBeRefused(t1.RefreshToken, "successor after strict-mode reuse")
}

func testExpiry(t *testing.T, store tokens.Store) {
	t.Run("idle token", func(t *testing.T) {
		f := NewFixture(t, store)
		t0 := f.MustLogin(f.MustUser())
		if t0.RefreshExpiresIn != int64((336 * time.Hour).Seconds()) {
			t.Fatalf("refresh_token_expires_in = %d, want %d", t0.RefreshExpiresIn, int64((336 * time.Hour).Seconds()))
		}
		f.Clock.Advance(336 * time.Hour)
		f.MustBeRefused(t0.RefreshToken, "token at its idle expiry")
		if s := f.Session(t0.SessionID); s.RevokedAt != nil {
			t.Fatal("refusing an expired token revoked the session")
		}
	})
	t.Run("session lifetime", func(t *testing.T) {
		f := NewFixture(t, store, WithSessionMax(time.Hour))
		t0 := f.MustLogin(f.MustUser())
		if t0.RefreshExpiresIn != 3600 {
			t.Fatalf("refresh_token_expires_in = %d, want capped at the session's 3600", t0.RefreshExpiresIn)
		}
		f.Clock.Advance(30 * time.Minute)
		t1 := f.MustRefresh(t0.RefreshToken)
		if t1.RefreshExpiresIn != 1800 {
			t.Fatalf("successor expires in %d, want the session's remaining 1800", t1.RefreshExpiresIn)
		}
		f.Clock.Advance(30 * time.Minute)
		f.MustBeRefused(t1.RefreshToken, "token of an expired session")
		if s := f.Session(t0.SessionID); s.RevokedAt != nil {
			t.Fatal("refusing a token of an expired session revoked it")
		}
	})
}

func testForgedTokens(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store)
	t0 := f.MustLogin(f.MustUser())
	t1 := f.MustRefresh(t0.RefreshToken)
	// Same selector, wrong verifier: must not be treated as reuse of t0.
	forged := []byte(t0.RefreshToken)
	last := len(forged) - 2
	if forged[last] == 'A' {
		forged[last] = 'B'
	} else {
		forged[last] = 'A'
	}
	for _, bad := range []string{"", "rt_", "rt_short", string(forged), "xx" + t0.RefreshToken[2:], t0.RefreshToken + "A"} {
		f.MustBeRefused(bad, "forged token")
	}
	if s := f.Session(t0.SessionID); s.RevokedAt != nil {
		t.Fatal("a forged token with a known selector revoked the session")
	}
	f.MustRefresh(t1.RefreshToken)
}

func testTransactionBoundary(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store)
	t0 := f.MustLogin(f.MustUser())
	before := f.Session(t0.SessionID)
	ctx, cancel := context.WithCancel(context.Background())
	_, err := store.Refresh(ctx, tokens.TokenRef{SessionID: t0.SessionID}, func(st tokens.RefreshState) (tokens.RefreshOutcome, error) {
		// The process "dies" after deciding and before writing: the
		// connection is gone by the time the writes would be sent.
		cancel()
		now := f.Clock.Now()
		next := st.Session.Chain
		next.Generation++
		next.VerifierHash = append([]byte(nil), next.VerifierHash...)
		next.VerifierHash[0] ^= 0xFF
		next.RotatedAt = now
		return tokens.RefreshOutcome{Kind: tokens.OutcomeRotate, Now: now, Chain: next, Client: TestClient,
			Events: []tokens.AuditEvent{{At: now, Kind: tokens.EventRefresh}}}, nil
	})
	if err == nil {
		// An in-memory store cannot be interrupted mid-way; then the
		// outcome must have been applied whole.
		s := f.Session(t0.SessionID)
		if s.Chain.Generation == before.Chain.Generation {
			t.Fatal("Refresh reported success but wrote nothing")
		}
		return
	}
	after := f.Session(t0.SessionID)
	if after.Chain.Generation != before.Chain.Generation || !bytes.Equal(after.Chain.VerifierHash, before.Chain.VerifierHash) || after.RefreshCount != 0 {
		t.Fatal("an interrupted rotation changed the session's chain")
	}
	// The client got no reply; its retry must rotate normally, with no
	// false reuse detection.
	t1 := f.MustRefresh(t0.RefreshToken)
	f.MustAuthenticate(t1.AccessToken)
}

// testNegativeElapsed: instance A, whose clock is ahead, rotates; instance
// B, whose clock is behind by less than MaxClockSkew, is presented the
// rotated token at once: elapsed is negative, which is a grace replay, never
// reuse.
func testNegativeElapsed(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store, WithNow(time.Now))
	ahead, behind := f.Instance(tokens.MaxClockSkew/2), f.Instance(-tokens.MaxClockSkew/2+time.Millisecond)
	t0 := ahead.MustLogin(ahead.MustUser())
	t1 := ahead.MustRefresh(t0.RefreshToken)
	replay, err := behind.Refresh(t0.RefreshToken)
	if err != nil {
		t.Fatalf("replay through an instance %v behind: %v", tokens.MaxClockSkew-time.Millisecond, err)
	}
	if replay.RefreshToken != t1.RefreshToken {
		t.Fatal("the replay got a different successor")
	}
	if s := f.Session(t0.SessionID); s.RevokedAt != nil {
		t.Fatalf("negative elapsed time revoked the session as %q", s.RevokedReason)
	}
	behind.MustRefresh(t1.RefreshToken)
}

// testSkewBeyondTolerance: an instance whose clock is further behind than
// MaxClockSkew refuses the replay as unavailable and changes nothing; the
// session lives on.
func testSkewBeyondTolerance(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store, WithNow(time.Now))
	far := f.Instance(-tokens.MaxClockSkew - time.Second)
	t0 := f.MustLogin(f.MustUser())
	t1 := f.MustRefresh(t0.RefreshToken)
	if _, err := far.Refresh(t0.RefreshToken); !errors.Is(err, tokens.ErrUnavailable) || errors.Is(err, tokens.ErrInvalidGrant) {
		t.Fatalf("replay through a clock %v behind: %v, want unavailable", tokens.MaxClockSkew+time.Second, err)
	}
	if s := f.Session(t0.SessionID); s.RevokedAt != nil {
		t.Fatalf("skew beyond the tolerance revoked the session as %q", s.RevokedReason)
	}
	replay := f.MustRefresh(t0.RefreshToken)
	if replay.RefreshToken != t1.RefreshToken {
		t.Fatal("the replay got a different successor")
	}
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

func testAccessCappedAtSessionEnd(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store, WithSessionMax(time.Hour))
	t0 := f.MustLogin(f.MustUser())
	end := f.Session(t0.SessionID).ExpiresAt
	f.Clock.Advance(time.Hour - 5*time.Minute)
	t1 := f.MustRefresh(t0.RefreshToken)
	p := f.MustAuthenticate(t1.AccessToken)
	if p.ExpiresAt.After(end) {
		t.Fatalf("access token expires at %v, after its session's end %v", p.ExpiresAt, end)
	}
	if t1.ExpiresIn > int64((5*time.Minute)/time.Second) || t1.ExpiresIn < 1 {
		t.Fatalf("expires_in %d for a session with 5 minutes left", t1.ExpiresIn)
	}
}

func testGraceRetryAfterTokenExpiry(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store, func(c *tokens.Config) { c.RefreshTTL = time.Minute })
	t0 := f.MustLogin(f.MustUser())
	f.Clock.Advance(time.Minute - 500*time.Millisecond)
	t1 := f.MustRefresh(t0.RefreshToken) // rotated while valid
	f.Clock.Advance(time.Second)         // t0 has expired since; t1 lives
	again, err := f.Refresh(t0.RefreshToken)
	if err != nil || again.RefreshToken != t1.RefreshToken {
		t.Fatalf("grace retry of a token that expired after its rotation: %v", err)
	}
	f.Clock.Advance(10 * time.Second) // past the window: refused, not reuse (§2.5)
	f.MustBeRefused(t0.RefreshToken, "an expired used token past the window")
	if s := f.Session(t0.SessionID); s.RevokedAt != nil {
		t.Fatalf("an expired used token revoked the session as %q", s.RevokedReason)
	}
}
