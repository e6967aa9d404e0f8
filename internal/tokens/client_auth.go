package tokens

import (
	"context"
	"errors"
	"time"
)

// ClientAuth is how a request names its client, as the HTTP layer found it
// (client_secret_basic, client_secret_post, or a bare client_id).
type ClientAuth struct {
	ID        string
	Secret    string
	HasSecret bool
}

// AuthenticateClient resolves the client of a request (RFC 6749 §2.3):
// none named is the default client; a public client names itself without
// a secret; a confidential client must present its secret. Unknown and
// disabled clients, wrong or missing secrets, and a secret presented for a
// public client are ErrInvalidClient, all alike.
func (s *Service) AuthenticateClient(ctx context.Context, a ClientAuth) (Client, error) {
	if a.ID == "" {
		d := s.DefaultClient()
		if a.HasSecret || d.Type != ClientPublic || d.Disabled {
			return Client{}, errClientAuth // never a confidential client's powers without its secret
		}
		return d, nil
	}
	if !validClientID(a.ID) {
		return Client{}, errClientAuth
	}
	if !a.HasSecret {
		// A public client: the in-memory directory serves the hot path of
		// browser logins and refreshes; one it does not know yet (created
		// through another instance or `server clients` in the last few
		// seconds) is looked up in the store.
		known, ok := s.clients.get(a.ID)
		if !ok {
			c, err := s.store.Client(ctx, a.ID)
			if errors.Is(err, ErrNotFound) {
				return Client{}, errClientAuth
			}
			if err != nil {
				return Client{}, err
			}
			s.clients.put(c)
			known = c
		}
		if known.Type != ClientPublic || known.Disabled {
			return Client{}, errClientAuth
		}
		return known, nil
	}
	c, err := s.store.Client(ctx, a.ID)
	if errors.Is(err, ErrNotFound) {
		_ = s.clientSecretMatches(Client{Type: ClientConfidential, SecretHash: s.clientSecretHash("")}, a.Secret) // same work as a known client
		return Client{}, errClientAuth
	}
	if err != nil {
		return Client{}, err
	}
	if !s.clientSecretMatches(c, a.Secret) || c.Disabled {
		return Client{}, errClientAuth
	}
	s.clients.put(c) // its tokens verify here at once, whatever the reload interval
	return c, nil
}

// ClientCredentials issues an access token to a confidential client for
// itself (RFC 6749 §4.4): sub is the client id, its roles and audience, sid
// its token family (so disabling the client refuses the token), no refresh
// token. Revocable by jti like any access token.
func (s *Service) ClientCredentials(ctx context.Context, c Client) (TokenPair, error) {
	if c.Type != ClientConfidential || !c.Allows(GrantClientCredentials) {
		return TokenPair{}, errGrantNotAllowed
	}
	now := s.nowUTC()
	at, p, err := s.access.issue(accessGrant{sid: c.TokenFamily, roles: c.Roles, clientID: c.ID, audience: c.Audience}, now)
	if err != nil {
		return TokenPair{}, err
	}
	return TokenPair{AccessToken: at, ExpiresIn: int64(s.cfg.AccessTTL / time.Second), Principal: p}, nil
}
