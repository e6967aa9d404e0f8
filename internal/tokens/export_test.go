package tokens

// VerifyUncached exposes the full check without the cache to benchmarks.
func (a *AccessTokens) VerifyUncached(token string) (Principal, error) { return a.verify(token) }

// The refusal reasons of Decide and Parse, so tests can tell them apart
// (each Is ErrInvalidGrant). errUserUnavailable equals errUnknownToken on
// purpose: a disabled user's token looks unknown.
var (
	RefusalUnknownToken    error = errUnknownToken
	RefusalTokenExpired    error = errTokenExpired
	RefusalSessionExpired  error = errSessionExpired
	RefusalSessionRevoked  error = errSessionRevoked
	RefusalUserUnavailable error = errUserUnavailable
	RefusalWrongClient     error = errWrongClient
)
