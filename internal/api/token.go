package api

import (
	"errors"
	"mime"
	"net/http"
	"time"

	"github.com/rotorauth/rotor/internal/tokens"
)

// tokenRequest is the body of POST /token and POST /refresh, as JSON or
// as an RFC 6749 form. scope is accepted and ignored; client_id and
// client_secret name the client (or HTTP Basic does).
type tokenRequest struct {
	GrantType    string `json:"grant_type"`
	Username     string `json:"username"`
	Password     string `json:"password"`
	RefreshToken string `json:"refresh_token"`
	Scope        string `json:"scope"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
}

// clientTokenResponse is the answer to client_credentials: no refresh
// token, no session (RFC 6749 §4.4.3).
type clientTokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
}

type tokenResponse struct {
	AccessToken           string `json:"access_token"`
	TokenType             string `json:"token_type"`
	ExpiresIn             int64  `json:"expires_in"`
	RefreshToken          string `json:"refresh_token,omitempty"`
	RefreshTokenExpiresIn int64  `json:"refresh_token_expires_in"`
	SessionID             string `json:"session_id"`
}

func (s *server) handleToken(w http.ResponseWriter, r *http.Request) {
	var req tokenRequest
	form, err := decodeBody(w, r, &req, true, false)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	grant := req.GrantType
	if grant == "" && !form {
		grant = "password" // the JSON shorthand {username, password}
		if req.RefreshToken != "" && req.Username == "" {
			grant = "refresh_token"
		}
	}
	switch grant {
	case "password", "refresh_token", "client_credentials":
	case "":
		writeError(w, r, s.log, badRequest("grant_type is required"))
		return
	default:
		writeError(w, r, s.log, &httpError{status: http.StatusBadRequest, code: codeUnsupportedGrantType,
			msg: "grant_type must be password, refresh_token or client_credentials"})
		return
	}
	c, ok := s.authClient(w, r, req.ClientID, req.ClientSecret)
	if !ok {
		return
	}
	if grant != "client_credentials" && s.usesCookie(c) {
		if err := s.checkCookieSetter(r, c); err != nil {
			writeError(w, r, s.log, err)
			return
		}
	}
	switch grant {
	case "password":
		s.login(w, r, c, req)
	case "refresh_token":
		s.refresh(w, r, c, req.RefreshToken, false)
	default:
		pair, err := s.svc.ClientCredentials(r.Context(), c)
		if err != nil {
			writeError(w, r, s.log, err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Pragma", "no-cache")
		writeJSON(w, http.StatusOK, clientTokenResponse{AccessToken: pair.AccessToken, TokenType: "Bearer", ExpiresIn: pair.ExpiresIn})
	}
}

func (s *server) login(w http.ResponseWriter, r *http.Request, c tokens.Client, req tokenRequest) {
	if req.Username == "" || req.Password == "" {
		writeError(w, r, s.log, badRequest("username and password are required"))
		return
	}
	// Failed logins are limited, not attempts (ratelimit.go): the attempt
	// reserves a failure and gets it back unless the credentials are refused.
	attempt, err := s.startLogin(r, req.Username)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	var pair tokens.TokenPair
	err = s.hashing(r, func() (err error) {
		pair, err = s.svc.LoginClient(r.Context(), c, req.Username, req.Password, s.client(r))
		return err
	})
	attempt.done(errors.Is(err, tokens.ErrInvalidGrant))
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	s.writeTokens(w, c, pair)
}

func (s *server) handleRefresh(w http.ResponseWriter, r *http.Request) {
	var req tokenRequest
	if _, err := decodeBody(w, r, &req, true, true); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	if req.GrantType != "" && req.GrantType != "refresh_token" {
		writeError(w, r, s.log, &httpError{status: http.StatusBadRequest, code: codeUnsupportedGrantType,
			msg: "POST /refresh takes only grant_type=refresh_token"})
		return
	}
	if req.Username != "" || req.Password != "" {
		writeError(w, r, s.log, badRequest("POST /refresh takes a refresh_token, not credentials"))
		return
	}
	c, ok := s.authClient(w, r, req.ClientID, req.ClientSecret)
	if !ok {
		return
	}
	if s.usesCookie(c) {
		if err := s.checkCookieSetter(r, c); err != nil {
			writeError(w, r, s.log, err)
			return
		}
	}
	s.refresh(w, r, c, req.RefreshToken, true)
}

// checkCookieSetter is browser mode's CSRF defence for /token and /refresh
// of a public client c, whose every success sets the refresh cookie. It
// runs before anything is decided, so a refused request changes nothing and
// sets no cookie.
//
// The body must be JSON (or absent, for /refresh): a form, multipart or
// text/plain body is what any web page can send cross-site without a CORS
// preflight, for instance by auto-submitting an HTML form with an attacker's
// credentials, whose answer would replace the victim's cookie with the
// attacker's session (login CSRF). And, whatever the body, the request must
// carry an Origin allowed for c (the default client's are
// CORS_ALLOWED_ORIGINS). Body mode is unchanged: non-browser clients keep the
// RFC 6749 form grant, and so do confidential clients, which never get the
// cookie.
func (s *server) checkCookieSetter(r *http.Request, c tokens.Client) error {
	if !s.usesCookie(c) {
		return nil
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return badRequest("in browser mode (REFRESH_COOKIE=true) this endpoint takes only application/json: " +
				"a form, multipart or text/plain body could come from any web page (CSRF defence)")
		}
	}
	if origin := r.Header.Get("Origin"); !s.clientAllowsOrigin(c, origin) {
		return &httpError{status: http.StatusForbidden, code: codeAccessDenied,
			msg: "in browser mode (REFRESH_COOKIE=true) this endpoint needs an Origin allowed for the client (CORS_ALLOWED_ORIGINS for the default client; CSRF defence)"}
	}
	return nil
}

// limit takes one attempt from key's bucket in l, or answers 429.
func (s *server) limit(w http.ResponseWriter, r *http.Request, l *limiter, key string, now time.Time, name string) bool {
	ok, wait := l.allow(key, now)
	if !ok {
		s.metrics.rateLimited.WithLabelValues(name).Inc()
		writeError(w, r, s.log, &httpError{status: http.StatusTooManyRequests, code: codeTooManyRequests,
			msg: "too many attempts; retry later", retryAfter: retryAfterSeconds(wait)})
	}
	return ok
}

// hashing runs fn, which hashes a password, in one of a bounded number of
// slots: each argon2id hash takes 19 MiB, so unbounded concurrency would let
// a flood of sign-ups or logins exhaust memory. A request that cannot get a
// slot before it is cancelled gets 503.
func (s *server) hashing(r *http.Request, fn func() error) error {
	select {
	case s.hashSlots <- struct{}{}:
		defer func() { <-s.hashSlots }()
		return fn()
	case <-r.Context().Done():
		return &httpError{status: http.StatusServiceUnavailable, code: codeUnavailable,
			msg: "the server is busy hashing passwords; retry shortly", retryAfter: 1}
	}
}

// refresh rotates the token from the body, or in browser mode from the
// cookie, which then must come with an allowed Origin (CSRF defence).
func (s *server) refresh(w http.ResponseWriter, r *http.Request, c tokens.Client, token string, cookieOK bool) {
	if token == "" && cookieOK {
		var err error
		if token, err = s.cookieToken(r, c); err != nil {
			writeError(w, r, s.log, err)
			return
		}
	}
	if token == "" {
		writeError(w, r, s.log, badRequest("refresh_token is required"))
		return
	}
	client := s.client(r)
	pair, err := s.svc.RefreshClient(r.Context(), c, token, client)
	if err != nil {
		if errors.Is(err, tokens.ErrInvalidGrant) {
			s.clearCookie(w, c) // the token is dead for good; a 503 keeps it
			// Only failures are limited, charged after the token was judged:
			// a valid token always rotates; a client over its failure budget
			// gets 429 for its failures.
			err = s.refreshFailed(r, err)
		}
		writeError(w, r, s.log, err)
		return
	}
	s.writeTokens(w, c, pair)
}

// cookieToken returns the browser-mode refresh cookie, "" if there is none,
// and refuses it without an allowed Origin.
func (s *server) cookieToken(r *http.Request, app tokens.Client) (string, error) {
	if !s.usesCookie(app) {
		return "", nil
	}
	c, err := r.Cookie(s.cookieName(app))
	if err != nil || c.Value == "" {
		return "", nil
	}
	if origin := r.Header.Get("Origin"); !s.clientAllowsOrigin(app, origin) {
		return "", &httpError{status: http.StatusForbidden, code: codeAccessDenied,
			msg: "a cookie-authenticated request needs an Origin allowed for the client (CORS_ALLOWED_ORIGINS for the default client)"}
	}
	return c.Value, nil
}

func (s *server) writeTokens(w http.ResponseWriter, c tokens.Client, p tokens.TokenPair) {
	resp := tokenResponse{
		AccessToken: p.AccessToken, TokenType: "Bearer", ExpiresIn: p.ExpiresIn,
		RefreshToken: p.RefreshToken, RefreshTokenExpiresIn: p.RefreshExpiresIn,
		SessionID: p.SessionID.String(),
	}
	if s.usesCookie(c) {
		http.SetCookie(w, &http.Cookie{
			Name: s.cookieName(c), Value: p.RefreshToken, Path: "/",
			MaxAge: int(p.RefreshExpiresIn), HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode,
		})
		resp.RefreshToken = ""
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, resp)
}

func (s *server) clearCookie(w http.ResponseWriter, c tokens.Client) {
	if s.usesCookie(c) {
		http.SetCookie(w, &http.Cookie{Name: s.cookieName(c), Value: "", Path: "/", MaxAge: -1,
			HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	}
}

// logoutRequest is the optional body of POST /logout.
type logoutRequest struct {
	RefreshToken string `json:"refresh_token"`
	Scope        string `json:"scope"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
}

