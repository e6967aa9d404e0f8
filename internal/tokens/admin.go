package tokens

import (
	"context"

	"github.com/google/uuid"
)

// UpdateUser changes a user's roles and disabled flag. Disabling revokes
// every session of the user in the same transaction.
func (s *Service) UpdateUser(ctx context.Context, admin Principal, id uuid.UUID, disabled *bool, roles *[]string, client ClientInfo) (User, error) {
	if roles != nil {
		r, err := ValidateRoles(*roles)
		if err != nil {
			return User{}, err
		}
		roles = &r
	}
	now := s.nowUTC()
	upd := UserUpdate{ID: id, Disabled: disabled, Roles: roles}
	kind := EventUserUpdated
	if roles != nil {
		// Access tokens carry roles: when one is taken away, the user's
		// sessions end so no token keeps the old role until it expires.
		rv := s.revocation(ReasonRolesReduced, EventRevoked, now, client)
		rv.UserID = id
		upd.RevokeOnRoleLoss = &rv
	}
	if disabled != nil && *disabled {
		kind = EventUserDisabled
		r := s.revocation(ReasonUserDisabled, EventRevoked, now, client)
		r.UserID = id
		upd.Revoke = &r
	}
	actor := admin.Subject()
	upd.Event = &AuditEvent{At: now, Kind: kind, UserID: &id, IP: client.IP, Detail: map[string]string{"by": actor}}
	u, revs, err := s.store.UpdateUser(ctx, upd)
	if err != nil {
		return User{}, err
	}
	reason := ReasonRolesReduced
	if upd.Revoke != nil {
		reason = upd.Revoke.Reason
	}
	s.revoked(reason, revs)
	u.PasswordHash = ""
	return u, nil
}

// RevokeUserSessions revokes every active session of a user and returns how
// many there were.
func (s *Service) RevokeUserSessions(ctx context.Context, admin Principal, userID uuid.UUID, client ClientInfo) (int, error) {
	if _, err := s.store.UserByID(ctx, userID); err != nil {
		return 0, err
	}
	r := s.revocation(ReasonAdmin, EventRevoked, s.nowUTC(), client)
	r.UserID = userID
	r.Event.Detail["by"] = admin.Subject()
	revs, err := s.revoke(ctx, r)
	return len(revs), err
}

// RevokeSession revokes one session of any user. ErrNotFound if there is no
// such session.
func (s *Service) RevokeSession(ctx context.Context, admin Principal, id uuid.UUID, client ClientInfo) error {
	sess, err := s.store.Session(ctx, id)
	if err != nil {
		return err
	}
	r := s.revocation(ReasonAdmin, EventRevoked, s.nowUTC(), client)
	r.SessionID, r.UserID = id, sess.UserID
	r.Event.Detail["by"] = admin.Subject()
	_, err = s.revoke(ctx, r)
	return err
}

// Audit returns up to limit audit events with IDs below before (0: from
// the newest), newest first, and the before of the next page (0: none).
func (s *Service) Audit(ctx context.Context, userID uuid.UUID, before int64, limit int) ([]AuditEvent, int64, error) {
	if limit <= 0 || limit > MaxAuditPage {
		limit = 100
	}
	evs, err := s.store.Audit(ctx, userID, before, limit+1)
	if err != nil || len(evs) <= limit {
		return evs, 0, err
	}
	evs = evs[:limit]
	return evs, evs[limit-1].ID, nil
}

// Page sizes: the largest page each list returns.
const (
	MaxAuditPage    = 1000
	MaxSessionsPage = 200
	MaxFeedPage     = 10000
)

// DefaultMaxSessions is the cap on a user's active sessions that the server
// applies unless configured (MAX_SESSIONS_PER_USER).
const DefaultMaxSessions = 50
