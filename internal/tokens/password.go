package tokens

import (
	"context"
	"errors"
	"fmt"
)

// ChangePassword checks the current password, stores the new one and
// revokes every other session of the user, in one transaction.
func (s *Service) ChangePassword(ctx context.Context, p Principal, current, next string, client ClientInfo) error {
	if len(current) > MaxPasswordLen {
		return InvalidInput("current_password must be at most 1024 bytes")
	}
	if err := ValidatePassword(next); err != nil {
		return err
	}
	u, err := s.store.UserByID(ctx, p.UserID)
	if err != nil {
		return err
	}
	if ok, err := s.passwords.Verify(ctx, u.PasswordHash, current); errors.Is(err, ErrBusy) {
		return err
	} else if err != nil || !ok {
		uid := p.UserID
		_ = s.store.AddAudit(ctx, AuditEvent{At: s.nowUTC(), Kind: EventPasswordChangeFailed, UserID: &uid, SessionID: &p.SessionID, IP: client.IP})
		return fmt.Errorf("%w: current password is wrong", ErrInvalidGrant)
	}
	hash, err := s.passwords.Hash(ctx, next)
	if err != nil {
		return err
	}
	now := s.nowUTC()
	r := s.revocation(ReasonPasswordChange, EventRevoked, now, client)
	r.UserID, r.Except = p.UserID, p.SessionID
	uid := p.UserID
	_, revs, err := s.store.UpdateUser(ctx, UserUpdate{
		ID: p.UserID, PasswordHash: &hash, Revoke: &r,
		Event: &AuditEvent{At: now, Kind: EventPasswordChanged, UserID: &uid, SessionID: &p.SessionID, IP: client.IP},
	})
	if err != nil {
		return err
	}
	s.revoked(ReasonPasswordChange, revs)
	return nil
}
