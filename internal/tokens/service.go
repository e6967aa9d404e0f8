package tokens

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Config holds the typed settings of a Service.
type Config struct {
	Issuer             string
	Audience           string
	AccessTTL          time.Duration
	RefreshTTL         time.Duration
	SessionMaxLifetime time.Duration
	// ReuseGrace is the window in which the last rotated token may be
	// presented again to get the same successor; 0 is strict mode.
	ReuseGrace time.Duration
	// AuditRetention is how long audit events are kept (AUDIT_RETENTION);
	// 0 means DefaultAuditRetention.
	AuditRetention time.Duration
	// MaxSessionsPerUser caps a user's active sessions; a login past it
	// evicts the least recently used (MAX_SESSIONS_PER_USER). 0: no cap.
	MaxSessionsPerUser int
	// HashSlots bounds concurrent password hashing; 0 means
	// DefaultHashSlots.
	HashSlots int
	// DefaultClientID is the public client of requests that name none
	// (DEFAULT_CLIENT_ID); "" means DefaultClientID. Until a client of
	// that id is stored, it is built in: grants password and refresh_token,
	// audience Audience, origins DefaultOrigins.
	DefaultClientID string
	DefaultOrigins  []string
	Keys            *KeySet
	TokenSecret     []byte
	// Observer hears rotations, revocations and failed logins (metrics);
	// nil means none.
	Observer Observer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Service implements login, rotation, revocation and access-token checks on
// top of a Store.
type Service struct {
	store     Store
	passwords hashGate
	codec     *RefreshCodec
	access    *AccessTokens
	deny      *Denylist
	cfg       Config
	now       func() time.Time
	dummyHash string
	obs       Observer
	// clientKey keys the hash of client secrets.
	clientKey []byte
	clients   *clientDirectory
	// revFresh is how current the denylist is (revocation_sync.go).
	revFresh revocationFreshness
}

// NewService checks cfg and returns a Service. Its denylist starts empty:
// call SyncRevocations before serving.
func NewService(store Store, passwords PasswordHasher, cfg Config) (*Service, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.AuditRetention == 0 {
		cfg.AuditRetention = DefaultAuditRetention
	}
	if cfg.DefaultClientID == "" {
		cfg.DefaultClientID = DefaultClientID
	}
	if !validClientID(cfg.DefaultClientID) {
		return nil, errors.New("default client id: 1 to 64 of a-z, A-Z, 0-9, '.', '_', '-', not a UUID")
	}
	if cfg.Keys == nil {
		return nil, errors.New("no signing keys")
	}
	if cfg.AccessTTL <= 0 || cfg.RefreshTTL <= 0 || cfg.SessionMaxLifetime <= 0 || cfg.ReuseGrace < 0 {
		return nil, errors.New("lifetimes must be positive")
	}
	codec, err := NewRefreshCodec(cfg.TokenSecret)
	if err != nil {
		return nil, err
	}
	dummy, err := passwords.Hash("rotor-timing-equalizer")
	if err != nil {
		return nil, err
	}
	s := &Service{
		store: store, passwords: newHashGate(passwords, cfg.HashSlots), codec: codec,
		access: NewAccessTokens(cfg.Keys, cfg.Issuer, cfg.Audience, cfg.AccessTTL, cfg.Now),
		deny:   NewDenylist(), cfg: cfg, now: cfg.Now, dummyHash: dummy,
		clientKey: mac(sha256.New, cfg.TokenSecret, []byte("rotor client secret v1")),
		clients: newClientDirectory(Client{
			ID: cfg.DefaultClientID, Name: "Default client", Type: ClientPublic,
			GrantTypes: []string{GrantPassword, GrantRefreshToken}, AllowedOrigins: cfg.DefaultOrigins,
			Audience: cfg.Audience, Roles: []string{},
		}),
	}
	s.access.defaultClient, s.access.audienceOf = cfg.DefaultClientID, s.audienceOf
	s.obs = cfg.Observer
	if s.obs == nil {
		s.obs = nopObserver{}
	}
	return s, nil
}

// Keys returns the access-token key set.
func (s *Service) Keys() *KeySet { return s.cfg.Keys }

// Config returns the service's settings.
func (s *Service) Config() Config { return s.cfg }

// TokenPair is the answer to a login or refresh.
type TokenPair struct {
	AccessToken      string
	ExpiresIn        int64 // seconds
	RefreshToken     string
	RefreshExpiresIn int64 // seconds
	SessionID        uuid.UUID
	Principal        Principal
}

// Signup creates a user with the given roles.
func (s *Service) Signup(ctx context.Context, email, password string, roles []string) (User, error) {
	norm, err := NormalizeEmail(email)
	if err != nil {
		return User{}, err
	}
	if err := ValidatePassword(password); err != nil {
		return User{}, err
	}
	if roles, err = ValidateRoles(roles); err != nil {
		return User{}, err
	}
	hash, err := s.passwords.Hash(ctx, password)
	if err != nil {
		return User{}, fmt.Errorf("hash password: %w", err)
	}
	u := User{ID: uuid.New(), Email: norm, PasswordHash: hash, Roles: roles, CreatedAt: s.nowUTC()}
	if err := s.store.CreateUser(ctx, u); err != nil {
		return User{}, err
	}
	_ = s.store.AddAudit(ctx, AuditEvent{At: u.CreatedAt, Kind: EventUserCreated, UserID: &u.ID})
	u.PasswordHash = ""
	return u, nil
}

// EnsureUser creates email with roles unless a user with that email exists
// (BOOTSTRAP_ADMIN_*). It reports whether it created one.
func (s *Service) EnsureUser(ctx context.Context, email, password string, roles []string) (bool, error) {
	norm, err := NormalizeEmail(email)
	if err != nil {
		return false, err
	}
	if _, err := s.store.UserByEmail(ctx, norm); err == nil {
		return false, nil
	} else if !errors.Is(err, ErrNotFound) {
		return false, err
	}
	if _, err := s.Signup(ctx, email, password, roles); err != nil {
		if errors.Is(err, ErrConflict) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

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
	first, err := s.codec.New()
	if err != nil {
		return TokenPair{}, err
	}
	sess := Session{
		ID: uuid.New(), UserID: u.ID, CreatedAt: now, LastUsedAt: now,
		ExpiresAt: now.Add(s.cfg.SessionMaxLifetime),
		UserAgent: userAgent(client.UserAgent), IP: client.IP, ClientID: s.storedClientID(c),
	}
	rec := RefreshRecord{
		SessionID: sess.ID, Selector: first.Selector, VerifierHash: first.VerifierHash,
		CreatedAt: now, ExpiresAt: minTime(now.Add(s.cfg.RefreshTTL), sess.ExpiresAt),
	}
	sess.Chain = Chain{ActiveSelector: rec.Selector, ActiveExpiresAt: rec.ExpiresAt}
	// The token carries the roles of the row the session committed
	// against, not of the one read before the password check: a role
	// removed meanwhile is not issued (SPEC §3: a removed admin must not
	// keep, or restore, its role).
	evict := s.revocation(ReasonSessionLimit, EventSessionEvicted, now, client)
	evict.UserID = u.ID
	committed, evicted, err := s.store.CreateSession(ctx, NewSession{
		Session: sess, Token: rec, PasswordHash: u.PasswordHash,
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
	return s.pair(committed, c, sess.ID, sess.ExpiresAt, first.Token, rec.ExpiresAt, now)
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

// Authenticate verifies an access token and checks the denylist. It never
// touches the store. Under RequireFreshRevocations it fails closed
// (ErrUnavailable) while the denylist may be missing revocations.
func (s *Service) Authenticate(token string) (Principal, error) {
	p, err := s.access.Verify(token)
	if err != nil {
		return Principal{}, err
	}
	now := s.now()
	if err := s.staleRevocations(now); err != nil {
		return Principal{}, err
	}
	if s.deny.Denied(p.SessionID, p.TokenID, now) {
		return Principal{}, fmt.Errorf("%w: token has been revoked", ErrInvalidToken)
	}
	return p, nil
}

// User returns a user without its password hash.
func (s *Service) User(ctx context.Context, id uuid.UUID) (User, error) {
	u, err := s.store.UserByID(ctx, id)
	u.PasswordHash = ""
	return u, err
}

// Ping reports whether the store is reachable.
func (s *Service) Ping(ctx context.Context) error { return s.store.Ping(ctx) }

// SyncRevocations reads the revocations committed since the denylist's
// cursor into the denylist. Call it whenever a revocation notice arrives,
// and periodically (well within MaxRevocationLag): each success renews the
// denylist's freshness.
func (s *Service) SyncRevocations(ctx context.Context) error {
	return s.timedSync(ctx, s.deny.Cursor())
}

// FullSyncRevocations reloads every unexpired revocation and drops expired
// entries from memory: at start, and periodically in case a notice was
// missed. (Incremental syncs leave purging to it: Denied already ignores an
// expired entry, so sweeping the map on every notice would be wasted work.)
func (s *Service) FullSyncRevocations(ctx context.Context) error {
	if err := s.timedSync(ctx, SyncCursor{}); err != nil {
		return err
	}
	s.deny.Purge(s.now())
	return nil
}

func (s *Service) syncFrom(ctx context.Context, since SyncCursor) error {
	rs, next, err := s.store.Revocations(ctx, since, s.now())
	if err != nil {
		return err
	}
	s.deny.Add(rs...)
	s.deny.SetCursor(next)
	return nil
}

// nowUTC is the clock in UTC at PostgreSQL's precision, so what is stored
// and what is compared in memory are the same instant.
func (s *Service) nowUTC() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 { // do not split a UTF-8 sequence
		n--
	}
	return s[:n]
}
