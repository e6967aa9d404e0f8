package verify

import (
	"errors"
	"net/http"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// tokenExpiryMargin renews a token this long before it expires.
const tokenExpiryMargin = 10 * time.Second

// bearerTransport authenticates the feed and introspection with tokens of
// Config.TokenSource. It caches a token until shortly before it expires and
// drops it when the issuer refuses it (401: revoked, signed by a key Rotor
// no longer has, Rotor restarted in memory mode), so the next request asks
// the source again instead of presenting a dead token until its expiry.
type bearerTransport struct {
	src  oauth2.TokenSource
	base http.RoundTripper
	now  func() time.Time

	mu      sync.Mutex
	tok     *oauth2.Token
	refused string // the access token the issuer last refused
}

var errSameRefusedToken = errors.New("the TokenSource gave again the token the issuer just refused (401); it caches tokens (see Config.TokenSource) and will only give another once that one expires")

func (b *bearerTransport) token() (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t := b.tok; t != nil && (t.Expiry.IsZero() || b.now().Add(tokenExpiryMargin).Before(t.Expiry)) {
		return t.AccessToken, nil
	}
	t, err := b.src.Token()
	if err != nil {
		return "", err
	}
	if t.AccessToken == "" {
		return "", errors.New("the TokenSource gave an empty access token")
	}
	if t.AccessToken == b.refused {
		return "", errSameRefusedToken
	}
	b.tok = t
	return t.AccessToken, nil
}

func (b *bearerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tok, err := b.token()
	if err != nil {
		if req.Body != nil {
			_ = req.Body.Close() // RoundTrip must close the body even on error; nothing to do if that fails
		}
		return nil, err
	}
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "Bearer "+tok)
	resp, err := b.base.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusUnauthorized {
		b.mu.Lock()
		if b.tok != nil && b.tok.AccessToken == tok {
			b.tok, b.refused = nil, tok
		}
		b.mu.Unlock()
	}
	return resp, err
}
