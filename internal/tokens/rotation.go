package tokens

import (
	"bytes"
	"context"
	"errors"
	"time"
)

// Refresh rotates a refresh token (SPEC §2). The presented token's session
// is serialized while the rules below decide, so concurrent presentations
// and revocations of the same session are ordered, and every decision uses
// one clock reading taken after that point (SPEC §2.9):
//
//   - an active token is rotated: it becomes used, its successor is issued;
//   - the last rotated token, presented again within ReuseGrace of its
//     rotation while its successor is still active, gets that same successor
//     (derived again from the presented token) and a new access token;
//   - any other used token is reuse: the session is revoked;
//   - unknown, expired and revoked tokens are refused and change nothing.
//
// Refresh serves the default client; RefreshClient serves any.
func (s *Service) Refresh(ctx context.Context, token string, client ClientInfo) (TokenPair, error) {
	return s.RefreshClient(ctx, s.DefaultClient(), token, client)
}

// RefreshClient rotates a refresh token presented by client c (already
// authenticated by the caller). A token of a session issued to another
// client is refused as invalid_grant (RFC 6749 §6) and changes nothing.
func (s *Service) RefreshClient(ctx context.Context, c Client, token string, client ClientInfo) (TokenPair, error) {
	if !c.Allows(GrantRefreshToken) {
		return TokenPair{}, errGrantNotAllowed
	}
	p, err := s.codec.Parse(token)
	if err != nil {
		return TokenPair{}, err
	}
	succ := s.codec.Successor(p.Raw)

	// Fast path: the active token of a live session, in one statement.
	st, ok, err := s.store.RotateActive(ctx, ActiveRotation{
		Selector: p.Selector, VerifierHash: s.codec.VerifierHash(p),
		Successor:  RefreshRecord{Selector: succ.Selector, VerifierHash: succ.VerifierHash},
		RefreshTTL: s.cfg.RefreshTTL, Now: s.nowUTC,
		Event:    AuditEvent{Kind: EventRefresh, IP: client.IP},
		ClientID: s.storedClientID(c),
	})
	if err != nil {
		return TokenPair{}, err
	}
	if ok {
		return s.pair(st.User, c, st.Session.ID, succ.Token, st.Session.Chain.ActiveExpiresAt, st.Session.Chain.RotatedAt)
	}

	// Everything else decides on the locked state: grace replays, reuse,
	// refusals (and an active token that turned out to need no fast path).
	var now time.Time
	var v presentation
	revs, err := s.store.Refresh(ctx, p.Selector, func(state RefreshState) (RefreshOutcome, error) {
		now, st = s.nowUTC(), state
		if v, err = s.classify(p, succ, state, c, now); err != nil {
			return RefreshOutcome{}, err
		}
		switch v {
		case presentedActive:
			return s.rotation(succ, state, now, client), nil
		case presentedReplay:
			return RefreshOutcome{Kind: OutcomeNone, Now: now}, nil
		}
		return s.reuseRevocation(state, now, client), nil
	})
	if errors.Is(err, ErrNotFound) {
		return TokenPair{}, errUnknownToken
	}
	if err != nil {
		return TokenPair{}, err
	}
	if v == presentedReuse {
		s.deny.Add(revs...)
		return TokenPair{}, errReuseDetected
	}
	// Rotated here, or a grace replay: either way the session's active
	// token is now succ.
	exp := st.Session.Chain.ActiveExpiresAt
	if v == presentedActive {
		exp = minTime(now.Add(s.cfg.RefreshTTL), st.Session.ExpiresAt)
	}
	return s.pair(st.User, c, st.Session.ID, succ.Token, exp, now)
}

// presentation is what a presented, authentic, live refresh token is to its
// session: the active token, the grace-eligible predecessor, or a used
// token (reuse).
type presentation int

const (
	presentedActive presentation = iota
	presentedReplay
	presentedReuse
)

