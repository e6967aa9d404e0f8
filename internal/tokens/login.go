package tokens

import (
	"context"
	"errors"
	"github.com/google/uuid"
	"strings"
	"time"
)

// Login is LoginClient for the default client.
func (s *Service) Login(ctx context.Context, email, password string, client ClientInfo) (TokenPair, error) {
	return s.LoginClient(ctx, s.DefaultClient(), email, password, client)
}

// LoginClient checks credentials and opens a session of client c (already
// authenticated by the caller). Every refusal is the same ErrInvalidGrant,
// and an unknown email costs a password hash like a known one.
func (s *Service) LoginClient(ctx context.Context, c Client, email, password string, client ClientInfo) (TokenPair, error) {
	if !c.Allows(GrantPassword) {
		return TokenPair{}, errGrantNotAllowed
	}
	if len(password) > MaxPasswordLen {
		return TokenPair{}, InvalidInput("password must be at most 1024 bytes")
	}
	now := s.nowUTC()
	failed := func(userID *uuid.UUID) (TokenPair, error) {
		if err := s.store.AddAudit(ctx, AuditEvent{At: now, Kind: EventLoginFailed, UserID: userID, IP: client.IP}); err != nil && errors.Is(err, ErrUnavailable) {
			return TokenPair{}, err
		}
		s.obs.LoginFailed()
		return TokenPair{}, errBadCredentials
	}
	norm, normErr := NormalizeEmail(email)
	var u User
	var lookupErr error = ErrNotFound
	if normErr == nil {
		u, lookupErr = s.store.UserByEmail(ctx, norm)
		if lookupErr != nil && !errors.Is(lookupErr, ErrNotFound) {
			return TokenPair{}, lookupErr
		}
	}
	if lookupErr != nil {
		if _, err := s.passwords.Verify(ctx, s.dummyHash, password); errors.Is(err, ErrBusy) {
			return TokenPair{}, err
		}
		return failed(nil)
	}
	ok, err := s.passwords.Verify(ctx, u.PasswordHash, password)
	if errors.Is(err, ErrBusy) {
		return TokenPair{}, err
	}
	if err != nil || !ok || u.Disabled {
		return failed(&u.ID)
	}
	now = s.nowUTC() // after the password check (and any wait for a hashing slot)
	sess := Session{
		ID: uuid.New(), UserID: u.ID, CreatedAt: now, LastUsedAt: now,
		ExpiresAt: now.Add(s.cfg.SessionMaxLifetime),
		UserAgent: userAgent(client.UserAgent), IP: client.IP, ClientID: s.storedClientID(c),
	}
	sess.LastIP, sess.LastUserAgent = sess.IP, sess.UserAgent
	first, err := s.codec.First(sess.ID, now)
	if err != nil {
		return TokenPair{}, err
	}
	sess.Chain = Chain{VerifierHash: first.VerifierHash, ActiveExpiresAt: minTime(now.Add(s.cfg.RefreshTTL), sess.ExpiresAt), RotatedAt: now}
	// The token carries the roles of the row the session committed
	// against, not of the one read before the password check: a role
	// removed meanwhile is not issued (SPEC §3: a removed admin must not
	// keep, or restore, its role).
	evict := s.revocation(ReasonSessionLimit, EventSessionEvicted, now, client)
	evict.UserID = u.ID
	committed, evicted, err := s.store.CreateSession(ctx, NewSession{
		Session: sess, PasswordHash: u.PasswordHash,
		Event:       AuditEvent{At: now, Kind: EventLogin, UserID: &u.ID, SessionID: &sess.ID, IP: client.IP},
		MaxSessions: s.cfg.MaxSessionsPerUser, Evict: evict,
	})
	s.revoked(ReasonSessionLimit, evicted)
	if errors.Is(err, ErrNotFound) { // disabled or deleted meanwhile
		return failed(&u.ID)
	}
	if err != nil {
		return TokenPair{}, err
	}
	return s.pair(committed, c, sess.ID, sess.ExpiresAt, first.Token, sess.Chain.ActiveExpiresAt, now)
}

// userAgent cleans a client's User-Agent before it is stored: it may carry
// any bytes, a text column takes only UTF-8, and 512 bytes are plenty.
func userAgent(ua string) string {
	return truncate(strings.ToValidUTF8(ua, "\uFFFD"), 512)
}

// pair signs an access token of client c for session sid, which ends at
// sessionEnd, and assembles the token response.
func (s *Service) pair(u User, c Client, sid uuid.UUID, sessionEnd time.Time, refresh string, refreshExp, now time.Time) (TokenPair, error) {
	at, p, err := s.access.issue(accessGrant{userID: u.ID, sid: sid, email: u.Email, roles: u.Roles,
		clientID: c.ID, audience: c.Audience, notAfter: sessionEnd}, now)
	if err != nil {
		return TokenPair{}, err
	}
	return TokenPair{
		AccessToken: at, ExpiresIn: int64(p.ExpiresAt.Sub(p.IssuedAt) / time.Second),
		RefreshToken: refresh, RefreshExpiresIn: int64(refreshExp.Sub(now) / time.Second),
		SessionID: sid, Principal: p,
	}, nil
}
