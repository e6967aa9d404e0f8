package tokens

import "time"

// The rules of SPEC §2 for one presented refresh token, in one place. The
// Service decides every presentation with Decide, on the state its store
// read under the session lock; a store's one-statement fast path
// (FastRotator) must agree with it, and the conformance suite checks that
// it does.

// Verdict is what an authentic, live presented token is to its session.
type Verdict int

// Verdicts of Decide.
const (
	// VerdictRotate: the active token. Rotate it (SPEC §2.2).
	VerdictRotate Verdict = iota + 1
	// VerdictReplay: the token rotated last, inside the grace window, its
	// successor still active. Answer that same successor (SPEC §2.3).
	VerdictReplay
	// VerdictReuse: any other used token. Revoke the session (SPEC §2.4).
	VerdictReuse
)

// Policy is the configuration the rules depend on.
type Policy struct {
	// ReuseGrace is REFRESH_REUSE_GRACE; 0 is strict mode.
	ReuseGrace time.Duration
}

// Presentation is everything the rules look at: the state read while the
// session is serialized, what the token checks established about the
// presented token against it, the presenting client, and one clock reading
// taken after the session was serialized (SPEC §2.9).
type Presentation struct {
	State RefreshState
	Token TokenCheck
	// ClientID is the presenting client as sessions store it ("" for the
	// default client).
	ClientID string
	Now      time.Time
}

// TokenCheck is what the codec established, in constant time, about a
// presented token against its session's stored state.
type TokenCheck struct {
	// Authentic: this server minted the token for this session (v2: its
	// tag holds, it names the session and no later generation than the
	// active one, and at the active generation its secret matches; v1: its
	// refresh_tokens row's verifier hash matches).
	Authentic bool
	// Active: it is the session's active token.
	Active bool
	// Predecessor: it is the token rotated last: the successor derived from
	// it is the session's active token. An older ancestor never is.
	Predecessor bool
	// ExpiresAt is the token's idle expiry.
	ExpiresAt time.Time
}

// Decide applies SPEC §2 to one presentation. It is pure. A refusal is an
// error (ErrInvalidGrant, or ErrClockSkew) and must change nothing: an
// unknown or forged token, another client's session, a revoked or expired
// session, a disabled user, an expired token (used or not), a clock too far
// behind the rotating instance's.
func Decide(pol Policy, p Presentation) (Verdict, error) {
	st, now, tok := p.State, p.Now, p.Token
	sess := st.Session
	switch {
	case !tok.Authentic: // §2.5 unknown (forged)
		return 0, errUnknownToken
	case sess.ClientID != p.ClientID: // RFC 6749 §6: not even another client's reuse is ours to judge
		return 0, errWrongClient
	case sess.RevokedAt != nil: // §2.7 revoked is terminal: no grace, no second revocation
		return 0, errSessionRevoked
	case !now.Before(sess.ExpiresAt): // §2.5 expired session
		return 0, errSessionExpired
	case st.User.Disabled: // §3 a disabled user's sessions are over
		return 0, errUserUnavailable
	}
	expired := !now.Before(tok.ExpiresAt)
	if tok.Active {
		if expired { // §2.5
			return 0, errTokenExpired
		}
		return VerdictRotate, nil // §2.1, §2.2
	}
	grace, err := inGrace(pol, p)
	switch {
	case err != nil:
		return 0, err
	case grace:
		// §2.3 over §2.5: a retry of a token rotated while it was valid
		// gets its successor even if the token itself expired since, so
		// a lost reply near the token's end does not end the session.
		return VerdictReplay, nil
	case expired: // §2.5: an expired used token changes nothing
		return 0, errTokenExpired
	}
	return VerdictReuse, nil // §2.4, §2.8
}

// MaxClockSkew is the clock difference between instances that the grace
// window tolerates. A replay read by an instance whose clock is behind the
// rotating instance's (a negative elapsed time) is never reuse: within
// MaxClockSkew it counts as elapsed time zero, and beyond it the replay is
// refused as temporarily unavailable (ErrClockSkew), changing nothing, so a
// broken clock is reported instead of ending sessions. A lagging clock also
// lengthens the window, by at most the lag, from that instance's view.
const MaxClockSkew = 2 * time.Second

// inGrace reports whether a used token may be replayed (SPEC §2.3, §2.8,
// §2.9): it is the token rotated last (an older ancestor never is), it was
// rotated less than ReuseGrace ago (the rotation time, never a later
// update), and its successor is still the active, unexpired token.
func inGrace(pol Policy, p Presentation) (bool, error) {
	c, now := p.State.Session.Chain, p.Now
	if pol.ReuseGrace <= 0 || !p.Token.Predecessor {
		return false, nil
	}
	elapsed := now.Sub(c.RotatedAt)
	if elapsed < -MaxClockSkew {
		return false, ErrClockSkew
	}
	return elapsed < pol.ReuseGrace && now.Before(c.ActiveExpiresAt), nil
}
