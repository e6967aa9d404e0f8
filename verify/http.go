package verify

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

type claimsKey struct{}

// claimsValue is what the context carries: the claims and the Verifier
// that checked them (nil for NewContext).
type claimsValue struct {
	by     *Verifier
	claims *Claims
}

// ClaimsFrom returns the claims Middleware, RequireRole or NewContext put
// in ctx.
func ClaimsFrom(ctx context.Context) (*Claims, bool) {
	cv, ok := ctx.Value(claimsKey{}).(claimsValue)
	return cv.claims, ok && cv.claims != nil
}

// NewContext returns a copy of ctx carrying c for ClaimsFrom; handy for
// testing handlers without tokens. Middleware and RequireRole do not take
// such claims for verified ones: they check the request's token anyway.
func NewContext(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, claimsValue{claims: c})
}

// verifiedBy returns the claims in ctx if v itself checked them.
func (v *Verifier) verifiedBy(ctx context.Context) (*Claims, bool) {
	cv, ok := ctx.Value(claimsKey{}).(claimsValue)
	return cv.claims, ok && cv.by == v && cv.claims != nil
}

func (v *Verifier) withClaims(r *http.Request, c *Claims) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), claimsKey{}, claimsValue{by: v, claims: c}))
}

// Middleware verifies the request's bearer token (RFC 6750 §2.1) and calls
// next with its claims in the context (ClaimsFrom). Otherwise it answers
// with Rotor's error shape {"error","error_description"}:
//
//   - 401 with WWW-Authenticate: Bearer error="invalid_token",
//     error_description="…" for a refused token;
//   - 401 with a bare WWW-Authenticate: Bearer when the request carries no
//     bearer token at all (RFC 6750 §3.1: no error code then);
//   - 400 invalid_request for several Authorization headers;
//   - 503 temporarily_unavailable with Retry-After when the verifier cannot
//     decide (keys not loaded, revocations stale and failing closed); the
//     cause is for Status and the log, the body only says to retry.
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := v.verifiedBy(r.Context()); ok {
			next.ServeHTTP(w, r) // this Verifier already checked this request
			return
		}
		c, ok := v.authenticate(w, r)
		if !ok {
			return
		}
		next.ServeHTTP(w, v.withClaims(r, c))
	})
}

// RequireRole lets a request through when its token carries at least one
// of roles, and answers 403 with WWW-Authenticate: Bearer
// error="insufficient_scope" otherwise. It verifies the token itself unless
// this Verifier's Middleware already did for the request.
func (v *Verifier) RequireRole(roles ...string) func(http.Handler) http.Handler {
	roles = append([]string(nil), roles...)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, ok := v.verifiedBy(r.Context())
			if !ok {
				if c, ok = v.authenticate(w, r); !ok {
					return
				}
				r = v.withClaims(r, c)
			}
			if !c.HasRole(roles...) {
				desc := "this needs role " + strings.Join(roles, " or ")
				w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope", error_description="`+quoteSafe(desc, 200)+`"`)
				writeError(w, http.StatusForbidden, "insufficient_scope", desc)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// authenticate verifies r's token, or answers the error and returns false.
func (v *Verifier) authenticate(w http.ResponseWriter, r *http.Request) (*Claims, bool) {
	hs := r.Header.Values("Authorization")
	if len(hs) > 1 {
		writeError(w, http.StatusBadRequest, "invalid_request", "more than one Authorization header")
		return nil, false
	}
	raw, ok := bearer(hs)
	if !ok {
		w.Header().Set("WWW-Authenticate", "Bearer")
		writeError(w, http.StatusUnauthorized, "invalid_token", "the request has no bearer access token")
		return nil, false
	}
	c, err := v.Verify(r.Context(), raw)
	if err == nil {
		return c, true
	}
	desc := quoteSafe(reasonOf(err), 300)
	if errors.Is(err, ErrInvalidToken) {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="`+desc+`"`)
		writeError(w, http.StatusUnauthorized, "invalid_token", desc)
		return nil, false
	}
	// The cause (internal URLs, dial errors) is for Status and the log, not
	// for the client.
	desc = "the access token cannot be checked right now; retry shortly"
	if errors.Is(err, ErrStale) {
		desc = "revocations cannot be checked right now; retry shortly"
	}
	w.Header().Set("Retry-After", "1")
	writeError(w, http.StatusServiceUnavailable, "temporarily_unavailable", desc)
	return nil, false
}

// bearer reads "Bearer <token>" (the scheme case-insensitively).
func bearer(hs []string) (string, bool) {
	if len(hs) != 1 {
		return "", false
	}
	scheme, tok, ok := strings.Cut(strings.TrimSpace(hs[0]), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

func writeError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(errorBody{Error: code, Description: desc})
}
