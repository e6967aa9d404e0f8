package api

import (
	"context"
	"net/http"
	"time"

	"github.com/rotorauth/rotor/internal/tokens"
)

func (s *server) handleJWKS(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, http.StatusOK, map[string]any{"keys": s.svc.Keys().JWKS()})
}

// handleMetadata serves RFC 8414 authorization server metadata. Endpoint
// URLs are built on JWT_ISSUER, which must be the public base URL.
func (s *server) handleMetadata(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                        s.issuer,
		"token_endpoint":                                s.issuer + "/token",
		"revocation_endpoint":                           s.issuer + "/revoke",
		"introspection_endpoint":                        s.issuer + "/introspect",
		"jwks_uri":                                      s.issuer + "/.well-known/jwks.json",
		"grant_types_supported":                         []string{"password", "refresh_token", "client_credentials"},
		"response_types_supported":                      []string{},
		"token_endpoint_auth_methods_supported":         clientAuthMethods,
		"revocation_endpoint_auth_methods_supported":    clientAuthMethods,
		"introspection_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post", "bearer"},
		// Not in RFC 8414: what a client's retry of a lost refresh reply
		// must stay inside (a retry after the window is reuse).
		"rotor_refresh_reuse_grace_seconds": s.svc.Config().ReuseGrace.Seconds(),
	})
}

// clientAuthMethods are the RFC 7591 names of the client authentication
// Rotor accepts: public clients (none: client_id only, or no client for the
// default one) and confidential clients' secrets.
var clientAuthMethods = []string{"none", "client_secret_basic", "client_secret_post"}

func (s *server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.svc.Ping(ctx); err != nil {
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: codeUnavailable, Description: "not ready: the database is unreachable or migrations are pending"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

type revocationEntry struct {
	ID    string    `json:"-"`
	Sid   string    `json:"sid,omitempty"`
	Jti   string    `json:"jti,omitempty"`
	Until time.Time `json:"until"`
}

// handleRevocations is the feed resource servers poll to keep their own
// denylist: the unexpired entries committed since the cursor since (0: all),
// possibly repeating some, never skipping one, and the cursor to pass next.
func (s *server) handleRevocations(w http.ResponseWriter, r *http.Request, _ tokens.Principal) {
	since, err := feedCursor(r)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	limit, err := pageLimit(r, 1000, tokens.MaxFeedPage)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	revs, next, more, err := s.svc.RevocationFeed(r.Context(), since, limit)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	resp := struct {
		Cursor   string            `json:"cursor"`
		HasMore  bool              `json:"has_more"`
		Sessions []revocationEntry `json:"sessions"`
		Tokens   []revocationEntry `json:"tokens"`
	}{Cursor: encodeFeedCursor(next), HasMore: more, Sessions: []revocationEntry{}, Tokens: []revocationEntry{}}
	for _, rv := range revs {
		if rv.Kind == tokens.RevokeSession {
			resp.Sessions = append(resp.Sessions, revocationEntry{Sid: rv.Subject.String(), Until: rv.Until.UTC()})
		} else {
			resp.Tokens = append(resp.Tokens, revocationEntry{Jti: rv.Subject.String(), Until: rv.Until.UTC()})
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, resp)
}
