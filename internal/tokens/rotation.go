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
	p, err := s.parse(token) // a forged v2 token ends here: nothing is looked up
	if err != nil {
		return TokenPair{}, err
	}
	client.UserAgent = userAgent(client.UserAgent)
	succ := s.codec.SuccessorSecret(p)

	// Fast path: the active v2 token of a live session, in one statement
	// on its row, for stores that offer one.
	if fr, ok := s.store.(FastRotator); ok && !p.Legacy {
		st, ok, err := fr.RotateActive(ctx, ActiveRotation{
			SessionID: p.SessionID, Generation: p.Generation, IssuedAt: p.IssuedAt, VerifierHash: s.codec.VerifierHash(p),
			SuccessorHash: succ.Hash, RefreshTTL: s.cfg.RefreshTTL, Now: s.nowUTC,
			ClientID: s.storedClientID(c), DefaultClientID: s.cfg.DefaultClientID,
			Client: client, EveryRefresh: s.cfg.AuditEveryRefresh,
		})
		if err != nil {
			return TokenPair{}, err
		}
		if ok {
			s.obs.Refreshed(false)
			ch := st.Session.Chain
			next := s.codec.Mint(st.Session.ID, ch.Generation, ch.RotatedAt, succ)
			return s.pair(st.User, c, st.Session.ID, st.Session.ExpiresAt, next.Token, ch.ActiveExpiresAt, ch.RotatedAt)
		}
	}

	// Everything else decides on the locked state: grace replays, reuse,
	// refusals, v1 tokens (and an active token the fast path declined).
	var (
		now  time.Time
		v    Verdict
		st   RefreshState
		next string
	)
	revs, err := s.store.Refresh(ctx, ref(p), func(state RefreshState) (RefreshOutcome, error) {
		now, st = s.nowUTC(), state
		var chk TokenCheck
		chk, next = s.codec.Check(p, succ, state, s.cfg.RefreshTTL)
		if v, err = s.classify(chk, state, c, now); err != nil {
			return RefreshOutcome{}, err
		}
		switch v {
		case VerdictRotate:
			out := s.rotation(p, succ, state, now, client)
			next = s.codec.Mint(state.Session.ID, out.Chain.Generation, now, succ).Token
			st.Session.Chain = out.Chain
			return out, nil
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
	// token is now next.
	return s.pair(st.User, c, st.Session.ID, st.Session.ExpiresAt, next, st.Session.Chain.ActiveExpiresAt, now)
}

// parse takes a presented refresh token apart: a v2 token whose tag fails,
// and a v1-shaped token when the store can hold none, are unknown before any
// lookup.
func (s *Service) parse(token string) (ParsedRefresh, error) {
	p, err := s.codec.Parse(token)
	if err != nil {
		return ParsedRefresh{}, err
	}
	if ls, ok := s.store.(LegacyStore); ok && p.Legacy && !ls.HasLegacyTokens() {
		return ParsedRefresh{}, errUnknownToken
	}
	return p, nil
}

// ref names the session of a parsed token.
func ref(p ParsedRefresh) TokenRef {
	if p.Legacy {
		return TokenRef{LegacySelector: p.Selector}
	}
	return TokenRef{SessionID: p.SessionID}
}

// classify decides a presentation by client c at now, on the state read
// under the session lock: Decide with this service's policy.
func (s *Service) classify(chk TokenCheck, st RefreshState, c Client, now time.Time) (Verdict, error) {
	if st.Session.ClientID == s.cfg.DefaultClientID { // stored by name: the default client all the same
		st.Session.ClientID = ""
	}
	return Decide(Policy{ReuseGrace: s.cfg.ReuseGrace}, Presentation{
		State: st, Token: chk, ClientID: s.storedClientID(c), Now: now,
	})
}

// rotation is the outcome that rotates the active token of st (presented
// as p) into the token with secret succ.
func (s *Service) rotation(p ParsedRefresh, succ Secret, st RefreshState, now time.Time, client ClientInfo) RefreshOutcome {
	sess := st.Session
	next := Chain{
		Generation: sess.Chain.Generation + 1, VerifierHash: succ.Hash,
		ActiveExpiresAt: minTime(now.Add(s.cfg.RefreshTTL), sess.ExpiresAt), RotatedAt: now,
	}
	if p.Legacy { // the session moves to v2: its v1 token stays the grace-eligible predecessor
		next.Generation, next.PrevSelector = 1, p.Selector
	}
	return RefreshOutcome{Kind: OutcomeRotate, Now: now, Chain: next, Client: client,
		Events: s.rotationEvents(sess, now, client)}
}

// rotationEvents are the audit events of a rotation of sess by client at
// now: EventSessionMoved if the caller's address or user agent is not the
// session's last one, and EventRefresh if every refresh is audited. A
// store's fast path writes the same (FastRotator).
func (s *Service) rotationEvents(sess Session, now time.Time, client ClientInfo) []AuditEvent {
	var evs []AuditEvent
	if s.cfg.AuditEveryRefresh {
		evs = append(evs, AuditEvent{At: now, Kind: EventRefresh, IP: client.IP})
	}
	if moved(sess, client) {
		evs = append(evs, MovedEvent(sess, now, client))
	}
	return evs
}

func moved(sess Session, client ClientInfo) bool {
	return sess.LastIP != client.IP || sess.LastUserAgent != client.UserAgent
}

// MovedEvent is the EventSessionMoved of a rotation of sess by client at
// now: its address, and in Detail the previous address and both user
// agents.
func MovedEvent(sess Session, now time.Time, client ClientInfo) AuditEvent {
	return AuditEvent{At: now, Kind: EventSessionMoved, IP: client.IP, Detail: map[string]string{
		"previous_ip": sess.LastIP, "previous_user_agent": sess.LastUserAgent, "user_agent": client.UserAgent,
	}}
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
