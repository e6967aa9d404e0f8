package tokens

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
)

// User is an account that can log in.
type User struct {
	ID           uuid.UUID
	Email        string // as entered at sign-up, trimmed
	PasswordHash string // PHC string; never leaves the server
	Roles        []string
	Disabled     bool
	CreatedAt    time.Time
}

// Password length limits (SPEC §5).
const (
	MinPasswordLen = 8
	MaxPasswordLen = 1024
)

// NormalizeEmail returns the key under which an email is unique: trimmed and
// lower-cased. It refuses addresses that are not plain, printable text, so a
// zero-width or control-character variant of an address cannot be registered
// as a look-alike of another.
func NormalizeEmail(email string) (string, error) {
	e := strings.TrimSpace(email)
	if e == "" {
		return "", InvalidInput("email is required")
	}
	if len(e) > 254 || !utf8.ValidString(e) {
		return "", InvalidInput("email is not a valid address")
	}
	at := strings.LastIndexByte(e, '@')
	if at <= 0 || at == len(e)-1 || strings.Count(e, "@") != 1 {
		return "", InvalidInput("email is not a valid address")
	}
	for _, r := range e {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) || unicode.Is(unicode.Cf, r) {
			return "", InvalidInput("email is not a valid address")
		}
	}
	if !strings.Contains(e[at+1:], ".") {
		return "", InvalidInput("email is not a valid address")
	}
	return strings.ToLower(e), nil
}

// ValidatePassword checks the length rules of SPEC §5 before any hashing.
func ValidatePassword(pw string) error {
	if len(pw) > MaxPasswordLen {
		return InvalidInput("password must be at most 1024 bytes")
	}
	if utf8.RuneCountInString(pw) < MinPasswordLen {
		return InvalidInput("password must be at least 8 characters")
	}
	return nil
}

// ValidateRoles checks role names: short, lower-case words.
func ValidateRoles(roles []string) ([]string, error) {
	out := make([]string, 0, len(roles))
	seen := map[string]bool{}
	for _, r := range roles {
		if r == "" || len(r) > 64 {
			return nil, InvalidInput("role names must be 1 to 64 characters")
		}
		for _, c := range r {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == ':') {
				return nil, InvalidInput("role names may contain only a-z, 0-9, '_', '-' and ':'")
			}
		}
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	return out, nil
}

// HasRole reports whether roles contains any of want.
func HasRole(roles []string, want ...string) bool {
	return slices.ContainsFunc(want, func(w string) bool { return slices.Contains(roles, w) })
}

// PasswordHasher hashes and checks passwords. Implementations live outside
// the domain (internal/password).
type PasswordHasher interface {
	// Hash returns an encoded, salted hash of pw.
	Hash(pw string) (string, error)
	// Verify reports whether pw matches encoded. It costs the same time
	// whether or not it matches.
	Verify(encoded, pw string) (bool, error)
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

// User returns a user without its password hash.
func (s *Service) User(ctx context.Context, id uuid.UUID) (User, error) {
	u, err := s.store.UserByID(ctx, id)
	u.PasswordHash = ""
	return u, err
}

// FindUser finds a user by email, without its password hash.
func (s *Service) FindUser(ctx context.Context, email string) (User, error) {
	norm, err := NormalizeEmail(email)
	if err != nil {
		return User{}, err
	}
	u, err := s.store.UserByEmail(ctx, norm)
	u.PasswordHash = ""
	return u, err
}