func (s *server) handleLogout(w http.ResponseWriter, r *http.Request) {
	var req logoutRequest
	if _, err := decodeBody(w, r, &req, false, true); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	if req.Scope != "" && req.Scope != "global" && req.Scope != "session" {
		writeError(w, r, s.log, badRequest(`scope must be "global" or "session"`))
		return
	}
	lr := tokens.LogoutRequest{RefreshToken: req.RefreshToken, Global: req.Scope == "global", Client: s.client(r)}
	// The client matters only for a refresh token (whose cookie, and whose
	// session, it names); a bearer token speaks for itself.
	var app tokens.Client
	if hasClientCredentials(r, req.ClientSecret) || req.ClientID != "" {
		var ok bool
		if app, ok = s.authClient(w, r, req.ClientID, req.ClientSecret); !ok {
			return
		}
	} else {
		app = s.svc.DefaultClient()
	}
	lr.App = &app
	if lr.RefreshToken == "" {
		tok, err := s.cookieToken(r, app)
		if err != nil {
			writeError(w, r, s.log, err)
			return
		}
		lr.RefreshToken = tok
	}
	// An expired or revoked access token must not stop a logout that also
	// carries a refresh token: a user whose 15-minute token lapsed still
	// ends the session. Without a refresh token it is a 401.
	tok, authErr := bearer(r)
	if hasClientCredentials(r, req.ClientSecret) {
		tok, authErr = "", nil // Authorization carried the client's Basic credentials
	}
	if authErr == nil && tok != "" {
		p, err := s.svc.Authenticate(tok)
		if err == nil && p.IsClient() {
			writeError(w, r, s.log, &httpError{status: http.StatusForbidden, code: codeInsufficientScope,
				msg: "a client's own token (client_credentials) has no session to log out; revoke it at /revoke"})
			return
		}
		if err == nil {
			lr.Principal = &p
		}
		authErr = err
	}
	if lr.Principal == nil && lr.RefreshToken == "" {
		if authErr == nil {
			authErr = s.missingToken()
		}
		writeError(w, r, s.log, authErr)
		return
	}
	if err := s.svc.Logout(r.Context(), lr); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	s.clearCookie(w, app)
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) missingToken() error {
	return &httpError{status: http.StatusUnauthorized, code: codeInvalidToken,
		msg: "an access token (Authorization: Bearer) or a refresh token is required"}
}

