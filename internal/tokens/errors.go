package tokens

import (
	"errors"
	"fmt"
)

// Sentinel errors of the domain. Callers test them with errors.Is; the HTTP
// layer maps each to one status and RFC 6749 error code in one place.
var (
	// ErrInvalidGrant covers every refused login and refresh: bad
	// credentials, disabled user, unknown, expired, used or revoked refresh
	// token. Wrapped errors may say why; the reason never reveals whether an
	// email exists.
	ErrInvalidGrant = errors.New("invalid grant")
	// ErrInvalidToken is an access token that is missing, malformed, badly
	// signed, expired or revoked.
	ErrInvalidToken = errors.New("invalid access token")
	// ErrInvalidInput is a request whose fields fail validation.
	ErrInvalidInput = errors.New("invalid input")
	// ErrConflict is a uniqueness violation, such as an email already taken.
	ErrConflict = errors.New("conflict")
	// ErrNotFound is a lookup that found nothing.
	ErrNotFound = errors.New("not found")
	// ErrForbidden is an authenticated caller lacking the required role.
	ErrForbidden = errors.New("insufficient scope")
	// ErrUnavailable wraps a storage failure the client may retry.
	ErrUnavailable = errors.New("temporarily unavailable")
	// ErrInvalidClient is a client that failed to authenticate: unknown,
	// disabled, a wrong or missing secret, a secret for a public client
	// (RFC 6749 §5.2 invalid_client).
	ErrInvalidClient = errors.New("invalid client")
	// ErrUnauthorizedClient is an authenticated client using a grant it is
	// not allowed (RFC 6749 §5.2 unauthorized_client), or acting on a token
	// issued to another client.
	ErrUnauthorizedClient = errors.New("unauthorized client")
)

// clientError is an ErrInvalidClient or ErrUnauthorizedClient with a reason
// safe to show.
type clientError struct {
	kind   error
	reason string
}

func (e clientError) Error() string        { return e.reason }
func (e clientError) Is(target error) bool { return target == e.kind }

var (
	errGrantNotAllowed = clientError{ErrUnauthorizedClient, "this client may not use this grant type"}
	errClientAuth      = clientError{ErrInvalidClient, "client authentication failed"}
	errWrongClient     = grantError{"refresh token was issued to another client"}
)

// grantError is an ErrInvalidGrant with a reason safe to show to clients.
type grantError struct{ reason string }

func (e grantError) Error() string { return e.reason }
func (e grantError) Is(target error) bool {
	return target == ErrInvalidGrant
}

// Refusal reasons. Each one Is ErrInvalidGrant.
var (
	errBadCredentials  = grantError{"invalid username or password"}
	errUnknownToken    = grantError{"refresh token is invalid"}
	errTokenExpired    = grantError{"refresh token has expired"}
	errSessionExpired  = grantError{"session has expired"}
	errSessionRevoked  = grantError{"session has been revoked"}
	errReuseDetected   = grantError{"refresh token was already used; the session has been revoked"}
	errUserUnavailable = grantError{"refresh token is invalid"}
)

// ErrClockSkew is a refresh refused because this instance's clock is more
// than MaxClockSkew behind the clock of the instance that rotated the token.
// It Is ErrUnavailable: the client may retry (through another instance).
var ErrClockSkew = fmt.Errorf("%w: clock skew between instances exceeds the tolerated %v", ErrUnavailable, MaxClockSkew)

// IsReuse reports whether err is a refusal caused by refresh-token reuse.
func IsReuse(err error) bool { return errors.Is(err, errReuseDetected) }

// inputError is an ErrInvalidInput with a message for the client.
type inputError struct{ msg string }

func (e inputError) Error() string        { return e.msg }
func (e inputError) Is(target error) bool { return target == ErrInvalidInput }

// InvalidInput returns an error that Is ErrInvalidInput with msg as its text.
func InvalidInput(msg string) error { return inputError{msg} }
