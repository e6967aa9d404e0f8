package verify

import (
	"errors"
	"fmt"
)

// The errors Verify, Introspect and WaitReady return wrap one of these, so a
// caller can tell a bad token (answer 401) from a verifier that cannot
// decide right now (answer 503) with errors.Is. The wrapping error's text
// says what failed.
var (
	// ErrInvalidToken: the token must be refused (bad signature, wrong
	// header, wrong issuer or audience, expired, missing claim, revoked…).
	ErrInvalidToken = errors.New("invalid access token")
	// ErrRevoked: the token's session (sid) or the token itself (jti) is on
	// the denylist, or the issuer's introspection says it is not active.
	// errors.Is(err, ErrInvalidToken) holds as well.
	ErrRevoked error = &childError{msg: "access token revoked", parent: ErrInvalidToken}
	// ErrUnavailable: the verifier cannot decide right now (keys not loaded
	// yet, issuer unreachable for introspection, revocations stale and
	// failing closed, verifier closed). Retry later; the token may be fine.
	ErrUnavailable = errors.New("verifier unavailable")
	// ErrStale: the last successful poll of the revocation feed is older
	// than Config.StaleAfter and the verifier fails closed.
	// errors.Is(err, ErrUnavailable) holds as well.
	ErrStale error = &childError{msg: "revocations are stale", parent: ErrUnavailable}
)

// childError is a sentinel that is also another one.
type childError struct {
	msg    string
	parent error
}

func (e *childError) Error() string { return e.msg }
func (e *childError) Unwrap() error { return e.parent }

// invalid makes an ErrInvalidToken that says why.
func invalid(format string, args ...any) error {
	return fmt.Errorf("verify: %w: %s", ErrInvalidToken, fmt.Sprintf(format, args...))
}

// reasonOf is the part of err after the sentinel, for error_description:
// "verify: invalid access token: token expired at …" → "token expired at …".
func reasonOf(err error) string {
	msg := err.Error()
	for _, s := range []error{ErrRevoked, ErrStale, ErrInvalidToken, ErrUnavailable} {
		prefix := "verify: " + s.Error() + ": "
		if len(msg) > len(prefix) && msg[:len(prefix)] == prefix {
			return msg[len(prefix):]
		}
	}
	return msg
}

// quoteSafe keeps what RFC 6750 §3 allows inside error_description
// (%x20-21 / %x23-5B / %x5D-7E) and bounds the length, so a value taken from
// a token can never break the header.
func quoteSafe(s string, max int) string {
	b := make([]byte, 0, min(len(s), max))
	for i := 0; i < len(s) && len(b) < max; i++ {
		c := s[i]
		if c >= 0x20 && c <= 0x7e && c != '"' && c != '\\' {
			b = append(b, c)
		} else {
			b = append(b, '?')
		}
	}
	return string(b)
}