// revokeRequest is RFC 7009's request, as a form or JSON.
type revokeRequest struct {
	Token         string `json:"token"`
	TokenTypeHint string `json:"token_type_hint"`
	ClientID      string `json:"client_id"`
	ClientSecret  string `json:"client_secret"`
}

func (s *server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	var req revokeRequest
	if _, err := decodeBody(w, r, &req, true, false); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	if req.Token == "" {
		writeError(w, r, s.log, badRequest("token is required"))
		return
	}
	if !s.limit(w, r, s.revokeLimit, s.subject(r).key("revoke"), s.now(), "revoke") {
		return
	}
	c, ok := s.authClient(w, r, req.ClientID, req.ClientSecret)
	if !ok {
		return
	}
	if err := s.svc.RevokeTokenFor(r.Context(), c, req.Token, req.TokenTypeHint, s.client(r)); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, struct{}{})
}

// introspection is RFC 7662's response for an active token; an inactive one
// is {"active": false} and nothing more.
type introspection struct {
	Active    bool     `json:"active"`
	ClientID  string   `json:"client_id,omitempty"`
	Sub       string   `json:"sub,omitempty"`
	Sid       string   `json:"sid,omitempty"`
	Jti       string   `json:"jti,omitempty"`
	Exp       int64    `json:"exp,omitempty"`
	Iat       int64    `json:"iat,omitempty"`
	Iss       string   `json:"iss,omitempty"`
	Aud       []string `json:"aud,omitempty"`
	Roles     []string `json:"roles"`
	TokenType string   `json:"token_type,omitempty"`
}

