package tokens

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
)

// ClientType says whether a client can keep a secret (RFC 6749 §2.1).
type ClientType string

// Client types.
const (
	// ClientPublic has no secret: a single-page app, a native app. It names
	// itself with client_id only.
	ClientPublic ClientType = "public"
	// ClientConfidential authenticates with its secret (client_secret_basic
	// or client_secret_post): a server-side app, a resource server.
	ClientConfidential ClientType = "confidential"
)

// Grant types a client may be allowed (RFC 6749 §4).
const (
	GrantPassword          = "password"
	GrantRefreshToken      = "refresh_token"
	GrantClientCredentials = "client_credentials"
)

// DefaultClientID is the id of the public client that serves requests
// naming no client, unless configured otherwise.
const DefaultClientID = "default"

// Client is an application registered with Rotor: the "applications" of
// Auth0 or Okta, the clients of Keycloak.
type Client struct {
	ID   string
	Name string
	Type ClientType
	// SecretHash is the keyed hash of a confidential client's secret; nil
	// for public clients. The secret itself is shown once, at creation or
	// rotation, and never stored.
	SecretHash []byte
	// GrantTypes are the grants the client may use.
	GrantTypes []string
	// AllowedOrigins are the browser origins allowed to call Rotor for this
	// client (CORS, and the Origin check of browser mode).
	AllowedOrigins []string
	// Audience is the aud of the client's access tokens.
	Audience string
	// Roles are the roles of a confidential client's client_credentials
	// tokens (for example introspect).
	Roles    []string
	Disabled bool
	// TokenFamily is the sid of the client's client_credentials tokens:
	// disabling the client, or taking a role away, denylists it (and a new
	// family starts), which refuses every such token at once.
	TokenFamily uuid.UUID
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Allows reports whether c may use grant.
func (c Client) Allows(grant string) bool { return slices.Contains(c.GrantTypes, grant) }

// AllowsOrigin reports whether a browser at origin may act for c.
func (c Client) AllowsOrigin(origin string) bool {
	return origin != "" && slices.Contains(c.AllowedOrigins, origin)
}

// ClientSpec is what an admin, a command or a clients file says about a
// client. Nil fields of an update are left alone.
type ClientSpec struct {
	ID             string
	Name           *string
	Type           ClientType
	GrantTypes     *[]string
	AllowedOrigins *[]string
	Audience       *string
	Roles          *[]string
	Disabled       *bool
	// Secret, if set, becomes the secret of a confidential client (clients
	// files and scripts; the admin API generates secrets).
	Secret string
}

// ClientSecretPrefix starts every client secret, for secret scanners.
const ClientSecretPrefix = "cs_"

// newClientSecret returns a fresh secret: 256 random bits.
func newClientSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return ClientSecretPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// MinClientSecretLen is the shortest secret a clients file may set.
const MinClientSecretLen = 32

// validClientID: 1 to 64 of a-z, A-Z, 0-9, '.', '_', '-', starting with a
// letter or digit, and not a UUID. Client ids appear in tokens, URLs and
// cookie names.
func validClientID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	if _, err := uuid.Parse(id); err == nil {
		return false // sub is a user id or a client id: they must never look alike
	}
	for i, c := range id {
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || (c != '.' && c != '_' && c != '-')) {
			return false
		}
	}
	return true
}

// ValidOrigin reports whether o is a browser origin: scheme://host[:port],
// http or https, nothing else.
func ValidOrigin(o string) bool {
	u, err := url.Parse(o)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" &&
		u.Path == "" && u.RawQuery == "" && u.Fragment == "" && u.User == nil && !strings.HasSuffix(o, "/") &&
		o == u.Scheme+"://"+u.Host
}

// ValidClientID reports whether id is a well-formed client id.
func ValidClientID(id string) bool { return validClientID(id) }

// printable reports whether s is valid UTF-8 without control characters.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// validateClient checks a client as it would be stored.
func validateClient(c Client) error {
	if !validClientID(c.ID) {
		return InvalidInput("client id must be 1 to 64 characters of a-z, A-Z, 0-9, '.', '_' and '-', starting with a letter or digit")
	}
	if c.Name == "" || utf8.RuneCountInString(c.Name) > 200 || !printable(c.Name) {
		return InvalidInput("client name must be 1 to 200 printable characters")
	}
	if c.Type != ClientPublic && c.Type != ClientConfidential {
		return InvalidInput("client type must be public or confidential")
	}
	if len(c.GrantTypes) == 0 {
		return InvalidInput("a client needs at least one grant type")
	}
	for _, g := range c.GrantTypes {
		switch g {
		case GrantPassword, GrantRefreshToken:
		case GrantClientCredentials:
			if c.Type != ClientConfidential {
				return InvalidInput("client_credentials is for confidential clients only")
			}
		default:
			return InvalidInput("grant types are password, refresh_token and client_credentials")
		}
	}
	for _, o := range c.AllowedOrigins {
		if !ValidOrigin(o) {
			return InvalidInput("allowed origins must be exact origins such as https://app.example.com")
		}
	}
	if c.Audience == "" || utf8.RuneCountInString(c.Audience) > 200 || !printable(c.Audience) {
		return InvalidInput("audience must be 1 to 200 printable characters")
	}
	if _, err := ValidateRoles(c.Roles); err != nil {
		return err
	}
	if c.Type == ClientPublic && len(c.Roles) > 0 {
		return InvalidInput("roles are for confidential clients' client_credentials tokens; a public client has none")
	}
	return nil
}

// clientSecretMatches compares a presented secret with the stored hash in
// constant time.
func (s *Service) clientSecretMatches(c Client, secret string) bool {
	if c.Type != ClientConfidential || len(c.SecretHash) == 0 {
		return false
	}
	return subtle.ConstantTimeCompare(s.clientSecretHash(secret), c.SecretHash) == 1
}

// clientSecretHash is the keyed hash stored for a client secret. Secrets
// are 256 random bits, so a keyed hash (not a slow password hash) suffices,
// and a dump of the database alone cannot be checked against guesses.
func (s *Service) clientSecretHash(secret string) []byte {
	return mac(sha256.New, s.clientKey, []byte(secret))
}
