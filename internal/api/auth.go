package api

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/rotorauth/rotor/internal/tokens"
)

// bearer returns the access token of the Authorization header, "" if the
// header is absent. Tokens in URLs are never accepted.
func bearer(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", nil
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", fmt.Errorf("%w: the Authorization header must be \"Bearer <token>\"", tokens.ErrInvalidToken)
	}
	return strings.TrimSpace(tok), nil
}

// authenticate checks the request's access token (signature, claims and
// the in-memory denylist; never the database).
func (s *server) authenticate(r *http.Request) (tokens.Principal, error) {
	tok, err := bearer(r)
	if err != nil {
		return tokens.Principal{}, err
	}
	if tok == "" {
		return tokens.Principal{}, fmt.Errorf("%w: an access token is required", tokens.ErrInvalidToken)
	}
	return s.svc.Authenticate(tok)
}

// authenticateUser is authenticate for endpoints that act for a user
// (/me, /sessions, /password): a client's own client_credentials token acts
// for none and is refused with 403.
func (s *server) authenticateUser(r *http.Request) (tokens.Principal, error) {
	p, err := s.authenticate(r)
	if err == nil && p.IsClient() {
		return p, &httpError{status: http.StatusForbidden, code: codeInsufficientScope,
			msg: "a client's own token (client_credentials) acts for no user"}
	}
	return p, err
}

// withRole authenticates and requires one of roles.
func (s *server) withRole(r *http.Request, roles ...string) (tokens.Principal, error) {
	p, err := s.authenticate(r)
	if err != nil {
		return p, err
	}
	if !tokens.HasRole(p.Roles, roles...) {
		return p, tokens.ErrForbidden
	}
	// A user's role opens Rotor's own administration only through a token
	// meant for Rotor: a token another client obtained for its own API (its
	// audience) must not be replayable here by that API's servers. A
	// client's own client_credentials token is held by the client itself,
	// whose servers have its secret anyway.
	if !p.IsClient() && !slices.Contains(p.Audience, s.svc.Config().Audience) {
		return p, &httpError{status: http.StatusForbidden, code: codeInsufficientScope,
			msg: "this user token was issued for another audience; role-protected endpoints take user tokens whose aud is Rotor's (JWT_AUDIENCE)"}
	}
	return p, nil
}

type principalHandler func(w http.ResponseWriter, r *http.Request, p tokens.Principal)

func (s *server) client(r *http.Request) tokens.ClientInfo {
	return tokens.ClientInfo{UserAgent: r.UserAgent(), IP: s.clientIP(r)}
}
