package tokens

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// revoke writes a session revocation and adds it to the local denylist at
// once; other instances learn of it through the store's notifications.
func (s *Service) revoke(ctx context.Context, r SessionRevocation) ([]Revocation, error) {
	revs, err := s.store.RevokeSessions(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("revoke sessions: %w", err)
	}
	s.revoked(r.Reason, revs)
	return revs, nil
}

func (s *Service) revocation(reason Reason, kind EventKind, now time.Time, client ClientInfo) SessionRevocation {
	return SessionRevocation{
		Reason: reason, At: now, DenyUntil: s.denyUntil(now),
		Event: AuditEvent{At: now, Kind: kind, IP: client.IP, Detail: map[string]string{"reason": string(reason)}},
	}
}

// LogoutRequest names the session to end: by access token, refresh token or
// both. Global ends every session of the user.
type LogoutRequest struct {
	Principal    *Principal
	RefreshToken string
	Global       bool
	Client       ClientInfo
	// App is the client presenting RefreshToken; nil for the default one.
	App *Client
}

// Logout revokes the caller's session, or all of the user's sessions. The
// presented access token is denylisted by its jti as well.
func (s *Service) Logout(ctx context.Context, req LogoutRequest) error {
	now := s.nowUTC()
	var userID, sid uuid.UUID
	if req.Principal != nil {
		userID, sid = req.Principal.UserID, req.Principal.SessionID
	}
	if req.RefreshToken != "" {
		// The refresh token is judged by the rotation rules on its locked
		// session: the active token or the grace-eligible predecessor speaks
		// for the session; any other used token is reuse (the session is
		// revoked for it and the logout refused); a dead token changes
		// nothing.
		var owner uuid.UUID
		alsoUser := uuid.Nil
		if req.Principal != nil {
			alsoUser = userID
		}
		app := s.DefaultClient()
		if req.App != nil {
			app = *req.App
		}
		sess, err := s.endByRefresh(ctx, app, req.RefreshToken, req.Client, func(sess Session) (*SessionRevocation, error) {
			if alsoUser != uuid.Nil && sess.UserID != alsoUser {
				return nil, errDifferentUsers
			}
			owner = sess.UserID
			if req.Global {
				return nil, nil // every session goes below
			}
			r := s.revocation(ReasonLogout, EventLogout, now, req.Client)
			r.UserID, r.SessionID = sess.UserID, sess.ID
			return &r, nil
		})
		if errors.Is(err, errSessionRevoked) && !req.Global && req.Principal == nil {
			return nil // already ended: logging out again is a no-op
		}
		deadBesideAccess := req.Principal != nil && errors.Is(err, ErrInvalidGrant) && !IsReuse(err) && !errors.Is(err, errDifferentUsers)
		switch {
		case deadBesideAccess:
			// A dead refresh token (expired, unknown, forged, of an ended
			// session) beside a valid access token: the access token's
			// session still ends, as a logout without the refresh token.
		case err != nil:
			return err
		case !req.Global:
			if req.Principal != nil {
				return s.denyAccess(ctx, *req.Principal, now, req.Client, ReasonLogout)
			}
			return nil
		default:
			userID, sid = owner, sess.ID
		}
	}
	if userID == uuid.Nil {
		return fmt.Errorf("%w: no token presented", ErrInvalidToken)
	}
	r := s.revocation(ReasonLogout, EventLogout, now, req.Client)
	r.UserID, r.SessionID = userID, sid
	if req.Global {
		r.Reason, r.SessionID = ReasonLogoutAll, uuid.Nil
		r.Event.Detail["reason"] = string(ReasonLogoutAll)
	}
	if _, err := s.revoke(ctx, r); err != nil {
		return err
	}
	if req.Principal != nil {
		return s.denyAccess(ctx, *req.Principal, now, req.Client, ReasonLogout)
	}
	return nil
}

// errDifferentUsers refuses a logout whose access and refresh tokens belong
// to two users.
var errDifferentUsers = grantError{"the tokens belong to different users"}

