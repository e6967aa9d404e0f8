package tokens

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// Session is a token family: every refresh token descends from one login.
type Session struct {
	ID        uuid.UUID
	UserID    uuid.UUID
	CreatedAt time.Time
	// LastUsedAt is the last rotation (Chain.RotatedAt), or the login.
	LastUsedAt    time.Time
	ExpiresAt     time.Time // absolute: login + SESSION_MAX_LIFETIME
	RevokedAt     *time.Time
	RevokedReason Reason
	UserAgent     string // at login
	IP            string // at login
	// ClientID is the client the session was issued to; "" is the default
	// client (and every session from before clients existed).
	ClientID string
	// RefreshCount is how many rotations the session has had (grace
	// replays are not rotations).
	RefreshCount int64
	// LastIP and LastUserAgent are the caller of the last rotation (at
	// first, of the login). A rotation from another address or user agent
	// writes an EventSessionMoved.
	LastIP        string
	LastUserAgent string
	Chain         Chain
}

// Chain is a session's rotation state, kept on the session row so that one
// locked row decides every rotation: a session has exactly one active token
// by construction (SPEC §2.1), and no row per token is written.
type Chain struct {
	// Generation is the active token's: 0 for a login's first token, one
	// more at each rotation.
	Generation uint64
	// VerifierHash is the keyed hash of the active token's secret; nil
	// while the active token is a v1 token (ActiveSelector).
	VerifierHash []byte
	// ActiveSelector is the active v1 token of a session that has not
	// rotated since the upgrade to v2; nil otherwise.
	ActiveSelector  []byte
	ActiveExpiresAt time.Time // the active token's idle expiry
	// PrevSelector is the v1 token rotated last, while it is the active
	// token's predecessor (a v1 session's rotation, or the rotation that
	// moved it to v2); nil otherwise.
	PrevSelector []byte
	RotatedAt    time.Time // the last rotation: the grace clock and the active token's issue time
}

// Reason is why a session or token was revoked, as recorded on the session
// and in audit events.
type Reason string

// Revocation reasons recorded on sessions and in audit events.
const (
	ReasonLogout         Reason = "logout"
	ReasonLogoutAll      Reason = "logout_all"
	ReasonUserRevoked    Reason = "user_revoked"
	ReasonAdmin          Reason = "admin"
	ReasonPasswordChange Reason = "password_changed"
	ReasonUserDisabled   Reason = "user_disabled"
	ReasonReuseDetected  Reason = "reuse_detected"
	ReasonRolesReduced   Reason = "roles_reduced"
	ReasonRevokeEndpoint Reason = "revoke_endpoint"
	// ReasonSessionLimit is a session evicted, least recently used first,
	// by a login past MaxSessionsPerUser.
	ReasonSessionLimit Reason = "session_limit"
	// ReasonClientDisabled ends the sessions and client_credentials tokens
	// of a client that was disabled or deleted.
	ReasonClientDisabled Reason = "client_disabled"
	// ReasonClientRolesReduced ends a client's client_credentials tokens
	// when one of its roles is taken away.
	ReasonClientRolesReduced Reason = "client_roles_reduced"
)

// EventKind is the kind of an audit event.
type EventKind string

// Audit event kinds.
const (
	EventLogin       EventKind = "login"
	EventLoginFailed EventKind = "login_failed"
	// EventRefresh is a rotation; written only with AuditEveryRefresh.
	EventRefresh EventKind = "refresh"
	// EventSessionMoved is a rotation from another address or user agent
	// than the session's previous one.
	EventSessionMoved    EventKind = "session_moved"
	EventReuseDetected   EventKind = "reuse_detected"
	EventLogout          EventKind = "logout"
	EventRevoked         EventKind = "revoked"
	EventPasswordChanged EventKind = "password_changed"
	// EventPasswordChangeFailed is a wrong current password at POST /password.
	EventPasswordChangeFailed EventKind = "password_change_failed"
	EventUserDisabled         EventKind = "user_disabled"
	EventUserCreated          EventKind = "user_created"
	EventUserUpdated          EventKind = "user_updated"
	// EventSessionEvicted is a session revoked for ReasonSessionLimit.
	EventSessionEvicted EventKind = "session_evicted"
	// Client events.
	EventClientCreated       EventKind = "client_created"
	EventClientUpdated       EventKind = "client_updated"
	EventClientSecretRotated EventKind = "client_secret_rotated"
	EventClientDeleted       EventKind = "client_deleted"
)

// AuditEvent is one line of the audit log. Detail never holds a token, a
// password or a hash.
type AuditEvent struct {
	ID        int64
	At        time.Time
	Kind      EventKind
	UserID    *uuid.UUID
	SessionID *uuid.UUID
	IP        string
	Detail    map[string]string
}

// ClientInfo describes the caller of a request, for sessions and audit.
type ClientInfo struct {
	UserAgent string
	IP        string
}

// RevokeOwnSession revokes one of the caller's sessions. Another user's
// session is ErrNotFound.
func (s *Service) RevokeOwnSession(ctx context.Context, p Principal, id uuid.UUID, client ClientInfo) error {
	sess, err := s.store.Session(ctx, id)
	if err != nil {
		return err
	}
	if sess.UserID != p.UserID {
		return ErrNotFound
	}
	r := s.revocation(ReasonUserRevoked, EventRevoked, s.nowUTC(), client)
	r.SessionID, r.UserID = id, p.UserID
	_, err = s.revoke(ctx, r)
	return err
}

// Sessions lists a user's active sessions.
func (s *Service) Sessions(ctx context.Context, userID uuid.UUID) ([]Session, error) {
	list, _, err := s.SessionsPage(ctx, userID, nil, MaxSessionsPage)
	return list, err
}

// SessionsPage lists up to limit of a user's active sessions after the
// cursor after (nil: from the newest), newest first, and the cursor of the
// next page (nil: none).
func (s *Service) SessionsPage(ctx context.Context, userID uuid.UUID, after *SessionCursor, limit int) ([]Session, *SessionCursor, error) {
	if limit <= 0 || limit > MaxSessionsPage {
		limit = MaxSessionsPage
	}
	list, err := s.store.ActiveSessions(ctx, userID, s.now(), after, limit+1)
	if err != nil || len(list) <= limit {
		return list, nil, err
	}
	list = list[:limit]
	last := list[limit-1]
	return list, &SessionCursor{CreatedAt: last.CreatedAt, ID: last.ID}, nil
}