// classify applies the rules of SPEC §2 to a token presented at now, read
// from its locked session. It is pure. Refusals (§2.5: unknown, revoked,
// expired, disabled; a token of another client's session; and a clock too
// far behind the rotating instance's) are errors and must change nothing.
func (s *Service) classify(p ParsedRefresh, succ IssuedRefresh, st RefreshState, c Client, now time.Time) (presentation, error) {
	if !s.codec.Matches(p, st.Token.VerifierHash) {
		return 0, errUnknownToken
	}
	sess := st.Session
	if s.sessionClient(sess) != c.ID {
		return 0, errWrongClient // another client's token: not even its reuse is ours to judge
	}
	switch {
	case sess.RevokedAt != nil: // terminal: no grace, no second revocation
		return 0, errSessionRevoked
	case !now.Before(sess.ExpiresAt):
		return 0, errSessionExpired
	case st.User.Disabled:
		return 0, errUserUnavailable
	}
	if !now.Before(st.Token.ExpiresAt) { // SPEC §2.5: expired changes nothing, used or not
		return 0, errTokenExpired
	}
	if bytes.Equal(st.Token.Selector, sess.Chain.ActiveSelector) {
		return presentedActive, nil
	}
	grace, err := s.inGrace(succ, st, now)
	if err != nil {
		return 0, err
	}
	if grace {
		return presentedReplay, nil
	}
	return presentedReuse, nil
}

// rotation is the outcome that rotates the active token of st into succ.
func (s *Service) rotation(succ IssuedRefresh, st RefreshState, now time.Time, client ClientInfo) RefreshOutcome {
	sess := st.Session
	next := RefreshRecord{
		Selector: succ.Selector, VerifierHash: succ.VerifierHash, ParentSelector: st.Token.Selector,
		SessionID: sess.ID, CreatedAt: now, ExpiresAt: minTime(now.Add(s.cfg.RefreshTTL), sess.ExpiresAt),
	}
	return RefreshOutcome{Kind: OutcomeRotate, Now: now, Successor: next,
		Event: AuditEvent{At: now, Kind: EventRefresh, UserID: &sess.UserID, SessionID: &sess.ID, IP: client.IP}}
}

// reuseRevocation is the outcome that revokes st's session for reuse.
func (s *Service) reuseRevocation(st RefreshState, now time.Time, client ClientInfo) RefreshOutcome {
	sess := st.Session
	return RefreshOutcome{
		Kind: OutcomeRevoke, Now: now,
		Revoke: SessionRevocation{
			SessionID: sess.ID, UserID: sess.UserID, Reason: ReasonReuseDetected, At: now,
			DenyUntil: s.denyUntil(now),
			Event: AuditEvent{At: now, Kind: EventReuseDetected, IP: client.IP,
				Detail: map[string]string{"reason": ReasonReuseDetected}},
		},
	}
}

// MaxClockSkew is the clock difference between instances that the grace
// window tolerates. A replay read by an instance whose clock is behind the
// rotating instance's (a negative elapsed time) is never reuse: within
// MaxClockSkew it counts as elapsed time zero, and beyond it the replay is
// refused as temporarily unavailable (ErrClockSkew), changing nothing, so a
// broken clock is reported instead of ending sessions. A lagging clock also
// lengthens the window, by at most the lag, from that instance's view.
const MaxClockSkew = 2 * time.Second

// inGrace reports whether a used token may be replayed: it is the token
// rotated last (an older ancestor never is), it was rotated less than
// ReuseGrace ago (the rotation time, never a later update), its successor is
// still the active, unexpired token, and that successor is the one derived
// from the presented token.
func (s *Service) inGrace(succ IssuedRefresh, st RefreshState, now time.Time) (bool, error) {
	c := st.Session.Chain
	if s.cfg.ReuseGrace <= 0 || c.PrevSelector == nil || !bytes.Equal(st.Token.Selector, c.PrevSelector) {
		return false, nil
	}
	elapsed := now.Sub(c.RotatedAt)
	if elapsed < -MaxClockSkew {
		return false, ErrClockSkew
	}
	if elapsed >= s.cfg.ReuseGrace || !now.Before(c.ActiveExpiresAt) {
		return false, nil
	}
	return bytes.Equal(succ.Selector, c.ActiveSelector), nil
}

// denyMargin covers the time between reading the clock for a revocation and
// its commit (pool and lock waits), and clock skew between instances: an
// access token issued by a rotation that won the lock just before must not
// outlive the entry.
const denyMargin = time.Minute

// denyUntil is how long a session revoked at now must stay on the denylist:
// until the last access token it may have issued has expired, plus leeway
// and margin.
func (s *Service) denyUntil(now time.Time) time.Time {
	return now.Add(s.cfg.AccessTTL + Leeway + denyMargin)
}
