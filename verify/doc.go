// Package verify checks Rotor access tokens inside a resource server,
// offline, with revocation that still bites.
//
// A Verifier fetches Rotor's public keys (JWKS, discovered through RFC 8414
// metadata or configured), verifies each access token's signature and claims
// locally, and polls Rotor's revocation feed (GET /revocations) so that a
// logout, an admin revocation or a detected refresh-token reuse is refused
// within about one poll interval (default 1 s), without asking Rotor on every
// request:
//
//	ts := (&clientcredentials.Config{
//		ClientID: id, ClientSecret: secret,
//		TokenURL: "https://auth.example.com/token",
//	}).TokenSource(ctx)
//	v, err := verify.New(ctx, verify.Config{
//		Issuer:      "https://auth.example.com", // Rotor's JWT_ISSUER
//		Audience:    "rotor",                    // Rotor's JWT_AUDIENCE
//		TokenSource: ts,                          // role introspect or admin
//	})
//	if err != nil { ... }
//	defer v.Close()
//	if err := v.WaitReady(ctx); err != nil { ... } // keys and one poll
//	mux.Handle("/accounts", v.Middleware(accounts))
//	mux.Handle("/admin/", v.RequireRole("admin")(admin))
//
// and in a handler, verify.ClaimsFrom(r.Context()) returns the token's claims.
//
// What Verify checks: the alg against an allow-list (EdDSA and ES256 from the
// JWKS, or HS256 alone with a shared secret; never none), typ at+jwt
// (RFC 9068), no jku/x5u/jwk/x5c/crit header, a kid in the key set, the
// signature, iss, aud, exp/nbf/iat within a leeway (30 s), sub, sid, jti and
// client_id (RFC 9068 §2.2; Config.AllowMissingClientID for issuers that do
// not emit it yet), and the denylist by sid and jti.
//
// A token that verified is remembered by its exact string (up to 4096), so
// presenting it again costs a map lookup instead of a signature check; a hit
// still needs the token unexpired and its key still in the current set, and
// the denylist and staleness are checked on every call.
//
// Keys are refreshed every 5 minutes and at once (at most once per 10 s) when
// a token names an unknown kid, so a key rotation at Rotor needs no restart;
// each fetch replaces the whole set, so retired keys drop out, and a failed
// fetch keeps the last good set.
//
// Revocations: the feed is read with its cursor, page by page while
// has_more; entries are kept until their until and swept after. When the
// last successful poll is older than Config.StaleAfter (5 s), revocations are
// stale: Verify fails with ErrStale (Middleware answers 503) unless
// Config.FailOpen; Status reports it and the logger says so once per
// transition.
//
// Errors wrap ErrInvalidToken (refuse the token: 401) or ErrUnavailable
// (cannot decide now: 503); their text says what failed.
package verify
