package tokens

import (
	"context"
	"slices"
	"time"

	"github.com/google/uuid"
)

// RefreshRecord is a v1 refresh token's row (refresh_tokens), kept for
// sessions from before rotation v2: its selector and the keyed hash of its
// verifier, never the token. No v2 token has a row.
type RefreshRecord struct {
	Selector       []byte
	SessionID      uuid.UUID
	VerifierHash   []byte
	ParentSelector []byte // nil for the first token of a session
	CreatedAt      time.Time
	ExpiresAt      time.Time
}

// TokenRef names the session of a presented token: by id (v2), or by the
// selector of a v1 token's row.
type TokenRef struct {
	SessionID      uuid.UUID
	LegacySelector []byte
}

// RefreshState is what Store.Refresh shows the decision function, read while
// the session row is locked.
type RefreshState struct {
	Session Session
	User    User // the session's user; PasswordHash is not loaded
	// Legacy is the v1 token's row, for a TokenRef by selector.
	Legacy RefreshRecord
}

// OutcomeKind says what a refresh decision tells the store to write.
type OutcomeKind int

// Outcome kinds of a refresh decision.
const (
	// OutcomeNone writes nothing (a refusal, or a grace-window replay).
	OutcomeNone OutcomeKind = iota
	// OutcomeRotate replaces the session's Chain with Chain (whose
	// RotatedAt is Now), adds one to its refresh count, makes Client its
	// last caller, and writes Events.
	OutcomeRotate
	// OutcomeRevoke revokes the session as Revoke describes.
	OutcomeRevoke
)

// RefreshOutcome is what the decision function tells Store.Refresh to write.
type RefreshOutcome struct {
	Kind   OutcomeKind
	Now    time.Time
	Chain  Chain        // OutcomeRotate
	Client ClientInfo   // OutcomeRotate
	Events []AuditEvent // OutcomeRotate: the store fills in user and session
	Revoke SessionRevocation
}

// ActiveRotation is the common case of a refresh, which a store does in one
// statement on the session row: the presented v2 token is its session's
// active token.
type ActiveRotation struct {
	SessionID  uuid.UUID
	Generation uint64 // the presented token's
	// IssuedAt is the presented token's issue time: the active token's is
	// the session's last rotation (or login), to the microsecond.
	IssuedAt time.Time
	// VerifierHash is the keyed hash of the presented secret.
	VerifierHash []byte
	// SuccessorHash is the keyed hash of the successor's secret: the new
	// Chain.VerifierHash, at Generation+1.
	SuccessorHash []byte
	RefreshTTL    time.Duration
	// Now is the clock. The store reads it exactly once, at a moment when
	// no other operation on the session can come between the reading and
	// the write (see FastRotator), and uses that one instant for every
	// check and every time it writes.
	Now func() time.Time
	// ClientID is the presenting client ("" for the default client): the
	// session must have been issued to it. For the default client, a
	// session stored under DefaultClientID is its too.
	ClientID        string
	DefaultClientID string
	// Client is the caller: it becomes the session's last caller; if its
	// address or user agent differs from the previous one an
	// EventSessionMoved is written.
	Client ClientInfo
	// EveryRefresh writes an EventRefresh too (AuditEveryRefresh).
	EveryRefresh bool
}

// SessionRevocation describes sessions to revoke and how.
type SessionRevocation struct {
	SessionID uuid.UUID // one session; uuid.Nil for all of UserID's sessions
	UserID    uuid.UUID // owner filter; uuid.Nil only with SessionID set
	Except    uuid.UUID // keep this session (password change); may be Nil
	Reason    Reason
	At        time.Time
	// DenyUntil is when the last access token of the sessions expires: the
	// denylist entries are kept until then.
	DenyUntil time.Time
	// Event is the audit event written once per revoked session; the store
	// fills in UserID and SessionID.
	Event AuditEvent
}

