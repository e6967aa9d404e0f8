package tokens

import (
	"bytes"
	"context"
	"errors"
	"time"
)

// Refresh rotates a refresh token (SPEC §2). The presented token's session
// row is locked while the rules below decide, so concurrent presentations
// and revocations of the same session are serialized:
//
//   - an active token is rotated: it becomes used, its successor is issued;
//   - the last rotated token, presented again within ReuseGrace of its
//     rotation while its successor is still active, gets that same successor
//     (derived again from the presented token) and a new access token;
//   - any other used token is reuse: the session is revoked;
//   - unknown, expired and revoked tokens are refused and change nothing.
func (s *Service) Refresh(ctx context.Context, token string, client ClientInfo) (TokenPair, error) {
	p, err := s.codec.Parse(token)
	if err != nil {
		return TokenPair{}, err
	}
	now := s.nowUTC()
	succ := s.codec.Successor(p.Raw)
	next := RefreshRecord{
		Selector: succ.Selector, VerifierHash: succ.VerifierHash, ParentSelector: p.Selector,
		CreatedAt: now, ExpiresAt: now.Add(s.cfg.RefreshTTL),
	}
	event := AuditEvent{At: now, Kind: EventRefresh, IP: client.IP}

	// Fast path: the active token of a live session, in one statement.
	st, ok, err := s.store.RotateActive(ctx, ActiveRotation{
		Selector: p.Selector, VerifierHash: s.codec.VerifierHash(p), Successor: next, Now: now, Event: event,
	})
	if err != nil {
		return TokenPair{}, err
	}
	if ok {
		return s.pair(st.User, st.Session.ID, succ.Token, st.Session.Chain.ActiveExpiresAt, now)
	}

	// Everything else decides on the locked state: grace replays, reuse,
	// refusals (and an active token that turned out to need no fast path).
	var reuse bool
	revs, err := s.store.Refresh(ctx, p.Selector, func(state RefreshState) (RefreshOutcome, error) {
		st = state
		out, err := s.decide(p, succ, next, event, state, now)
		reuse = out.Kind == OutcomeRevoke
		return out, err
	})
	if errors.Is(err, ErrNotFound) {
		return TokenPair{}, errUnknownToken
	}
	if err != nil {
		return TokenPair{}, err
	}
	if reuse {
		s.deny.Add(revs...)
		return TokenPair{}, errReuseDetected
	}
	// Rotated here, or a grace replay: either way the session's active
	// token is now succ.
	return s.pair(st.User, st.Session.ID, succ.Token, activeExpiry(st, next), now)
}

// activeExpiry is the successor's expiry after decide: the capped expiry of
// a rotation it just made, or the stored one of a grace replay.
func activeExpiry(st RefreshState, next RefreshRecord) time.Time {
	if bytes.Equal(st.Session.Chain.ActiveSelector, next.Selector) {
		return st.Session.Chain.ActiveExpiresAt
	}
	return minTime(next.ExpiresAt, st.Session.ExpiresAt)
}

// decide applies the rotation rules to the locked state. It is pure: it
// reads the state and the clock and says what to write.
func (s *Service) decide(p ParsedRefresh, succ IssuedRefresh, next RefreshRecord, event AuditEvent, st RefreshState, now time.Time) (RefreshOutcome, error) {
	if !s.codec.Matches(p, st.Token.VerifierHash) {
		return RefreshOutcome{}, errUnknownToken
	}
	sess := st.Session
	switch {
	case sess.RevokedAt != nil: // terminal: no grace, no second revocation
		return RefreshOutcome{}, errSessionRevoked
	case !now.Before(sess.ExpiresAt):
		return RefreshOutcome{}, errSessionExpired
	case st.User.Disabled:
		return RefreshOutcome{}, errUserUnavailable
	}
	if !now.Before(st.Token.ExpiresAt) { // SPEC §2.5: expired changes nothing, used or not
		return RefreshOutcome{}, errTokenExpired
	}
	if bytes.Equal(st.Token.Selector, sess.Chain.ActiveSelector) {
		next.SessionID = sess.ID
		next.ExpiresAt = minTime(next.ExpiresAt, sess.ExpiresAt)
		event.UserID, event.SessionID = &sess.UserID, &sess.ID
		return RefreshOutcome{Kind: OutcomeRotate, Now: now, Successor: next, Event: event}, nil
	}
	if s.inGrace(succ, st, now) {
		return RefreshOutcome{Kind: OutcomeNone, Now: now}, nil
	}
	return RefreshOutcome{
		Kind: OutcomeRevoke, Now: now,
		Revoke: SessionRevocation{
			SessionID: sess.ID, UserID: sess.UserID, Reason: ReasonReuseDetected, At: now,
			DenyUntil: s.denyUntil(now),
			Event: AuditEvent{At: now, Kind: EventReuseDetected, IP: event.IP,
				Detail: map[string]string{"reason": ReasonReuseDetected}},
		},
	}, nil
}

// inGrace reports whether a used token may be replayed: it is the token
// rotated last (an older ancestor never is), it was rotated less than
// ReuseGrace ago (the rotation time, never a later update), its successor is
// still the active, unexpired token, and that successor is the one derived
// from the presented token.
func (s *Service) inGrace(succ IssuedRefresh, st RefreshState, now time.Time) bool {
	c := st.Session.Chain
	if s.cfg.ReuseGrace <= 0 || c.PrevSelector == nil || !bytes.Equal(st.Token.Selector, c.PrevSelector) {
		return false
	}
	// A clock behind the rotating instance's (negative elapsed) gets no
	// grace: skew must never stretch the window.
	if elapsed := now.Sub(c.RotatedAt); elapsed < 0 || elapsed >= s.cfg.ReuseGrace || !now.Before(c.ActiveExpiresAt) {
		return false
	}
	return bytes.Equal(succ.Selector, c.ActiveSelector)
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
