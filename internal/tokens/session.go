package tokens

import (
	"time"

	"github.com/google/uuid"
)

// Session is a token family: every refresh token descends from one login.
type Session struct {
	ID            uuid.UUID
	UserID        uuid.UUID
	CreatedAt     time.Time
	LastUsedAt    time.Time
	ExpiresAt     time.Time // absolute: login + SESSION_MAX_LIFETIME
	RevokedAt     *time.Time
	RevokedReason string
	UserAgent     string
	IP            string
	// ClientID is the client the session was issued to; "" is the default
	// client (and every session from before clients existed).
	ClientID string
	Chain    Chain
}

// Chain is a session's rotation state, kept on the session row so that one
// locked row decides every rotation: a session has exactly one active token
// by construction (SPEC §2.1).
type Chain struct {
	ActiveSelector  []byte    // the one active refresh token
	ActiveExpiresAt time.Time // its idle expiry
	PrevSelector    []byte    // the token rotated last, nil before the first rotation
	RotatedAt       time.Time // when PrevSelector was rotated: the grace clock
}

// Revocation reasons recorded on sessions and in audit events.
const (
	ReasonLogout         = "logout"
	ReasonLogoutAll      = "logout_all"
	ReasonUserRevoked    = "user_revoked"
	ReasonAdmin          = "admin"
	ReasonPasswordChange = "password_changed"
	ReasonUserDisabled   = "user_disabled"
	ReasonReuseDetected  = "reuse_detected"
	ReasonRolesReduced   = "roles_reduced"
	ReasonRevokeEndpoint = "revoke_endpoint"
	// ReasonSessionLimit is a session evicted, least recently used first,
	// by a login past MaxSessionsPerUser.
	ReasonSessionLimit = "session_limit"
	// ReasonClientDisabled ends the sessions and client_credentials tokens
	// of a client that was disabled or deleted.
	ReasonClientDisabled = "client_disabled"
	// ReasonClientRolesReduced ends a client's client_credentials tokens
	// when one of its roles is taken away.
	ReasonClientRolesReduced = "client_roles_reduced"
)

// Audit event kinds.
const (
	EventLogin           = "login"
	EventLoginFailed     = "login_failed"
	EventRefresh         = "refresh"
	EventReuseDetected   = "reuse_detected"
	EventLogout          = "logout"
	EventRevoked         = "revoked"
	EventPasswordChanged = "password_changed"
	// EventPasswordChangeFailed is a wrong current password at POST /password.
	EventPasswordChangeFailed = "password_change_failed"
	EventUserDisabled         = "user_disabled"
	EventUserCreated          = "user_created"
	EventUserUpdated          = "user_updated"
	// EventSessionEvicted is a session revoked for ReasonSessionLimit.
	EventSessionEvicted = "session_evicted"
	// Client events.
	EventClientCreated       = "client_created"
	EventClientUpdated       = "client_updated"
	EventClientSecretRotated = "client_secret_rotated"
	EventClientDeleted       = "client_deleted"
)

// AuditEvent is one line of the audit log. Detail never holds a token, a
// password or a hash.
type AuditEvent struct {
	ID        int64
	At        time.Time
	Kind      string
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