// UserUpdate changes a user and, in the same transaction, may revoke its
// sessions. Nil fields are left alone.
type UserUpdate struct {
	ID           uuid.UUID
	Disabled     *bool
	Roles        *[]string
	PasswordHash *string
	Event        *AuditEvent        // written once, if set
	Revoke       *SessionRevocation // applied after the update, if set
	// RevokeOnRoleLoss is applied after the update if it took away a role
	// the user had (decided on the locked row, so concurrent edits cannot
	// hide a loss). Ignored when Revoke is set.
	RevokeOnRoleLoss *SessionRevocation
}

// RolesLost reports whether a role in before is missing from after.
func RolesLost(before, after []string) bool {
	return slices.ContainsFunc(before, func(r string) bool { return !slices.Contains(after, r) })
}

// NewSession is a login: a session (whose Chain holds its first token)
// and the audit event, stored together.
type NewSession struct {
	Session Session // Session.ClientID "" is the default client
	Event   AuditEvent
	// PasswordHash is the hash the login checked: the session is created
	// only if it is still the user's, so a login racing a password change
	// cannot outlive it.
	PasswordHash string
	// MaxSessions, if positive, caps the user's active sessions: in the
	// same transaction, the least recently used ones beyond MaxSessions
	// (this one included) are revoked as Evict describes.
	MaxSessions int
	Evict       SessionRevocation
}

// SyncCursor is how far an instance has read the denylist: the highest
// entry ID its last read saw, and that read's snapshot (PostgreSQL: xmax
// and the in-progress transactions, whose entries may still commit with
// lower IDs). The zero cursor reads everything.
type SyncCursor struct {
	MaxID int64
	Xmax  int64
	Xip   []int64
}

// newer reports whether c was read after o (cursors never move back).
func (c SyncCursor) newer(o SyncCursor) bool {
	if c.Xmax != o.Xmax {
		return c.Xmax > o.Xmax
	}
	return c.MaxID > o.MaxID
}

// SessionCursor names the last session of a page of ActiveSessions.
type SessionCursor struct {
	CreatedAt time.Time
	ID        uuid.UUID
}

// FeedCursor is a position in the revocation feed. Floor is the store's
// low-water mark of entries that may still be unseen (0: everything); After
// is the last ID of the previous page while paging (0 otherwise); Next is
// the low-water mark read at the first page, which becomes Floor once the
// pages are through.
type FeedCursor struct {
	Floor, After, Next int64
}

// RevokedRetention is how long a revoked session and its tokens are kept, so
// that a late presentation is still recognised as a revoked session's.
const RevokedRetention = 24 * time.Hour

