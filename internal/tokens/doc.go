// Package tokens is Rotor's domain: users, sessions (token families), opaque
// refresh tokens that rotate on every use, signed access tokens, the rotation
// rules of SPEC §2, the in-memory revocation denylist, and the Store interface
// the domain needs from a backend.
//
// It imports only the standard library, golang-jwt/jwt/v5 and google/uuid. It
// must never import net/http, pgx or any store implementation: those depend on
// this package, not the other way round.
package tokens
