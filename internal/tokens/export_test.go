package tokens

// VerifyUncached exposes the full check without the cache to benchmarks.
func (a *AccessTokens) VerifyUncached(token string) (Principal, error) { return a.verify(token) }