// handleIntrospect answers RFC 7662 for a caller with role admin or
// introspect: a bearer token that has it, or a confidential client that
// authenticates (client_secret_basic or client_secret_post) and holds it.
func (s *server) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	var req revokeRequest
	if _, err := decodeBody(w, r, &req, true, false); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	if hasClientCredentials(r, req.ClientSecret) {
		c, ok := s.authClient(w, r, req.ClientID, req.ClientSecret)
		if !ok {
			return
		}
		if !tokens.HasRole(c.Roles, "admin", "introspect") {
			writeError(w, r, s.log, &httpError{status: http.StatusForbidden, code: codeInsufficientScope,
				msg: "this client may not introspect: it needs role introspect"})
			return
		}
	} else if _, err := s.withRole(r, "admin", "introspect"); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	if req.Token == "" {
		writeError(w, r, s.log, badRequest("token is required"))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	p, ok := s.svc.Introspect(req.Token)
	if !ok {
		writeJSON(w, http.StatusOK, map[string]bool{"active": false})
		return
	}
	writeJSON(w, http.StatusOK, introspection{
		Active: true, ClientID: p.ClientID, Sub: p.Subject(), Sid: p.SessionID.String(), Jti: p.TokenID.String(),
		Exp: p.ExpiresAt.Unix(), Iat: p.IssuedAt.Unix(), Iss: p.Issuer, Aud: p.Audience,
		Roles: p.Roles, TokenType: "Bearer", // RFC 7662 §2.2 → RFC 6749 §5.1
	})
}
