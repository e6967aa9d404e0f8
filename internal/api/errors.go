package api

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/rotorauth/rotor/internal/tokens"
)

// Error codes of the one error body: {"error": code, "error_description": text}.
// Most are RFC 6749 §5.2 and RFC 6750 §3.1 codes.
const (
	codeInvalidRequest       = "invalid_request"
	codeInvalidGrant         = "invalid_grant"
	codeUnsupportedGrantType = "unsupported_grant_type"
	codeInvalidToken         = "invalid_token"
	codeInsufficientScope    = "insufficient_scope"
	codeConflict             = "conflict"
	codeNotFound             = "not_found"
	codeMethodNotAllowed     = "method_not_allowed"
	codeTooLarge             = "request_too_large"
	codeTooManyRequests      = "too_many_requests"
	codeUnavailable          = "temporarily_unavailable"
	codeServerError          = "server_error"
	codeAccessDenied         = "access_denied"
	codeInvalidClient        = "invalid_client"
	codeUnauthorizedClient   = "unauthorized_client"
)

// ErrorCodes lists every error code the API answers with, for the
// contract test and the documentation.
func ErrorCodes() []string {
	return []string{codeInvalidRequest, codeInvalidGrant, codeUnsupportedGrantType, codeInvalidToken,
		codeInsufficientScope, codeConflict, codeNotFound, codeMethodNotAllowed, codeTooLarge,
		codeTooManyRequests, codeUnavailable, codeServerError, codeAccessDenied, codeInvalidClient,
		codeUnauthorizedClient}
}

// httpError is an error the API layer raises itself, with its status.
type httpError struct {
	status     int
	code       string
	msg        string
	retryAfter int // seconds, for 429 and 503
}

func (e *httpError) Error() string { return e.msg }

func badRequest(msg string) error {
	return &httpError{status: http.StatusBadRequest, code: codeInvalidRequest, msg: msg}
}

// writeError is the one place where errors become HTTP responses. Domain
// errors map by errors.Is; anything unrecognised is a 500 whose detail is
// logged with the request id and never sent.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	status, code, msg := http.StatusInternalServerError, codeServerError, "internal error"
	retryAfter := 0
	var he *httpError
	switch {
	case errors.As(err, &he):
		status, code, msg, retryAfter = he.status, he.code, he.msg, he.retryAfter
	case errors.Is(err, tokens.ErrUnavailable):
		status, code, msg, retryAfter = http.StatusServiceUnavailable, codeUnavailable, "the service is temporarily unavailable; retry shortly", 1
	case errors.Is(err, tokens.ErrInvalidClient):
		status, code, msg = http.StatusUnauthorized, codeInvalidClient, err.Error()
	case errors.Is(err, tokens.ErrUnauthorizedClient):
		status, code, msg = http.StatusBadRequest, codeUnauthorizedClient, err.Error()
	case errors.Is(err, tokens.ErrInvalidGrant):
		status, code, msg = http.StatusBadRequest, codeInvalidGrant, err.Error()
	case errors.Is(err, tokens.ErrInvalidInput):
		status, code, msg = http.StatusBadRequest, codeInvalidRequest, err.Error()
	case errors.Is(err, tokens.ErrInvalidToken):
		status, code, msg = http.StatusUnauthorized, codeInvalidToken, err.Error()
	case errors.Is(err, tokens.ErrForbidden):
		status, code, msg = http.StatusForbidden, codeInsufficientScope, "this endpoint needs a role the access token does not have"
	case errors.Is(err, tokens.ErrConflict):
		status, code, msg = http.StatusConflict, codeConflict, "already exists"
	case errors.Is(err, tokens.ErrNotFound):
		status, code, msg = http.StatusNotFound, codeNotFound, "not found"
	}
	if status >= 500 {
		log.ErrorContext(r.Context(), "request failed", "status", status, "err", err.Error())
	}
	switch {
	case code == codeInvalidClient: // RFC 6749 §5.2
		w.Header().Set("WWW-Authenticate", `Basic realm="rotor", charset="UTF-8"`)
	case status == http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	}
	if status == http.StatusForbidden && code == codeInsufficientScope {
		w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope"`)
	}
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
	}
	writeJSON(w, status, errorBody{Error: code, Description: msg}) // no-store by default
}

type errorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}