// endByRefresh judges a refresh token presented to end its session (logout,
// RFC 7009 revocation) by the rotation rules, on its locked session and one
// clock reading taken after the lock: for the active token or the
// grace-eligible predecessor it applies what end returns (a revocation, or
// nil for nothing) and returns the session; any other used token is reuse:
// the session is revoked for it and errReuseDetected returned. Unknown,
// forged, expired and revoked tokens are refused (ErrInvalidGrant) and change
// nothing.
func (s *Service) endByRefresh(ctx context.Context, c Client, token string, client ClientInfo, end func(Session) (*SessionRevocation, error)) (Session, error) {
	p, err := s.parse(token)
	if err != nil {
		return Session{}, err
	}
	succ := s.codec.SuccessorSecret(p)
	var sess Session
	var v Verdict
	reason := ReasonReuseDetected
	revs, err := s.store.Refresh(ctx, ref(p), func(st RefreshState) (RefreshOutcome, error) {
		now := s.nowUTC()
		sess = st.Session
		chk, _ := s.codec.Check(p, succ, st, s.cfg.RefreshTTL)
		if v, err = s.classify(chk, st, c, now); err != nil {
			return RefreshOutcome{}, err
		}
		if v == VerdictReuse {
			return s.reuseRevocation(st, now, client), nil
		}
		r, err := end(st.Session)
		if err != nil || r == nil {
			return RefreshOutcome{Kind: OutcomeNone, Now: now}, err
		}
		r.At, r.DenyUntil = now, s.denyUntil(now)
		r.Event.At = now
		reason = r.Reason
		return RefreshOutcome{Kind: OutcomeRevoke, Now: now, Revoke: *r}, nil
	})
	if errors.Is(err, ErrNotFound) {
		return Session{}, errUnknownToken
	}
	if err != nil {
		return Session{}, err
	}
	if v == VerdictReuse {
		s.obs.ReuseDetected()
	}
	s.revoked(reason, revs)
	if v == VerdictReuse {
		return Session{}, errReuseDetected
	}
	return sess, nil
}

func (s *Service) denyAccess(ctx context.Context, p Principal, now time.Time, client ClientInfo, reason Reason) error {
	if !now.Before(p.ExpiresAt.Add(Leeway)) {
		return nil // expired anyway
	}
	if s.deny.Denied(p.SessionID, p.TokenID, now) {
		return nil // already refused: revocation is idempotent and writes nothing
	}
	uid, sid := p.UserID, p.SessionID
	r, err := s.store.DenyToken(ctx, p.TokenID, p.ExpiresAt.Add(Leeway), AuditEvent{
		At: now, Kind: EventRevoked, UserID: &uid, SessionID: &sid, IP: client.IP,
		Detail: map[string]string{"reason": string(reason), "jti": p.TokenID.String()},
	})
	if errors.Is(err, ErrConflict) {
		return nil // denied already (by another instance): nothing written
	}
	if err != nil {
		return fmt.Errorf("deny token: %w", err)
	}
	s.deny.Add(r)
	s.obs.TokenDenied(reason)
	return nil
}

// RevokeToken is RevokeTokenFor the default client.
func (s *Service) RevokeToken(ctx context.Context, token, hint string, client ClientInfo) error {
	return s.RevokeTokenFor(ctx, s.DefaultClient(), token, hint, client)
}

// errNotYourToken refuses a revocation of another client's token (RFC 7009
// §2.1: the server verifies that the token was issued to the client).
var errNotYourToken = clientError{ErrUnauthorizedClient, "the token was not issued to this client"}

// RevokeTokenFor implements RFC 7009 for client c (already authenticated
// by the caller): a refresh token revokes its session, an access token is
// denylisted. Unknown and invalid tokens are not an error; another
// client's token is ErrUnauthorizedClient.
func (s *Service) RevokeTokenFor(ctx context.Context, c Client, token, hint string, client ClientInfo) error {
	if strings.HasPrefix(token, RefreshPrefix) {
		_, err := s.endByRefresh(ctx, c, token, client, func(sess Session) (*SessionRevocation, error) {
			r := s.revocation(ReasonRevokeEndpoint, EventRevoked, time.Time{}, client)
			r.SessionID, r.UserID = sess.ID, sess.UserID
			return &r, nil
		})
		if errors.Is(err, errWrongClient) {
			return errNotYourToken
		}
		if errors.Is(err, ErrInvalidGrant) { // RFC 7009 §2.2: unknown, dead or reused tokens are not an error
			return nil
		}
		return err
	}
	p, err := s.access.Verify(token)
	if err != nil {
		return nil
	}
	if p.ClientID != c.ID {
		return errNotYourToken
	}
	return s.denyAccess(ctx, p, s.nowUTC(), client, ReasonRevokeEndpoint)
}

// Introspect reports an access token as active or not (RFC 7662). It never
// touches the store.
func (s *Service) Introspect(token string) (Principal, bool) {
	p, err := s.Authenticate(token)
	return p, err == nil
}

// RevocationFeed returns one page of at most limit unexpired revocations
// from cursor c, the cursor to pass next, and whether more are waiting now.
// Entries may repeat across calls; none is ever skipped.
func (s *Service) RevocationFeed(ctx context.Context, c FeedCursor, limit int) ([]Revocation, FeedCursor, bool, error) {
	if limit <= 0 || limit > MaxFeedPage {
		limit = MaxFeedPage
	}
	return s.store.RevocationFeed(ctx, c, s.now(), limit)
}