// Store is the persistence the domain needs. Every method is safe for
// concurrent use. Implementations return ErrNotFound and ErrConflict as
// documented, wrap storage failures so that errors.Is(err, ErrUnavailable)
// holds, and never return a token, password or hash in an error message.
//
// Serialization: Refresh, RotateActive (of a FastRotator), RevokeSessions and UpdateUser with Revoke all take
// the same per-session lock (in PostgreSQL, the session row), so a rotation
// racing any revocation ends with the session revoked and no live token.
// CreateSession holds the user against a concurrent disable or password
// change: a session is created only if the user is not disabled and still has
// the checked password when it commits, and a disable or password change that
// commits after it revokes it.
type Store interface {
	// CreateUser stores u. ErrConflict if the normalized email is taken.
	CreateUser(ctx context.Context, u User) error
	// UserByEmail finds a user by normalized email, with its password hash.
	UserByEmail(ctx context.Context, emailNorm string) (User, error)
	// UserByID finds a user, with its password hash.
	UserByID(ctx context.Context, id uuid.UUID) (User, error)
	// UpdateUser applies u atomically and returns the user as it now is and
	// the revocations written. ErrNotFound if there is no such user.
	UpdateUser(ctx context.Context, u UserUpdate) (User, []Revocation, error)

	// CreateSession stores a login atomically and returns the user (without
	// password hash) as of the row it committed against, whose roles the
	// login's access token must carry: a role change that commits first is
	// seen, one that commits later revokes the session. It also returns the
	// revocations of sessions evicted by s.MaxSessions. ErrNotFound if the
	// user does not exist, is disabled, or no longer has the checked
	// password hash.
	CreateSession(ctx context.Context, s NewSession) (User, []Revocation, error)
	// Refresh finds the session ref names (for a v1 selector, through its
	// token's row), locks it, and calls decide exactly once with the
	// current state while the lock is held (decide reads the clock itself,
	// after the lock is taken). If decide returns an error nothing is
	// written and that error is returned; otherwise its outcome is applied
	// in the same transaction, and the revocations it wrote are returned.
	// ErrNotFound (decide not called) if there is no such session or token.
	// If the transaction fails after decide ran, nothing was written.
	Refresh(ctx context.Context, ref TokenRef, decide func(RefreshState) (RefreshOutcome, error)) ([]Revocation, error)
	// RevokeSessions revokes the active sessions r selects, writing one
	// denylist entry and one audit event per session, and returns the
	// entries. Already revoked or expired sessions are left alone.
	RevokeSessions(ctx context.Context, r SessionRevocation) ([]Revocation, error)
	// DenyToken denylists one access token by jti until until and writes ev,
	// in one transaction. If jti, or the session ev.SessionID, is already
	// denylisted it writes nothing (no entry, no event, no notification) and
	// returns ErrConflict.
	DenyToken(ctx context.Context, jti uuid.UUID, until time.Time, ev AuditEvent) (Revocation, error)
	// Session returns one session. ErrNotFound if none.
	Session(ctx context.Context, id uuid.UUID) (Session, error)
	// ActiveSessions lists up to limit of userID's sessions that are
	// neither revoked nor expired at now, newest first (created_at
	// descending, then id), starting after the session after names (nil:
	// from the newest).
	ActiveSessions(ctx context.Context, userID uuid.UUID, now time.Time, after *SessionCursor, limit int) ([]Session, error)

	// Revocations lists the denylist entries with Until > now that may have
	// committed since the cursor since (the zero cursor at first:
	// everything), in ID order, and returns the cursor for the next call.
	// It may repeat entries (callers add them idempotently) but never skips
	// one: an entry whose transaction commits after a call is listed by the
	// next call made with that call's cursor, whatever the order of IDs and
	// commits. It reads only entries that are new since the cursor's read
	// (or were then uncommitted), so a backlog is read once, not on every
	// call while some long transaction runs.
	Revocations(ctx context.Context, since SyncCursor, now time.Time) ([]Revocation, SyncCursor, error)
	// RevocationFeed is one page of the revocation feed for resource
	// servers: up to limit unexpired entries from cursor c, in ID order,
	// the cursor to pass next and whether more entries are waiting now
	// (then pass the cursor at once). Like Revocations it may repeat entries
	// but never skips one, across pages too. No subject appears twice.
	RevocationFeed(ctx context.Context, c FeedCursor, now time.Time, limit int) ([]Revocation, FeedCursor, bool, error)
	// AddAudit writes one audit event.
	AddAudit(ctx context.Context, ev AuditEvent) error
	// Audit lists up to limit events newest first, of one user if userID is
	// not Nil, with IDs below before (0: from the newest).
	Audit(ctx context.Context, userID uuid.UUID, before int64, limit int) ([]AuditEvent, error)

	// Purge deletes up to batch sessions (with their tokens) that expired
	// before now or were revoked before now-RevokedRetention, up to batch
	// refresh tokens that expired before now, and up to batch denylist
	// entries whose Until has passed, each in its own short transaction, and
	// reports how many rows went. Callers repeat it until it returns 0.
	// Audit events older than auditBefore go too, up to batch of them, oldest
	// first.
	Purge(ctx context.Context, now, auditBefore time.Time, batch int) (int, error)
	// Ping reports whether the store can serve requests.
	Ping(ctx context.Context) error

	// CreateClient stores c. ErrConflict if the id is taken.
	CreateClient(ctx context.Context, c Client) error
	// Client finds a client by id. ErrNotFound if none.
	Client(ctx context.Context, id string) (Client, error)
	// Clients lists every client, by id.
	Clients(ctx context.Context) ([]Client, error)
	// UpdateClient applies u atomically (holding the client row against a
	// concurrent login for it, as CreateSession holds it) and returns the
	// client as it now is and the revocations written. ErrNotFound if there
	// is no such client.
	UpdateClient(ctx context.Context, u ClientUpdate) (Client, []Revocation, error)
	// DeleteClient deletes a client after applying r, in one transaction.
	// ErrNotFound if there is no such client.
	DeleteClient(ctx context.Context, id string, r ClientRevocation) ([]Revocation, error)
}

