package tokens

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
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
	// AuditEveryRefresh writes an EventRefresh for every rotation
	// (AUDIT_EVERY_REFRESH); by default a rotation writes an event only
	// when the session moved (EventSessionMoved).
	AuditEveryRefresh bool
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

// Ping reports whether the store is reachable.
func (s *Service) Ping(ctx context.Context) error { return s.store.Ping(ctx) }

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
