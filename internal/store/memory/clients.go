package memory

import (
	"context"
	"slices"
	"sort"

	"github.com/rotorauth/rotor/internal/tokens"
)

func cloneClient(c tokens.Client) tokens.Client {
	c.GrantTypes, c.AllowedOrigins, c.Roles = slices.Clone(c.GrantTypes), slices.Clone(c.AllowedOrigins), slices.Clone(c.Roles)
	c.SecretHash = slices.Clone(c.SecretHash)
	return c
}

// CreateClient implements tokens.Store.
func (s *Store) CreateClient(_ context.Context, c tokens.Client) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, taken := s.clients[c.ID]; taken {
		return tokens.ErrConflict
	}
	s.clients[c.ID] = cloneClient(c)
	return nil
}

// Client implements tokens.Store.
func (s *Store) Client(_ context.Context, id string) (tokens.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.clients[id]
	if !ok {
		return tokens.Client{}, tokens.ErrNotFound
	}
	return cloneClient(c), nil
}

// Clients implements tokens.Store.
func (s *Store) Clients(context.Context) ([]tokens.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]tokens.Client, 0, len(s.clients))
	for _, c := range s.clients {
		out = append(out, cloneClient(c))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// UpdateClient implements tokens.Store.
func (s *Store) UpdateClient(_ context.Context, u tokens.ClientUpdate) (tokens.Client, []tokens.Revocation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.clients[u.ID]
	if !ok {
		return tokens.Client{}, nil, tokens.ErrNotFound
	}
	set := func(dst *[]string, src *[]string) {
		if src != nil {
			*dst = slices.Clone(*src)
		}
	}
	if u.Name != nil {
		c.Name = *u.Name
	}
	set(&c.GrantTypes, u.GrantTypes)
	set(&c.AllowedOrigins, u.AllowedOrigins)
	set(&c.Roles, u.Roles)
	if u.Audience != nil {
		c.Audience = *u.Audience
	}
	if u.Disabled != nil {
		c.Disabled = *u.Disabled
	}
	if u.SecretHash != nil {
		c.SecretHash = slices.Clone(*u.SecretHash)
	}
	c.UpdatedAt = u.UpdatedAt
	var revs []tokens.Revocation
	if u.Revoke != nil {
		revs = s.revokeClientLocked(u.ID, *u.Revoke)
		c.TokenFamily = u.Revoke.NewFamily
	}
	s.clients[u.ID] = c
	return cloneClient(c), revs, nil
}

// DeleteClient implements tokens.Store.
func (s *Store) DeleteClient(_ context.Context, id string, r tokens.ClientRevocation) ([]tokens.Revocation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.clients[id]; !ok {
		return nil, tokens.ErrNotFound
	}
	revs := s.revokeClientLocked(id, r)
	delete(s.clients, id)
	return revs, nil
}

func (s *Store) revokeClientLocked(id string, r tokens.ClientRevocation) []tokens.Revocation {
	var revs []tokens.Revocation
	if r.EndSessions {
		for sid, sess := range s.sessions {
			if sess.ClientID == id {
				one := r.Sessions
				one.SessionID, one.UserID = sid, sess.UserID
				revs = append(revs, s.revokeLocked(one)...)
			}
		}
	}
	family := s.clients[id].TokenFamily // the current one, whatever the caller read
	for _, rev := range s.revs {
		if rev.Kind == tokens.RevokeSession && rev.Subject == family {
			return revs
		}
	}
	s.nextRev++
	rev := tokens.Revocation{ID: s.nextRev, Kind: tokens.RevokeSession, Subject: family, Until: r.Sessions.DenyUntil}
	s.revs = append(s.revs, rev)
	return append(revs, rev)
}