// FastRotator is an optional capability of a Store: the common case of a
// rotation (the active v2 token of a live session) in one statement on the
// session row. Without it every presentation takes Store.Refresh, which
// decides with Decide on the locked state; a FastRotator skips that round
// trip for the common case and must agree with Decide (the conformance
// suite checks it on PostgreSQL).
type FastRotator interface {
	// RotateActive is the fast path of a rotation. It must agree with
	// Decide: it rotates only when Decide would answer VerdictRotate for
	// the same state and instant, and otherwise writes nothing and returns
	// false; the caller then decides through Refresh (grace replays, reuse,
	// refusals, and a rotation the fast path declined). Atomically, holding
	// the same session lock as Refresh: if session r.SessionID is at
	// r.Generation with the stored verifier hash equal to r.VerifierHash
	// (compared in constant time) and its last rotation at r.IssuedAt, it
	// and its active token are unexpired at
	// now, it was issued to r.ClientID, it is not revoked and its user not
	// disabled, it rotates exactly as OutcomeRotate does (Generation+1,
	// SuccessorHash, ActiveExpiresAt now+RefreshTTL capped at the
	// session's expiry, RotatedAt now, PrevSelector and ActiveSelector
	// nil, its events) and returns the state after the rotation (User
	// without password hash) and true.
	//
	// now is one reading of r.Now taken while nothing else can act on the
	// session: just before a statement that takes the lock without waiting
	// and gives up if it is held (PostgreSQL: SKIP LOCKED), and that also
	// gives up if the session's last rotation is later than now, so that an
	// instant read before another writer's is never written or compared.
	// The user row is read, not locked: a disable must revoke the user's
	// sessions (as Service.UpdateUser does, in the same transaction) for it
	// to stop a rotation.
	RotateActive(ctx context.Context, r ActiveRotation) (RefreshState, bool, error)
}

// LegacyStore is an optional capability of a Store: whether it may still
// hold v1 refresh tokens (rows from before rotation v2). A store that says
// false is not asked about a v1-shaped token at all, so a flood of random
// ones costs no query. Without it, v1 tokens are looked up.
type LegacyStore interface {
	HasLegacyTokens() bool
}

// ClientUpdate changes a client and, in the same transaction, may revoke
// its sessions and client_credentials tokens. Nil fields are left alone.
type ClientUpdate struct {
	ID             string
	Name           *string
	GrantTypes     *[]string
	AllowedOrigins *[]string
	Audience       *string
	Roles          *[]string
	Disabled       *bool
	SecretHash     *[]byte
	UpdatedAt      time.Time
	// Revoke, if set, is applied after the update.
	Revoke *ClientRevocation
}

// ClientRevocation ends everything a client holds: every active session
// issued to it (one denylist entry and audit event each, as
// RevokeSessions) and its client_credentials tokens (a denylist entry for
// the Family sid), and starts NewFamily.
type ClientRevocation struct {
	// Family is the token family the caller read; the store denies the
	// client's current family, read under its lock.
	Family    uuid.UUID
	NewFamily uuid.UUID
	// EndSessions revokes the client's sessions too, as Sessions says
	// (Reason, At, DenyUntil, Event; the store selects them by client).
	// Sessions.At and DenyUntil also bound the Family entry.
	EndSessions bool
	Sessions    SessionRevocation
}
