package storetest

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/rotorauth/rotor/internal/tokens"
)

// Run runs the whole conformance suite against the stores newStore returns.
// newStore may return the same store every time; tests isolate themselves by
// using their own users.
func Run(t *testing.T, newStore func(t *testing.T) tokens.Store) {
	tests := []namedTest{
		{"users: email is unique case-insensitively", testUsers},
		{"login: every refusal is the same invalid_grant", testLoginRefusals},
		{"rotation: a chain of rotations", testChain},
		{"rotation: reuse after the window revokes the session and its current token", testReuseAfterWindow},
		{"rotation: an older ancestor inside the window is reuse", testAncestorIsReuse},
		{"rotation: a retry inside the window gets the identical successor", testGraceReplay},
		{"rotation: strict mode without a window", testStrictMode},
		{"rotation: expired tokens and sessions are refused and change nothing", testExpiry},
		{"rotation: unknown and forged tokens change nothing", testForgedTokens},
		{"rotation: a failed transaction leaves the old state", testTransactionBoundary},
		{"race: 50 concurrent presentations with a window give one rotation, 100 rounds", testConcurrentGrace},
		{"race: 50 concurrent presentations in strict mode give one success and a revocation", testConcurrentStrict},
		{"race: refresh against logout, admin revoke and password change", testRefreshRacesRevocation},
		{"race: login against disable", testLoginRacesDisable},
		{"revocation: logout, global logout and own sessions", testLogout},
		{"revocation: password change revokes the other sessions", testPasswordChange},
		{"revocation: admin disable, revoke all, revoke one", testAdmin},
		{"revocation: RFC 7009 revoke of refresh and access tokens", testRevokeEndpoint},
		{"revocation: another instance learns of revocations by sync", testTwinSync},
		{"audit: events of logins, refreshes and revocations", testAudit},
		{"purge: expired sessions and denylist entries go", testPurge},
	}
	tests = append(tests, reviewTests()...)
	tests = append(tests, clockTests()...)
	tests = append(tests, roleTests()...)
	tests = append(tests, endpointTests()...)
	tests = append(tests, growthTests()...)
	tests = append(tests, hashingTests()...)
	tests = append(tests, clientTests()...)
	tests = append(tests, lifetimeTests()...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

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
	if !bytes.Equal(s.Chain.ActiveSelector, Selector(t, p.RefreshToken)) {
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
	sel := Selector(t, t0.RefreshToken)
	ctx, cancel := context.WithCancel(context.Background())
	_, err := store.Refresh(ctx, sel, func(st tokens.RefreshState) (tokens.RefreshOutcome, error) {
		// The process "dies" after deciding and before writing: the
		// connection is gone by the time the writes would be sent.
		cancel()
		succ := append([]byte(nil), st.Token.Selector...)
		succ[0] ^= 0xFF
		now := f.Clock.Now()
		return tokens.RefreshOutcome{Kind: tokens.OutcomeRotate, Now: now,
			Successor: tokens.RefreshRecord{Selector: succ, SessionID: st.Session.ID, VerifierHash: st.Token.VerifierHash,
				ParentSelector: st.Token.Selector, CreatedAt: now, ExpiresAt: now.Add(time.Hour)},
			Event: tokens.AuditEvent{At: now, Kind: tokens.EventRefresh}}, nil
	})
	if err == nil {
		// An in-memory store cannot be interrupted mid-way; then the
		// outcome must have been applied whole.
		s := f.Session(t0.SessionID)
		if bytes.Equal(s.Chain.ActiveSelector, before.Chain.ActiveSelector) {
			t.Fatal("Refresh reported success but wrote nothing")
		}
		return
	}
	after := f.Session(t0.SessionID)
	if !bytes.Equal(after.Chain.ActiveSelector, before.Chain.ActiveSelector) || after.Chain.PrevSelector != nil {
		t.Fatal("an interrupted rotation changed the session's chain")
	}
	// The client got no reply; its retry must rotate normally, with no
	// false reuse detection.
	t1 := f.MustRefresh(t0.RefreshToken)
	f.MustAuthenticate(t1.AccessToken)
}

// presentTogether presents rt from n goroutines released by one barrier.
func presentTogether(f *Fixture, rt string, n int) ([]tokens.TokenPair, []error) {
	results := make([]tokens.TokenPair, n)
	errs := make([]error, n)
	var start, done sync.WaitGroup
	start.Add(1)
	for i := 0; i < n; i++ {
		done.Add(1)
		go func() {
			defer done.Done()
			start.Wait()
			results[i], errs[i] = f.Refresh(rt)
		}()
	}
	start.Done()
	done.Wait()
	return results, errs
}

// testConcurrentGrace: 100 rounds of 50 presentations of one token at once;
// each round yields exactly one successor, which every caller gets.
func testConcurrentGrace(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store)
	t0 := f.MustLogin(f.MustUser())
	rt := t0.RefreshToken
	for round := 0; round < 100; round++ {
		results, errs := presentTogether(f, rt, 50)
		for i := range results {
			if errs[i] != nil {
				t.Fatalf("round %d caller %d: %v", round, i, errs[i])
			}
			if results[i].RefreshToken != results[0].RefreshToken {
				t.Fatalf("round %d: caller %d got a different successor: more than one rotation", round, i)
			}
		}
		s := f.Session(t0.SessionID)
		if s.RevokedAt != nil {
			t.Fatalf("round %d: concurrent presentations inside the window revoked the session", round)
		}
		if !bytes.Equal(s.Chain.PrevSelector, Selector(t, rt)) || !bytes.Equal(s.Chain.ActiveSelector, Selector(t, results[0].RefreshToken)) {
			t.Fatalf("round %d: the chain is not exactly presented -> successor", round)
		}
		_, rec, err := store.SessionBySelector(context.Background(), Selector(t, results[0].RefreshToken))
		if err != nil || !bytes.Equal(rec.ParentSelector, Selector(t, rt)) {
			t.Fatalf("round %d: successor's parent is not the presented token (err %v)", round, err)
		}
		rt = results[0].RefreshToken
		f.Clock.Advance(11 * time.Second) // the next round starts outside the window
	}
	f.MustRefresh(rt)
}

func testConcurrentStrict(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store, WithGrace(0))
	t0 := f.MustLogin(f.MustUser())
	const n = 50
	var ok, reuse, other int
	var winner tokens.TokenPair
	results, errs := presentTogether(f, t0.RefreshToken, n)
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
			winner = results[i]
		case tokens.IsReuse(err):
			reuse++
		case errors.Is(err, tokens.ErrInvalidGrant):
			other++ // the session was already revoked by another caller
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != 1 || reuse < 1 || ok+reuse+other != n {
		t.Fatalf("strict mode: %d successes, %d reuse, %d refused; want exactly 1 success and a reuse", ok, reuse, other)
	}
	f.MustBeRefused(winner.RefreshToken, "the winner's token after the reuse revocation")
	f.MustBeDenied(winner.AccessToken, "the winner's access token after the reuse revocation")
}
