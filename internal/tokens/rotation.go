package tokens

import (
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

	// Fast path: the active token of a live session, in one statement, for
	// stores that offer one.
	var st RefreshState
	if fr, ok := s.store.(FastRotator); ok {
		st, ok, err := fr.RotateActive(ctx, ActiveRotation{
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
			s.obs.Refreshed(false)
			return s.pair(st.User, c, st.Session.ID, st.Session.ExpiresAt, succ.Token, st.Session.Chain.ActiveExpiresAt, st.Session.Chain.RotatedAt)
		}
	}

	// Everything else decides on the locked state: grace replays, reuse,
	// refusals (and an active token that turned out to need no fast path).
	var now time.Time
	var v Verdict
	revs, err := s.store.Refresh(ctx, p.Selector, func(state RefreshState) (RefreshOutcome, error) {
		now, st = s.nowUTC(), state
		if v, err = s.classify(p, succ, state, c, now); err != nil {
			return RefreshOutcome{}, err
		}
		switch v {
		case VerdictRotate:
			return s.rotation(succ, state, now, client), nil
		case VerdictReplay:
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
	if v == VerdictReuse {
		s.obs.ReuseDetected()
		s.revoked(ReasonReuseDetected, revs)
		return TokenPair{}, errReuseDetected
	}
	s.obs.Refreshed(v == VerdictReplay)
	// Rotated here, or a grace replay: either way the session's active
	// token is now succ.
	exp := st.Session.Chain.ActiveExpiresAt
	if v == VerdictRotate {
		exp = minTime(now.Add(s.cfg.RefreshTTL), st.Session.ExpiresAt)
	}
	return s.pair(st.User, c, st.Session.ID, st.Session.ExpiresAt, succ.Token, exp, now)
}

// classify decides a presentation of p by client c at now, on the state
// read under the session lock: Decide with this service's policy.
func (s *Service) classify(p ParsedRefresh, succ IssuedRefresh, st RefreshState, c Client, now time.Time) (Verdict, error) {
	if st.Session.ClientID == s.cfg.DefaultClientID { // stored by name: the default client all the same
		st.Session.ClientID = ""
	}
	return Decide(Policy{ReuseGrace: s.cfg.ReuseGrace}, Presentation{
		State: st, VerifierOK: s.codec.Matches(p, st.Token.VerifierHash),
		ClientID: s.storedClientID(c), Successor: succ.Selector, Now: now,
	})
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
				Detail: map[string]string{"reason": string(ReasonReuseDetected)}},
		},
	}
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
