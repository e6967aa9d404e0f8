package api

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"

	"github.com/rotorauth/rotor/internal/tokens"
)

// clientAuthOf reads how a request names its client (RFC 6749 §2.3.1):
// HTTP Basic with the form-urlencoded id and secret (client_secret_basic),
// or client_id and client_secret in the body (client_secret_post), or a
// bare client_id (a public client), or nothing (the default client). Both
// Basic and body credentials at once are invalid_request, as RFC 6749
// requires one method per request.
func clientAuthOf(r *http.Request, bodyID, bodySecret string) (tokens.ClientAuth, error) {
	h := r.Header.Get("Authorization")
	scheme, cred, _ := strings.Cut(h, " ")
	if h == "" || !strings.EqualFold(scheme, "Basic") {
		if bodySecret != "" && bodyID == "" {
			return tokens.ClientAuth{}, badRequest("client_secret needs client_id")
		}
		return tokens.ClientAuth{ID: bodyID, Secret: bodySecret, HasSecret: bodySecret != ""}, nil
	}
	if bodySecret != "" {
		return tokens.ClientAuth{}, badRequest("use one client authentication method: HTTP Basic or client_secret in the body, not both")
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
	if err != nil {
		return tokens.ClientAuth{}, errBadBasic
	}
	id, secret, ok := strings.Cut(string(raw), ":")
	if !ok {
		return tokens.ClientAuth{}, errBadBasic
	}
	// RFC 6749 §2.3.1: both are application/x-www-form-urlencoded first.
	if id, err = url.QueryUnescape(id); err != nil {
		return tokens.ClientAuth{}, errBadBasic
	}
	if secret, err = url.QueryUnescape(secret); err != nil {
		return tokens.ClientAuth{}, errBadBasic
	}
	if bodyID != "" && bodyID != id {
		return tokens.ClientAuth{}, badRequest("client_id in the body does not match the Authorization header")
	}
	return tokens.ClientAuth{ID: id, Secret: secret, HasSecret: true}, nil
}

var errBadBasic = &httpError{status: http.StatusUnauthorized, code: codeInvalidClient,
	msg: "the Authorization header must be Basic base64(client_id:client_secret)"}

// hasClientCredentials reports whether a request authenticates a client
// (rather than carrying a bearer token).
func hasClientCredentials(r *http.Request, bodySecret string) bool {
	scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	return strings.EqualFold(scheme, "Basic") || bodySecret != ""
}

// authClient resolves the request's client; on failure it has answered.
func (s *server) authClient(w http.ResponseWriter, r *http.Request, bodyID, bodySecret string) (tokens.Client, bool) {
	a, err := clientAuthOf(r, bodyID, bodySecret)
	if err == nil {
		var c tokens.Client
		if c, err = s.svc.AuthenticateClient(r.Context(), a); err == nil {
			return c, true
		}
	}
	writeError(w, r, s.log, err)
	return tokens.Client{}, false
}

// cookieName is the browser-mode refresh cookie of client c: one per
// client, so two apps on one issuer keep separate sessions.
func (s *server) cookieName(c tokens.Client) string {
	if c.ID == s.svc.Config().DefaultClientID {
		return RefreshCookieName
	}
	return RefreshCookieName + "_" + c.ID
}

// usesCookie reports whether c's refresh tokens travel in the browser-mode
// cookie: public clients in browser mode. Confidential clients are
// servers and get theirs in the body.
func (s *server) usesCookie(c tokens.Client) bool {
	return s.opts.RefreshCookie && c.Type == tokens.ClientPublic
}

// clientAllowsOrigin reports whether a browser at origin may act for c: an
// origin of c's, or for the default client one of CORS_ALLOWED_ORIGINS.
func (s *server) clientAllowsOrigin(c tokens.Client, origin string) bool {
	if origin == "" {
		return false
	}
	if c.ID == s.svc.Config().DefaultClientID && s.originListed(origin) {
		return true
	}
	return c.AllowsOrigin(origin)
}
