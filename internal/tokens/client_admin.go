package tokens

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/google/uuid"
)

// Client administration: the admin API, `server clients …` and clients
// files all come here.

// CreateClient registers a client from spec (ID, Type and every field set;
// nil fields take defaults: name = id, grants by type, audience = the
// issuer's default). A confidential client gets spec.Secret, or a fresh
// secret, which is returned: it is shown this once and stored only as a
// keyed hash.
func (s *Service) CreateClient(ctx context.Context, spec ClientSpec, actor string, info ClientInfo) (Client, string, error) {
	now := s.nowUTC()
	c := Client{
		ID: spec.ID, Name: deref(spec.Name, spec.ID), Type: spec.Type,
		GrantTypes: deref(spec.GrantTypes, defaultGrants(spec.Type)), AllowedOrigins: deref(spec.AllowedOrigins, []string{}),
		Audience: deref(spec.Audience, s.cfg.Audience), Roles: deref(spec.Roles, []string{}),
		Disabled: deref(spec.Disabled, false), TokenFamily: uuid.New(), CreatedAt: now, UpdatedAt: now,
	}
	if c.Type == "" {
		c.Type = ClientPublic
		if spec.GrantTypes == nil {
			c.GrantTypes = defaultGrants(c.Type)
		}
	}
	if err := validateClient(c); err != nil {
		return Client{}, "", err
	}
	var secret string
	if c.Type == ClientConfidential {
		var err error
		if secret, err = s.secretFor(spec.Secret); err != nil {
			return Client{}, "", err
		}
		c.SecretHash = s.clientSecretHash(secret)
	} else if spec.Secret != "" {
		return Client{}, "", InvalidInput("a public client has no secret")
	}
	if err := s.store.CreateClient(ctx, c); err != nil {
		return Client{}, "", err
	}
	s.clients.put(c)
	s.clientEvent(ctx, EventClientCreated, c.ID, actor, info)
	return c, secret, nil
}

func defaultGrants(t ClientType) []string {
	if t == ClientConfidential {
		return []string{GrantClientCredentials}
	}
	return []string{GrantPassword, GrantRefreshToken}
}

// secretFor returns given (checked) or a fresh secret.
func (s *Service) secretFor(given string) (string, error) {
	if given == "" {
		return newClientSecret()
	}
	if len(given) < MinClientSecretLen || len(given) > 512 {
		return "", InvalidInput(fmt.Sprintf("a client secret must be %d to 512 bytes", MinClientSecretLen))
	}
	return given, nil
}

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// UpdateClient changes the fields spec sets (Type cannot change). Disabling
// the client ends every session issued to it and every client_credentials
// token it holds; so does taking a role away (its tokens only). The default
// client cannot be disabled: it serves every request that names none.
func (s *Service) UpdateClient(ctx context.Context, spec ClientSpec, actor string, info ClientInfo) (Client, error) {
	old, err := s.store.Client(ctx, spec.ID)
	if err != nil {
		return Client{}, err
	}
	if spec.Type != "" && spec.Type != old.Type {
		return Client{}, InvalidInput("a client's type cannot change; create a new client")
	}
	next := old
	next.Name = deref(spec.Name, old.Name)
	next.GrantTypes = deref(spec.GrantTypes, old.GrantTypes)
	next.AllowedOrigins = deref(spec.AllowedOrigins, old.AllowedOrigins)
	next.Audience = deref(spec.Audience, old.Audience)
	next.Roles = deref(spec.Roles, old.Roles)
	next.Disabled = deref(spec.Disabled, old.Disabled)
	if err := validateClient(next); err != nil {
		return Client{}, err
	}
	if next.Disabled && next.ID == s.cfg.DefaultClientID {
		return Client{}, InvalidInput("the default client cannot be disabled")
	}
	up := ClientUpdate{ID: spec.ID, Name: spec.Name, GrantTypes: spec.GrantTypes, AllowedOrigins: spec.AllowedOrigins,
		Audience: spec.Audience, Roles: spec.Roles, Disabled: spec.Disabled, UpdatedAt: s.nowUTC()}
	if spec.Secret != "" {
		if old.Type != ClientConfidential {
			return Client{}, InvalidInput("a public client has no secret")
		}
		secret, err := s.secretFor(spec.Secret)
		if err != nil {
			return Client{}, err
		}
		if !s.clientSecretMatches(old, secret) {
			h := s.clientSecretHash(secret)
			up.SecretHash = &h
		}
	}
	switch {
	case next.Disabled && !old.Disabled:
		up.Revoke = s.clientRevocation(old, ReasonClientDisabled, info, true)
	case RolesLost(old.Roles, next.Roles), next.Audience != old.Audience:
		up.Revoke = s.clientRevocation(old, ReasonClientRolesReduced, info, false)
	}
	c, revs, err := s.store.UpdateClient(ctx, up)
	if err != nil {
		return Client{}, err
	}
	if up.Revoke != nil {
		s.clientRevoked(*up.Revoke, revs)
	}
	s.clients.put(c)
	s.clientEvent(ctx, EventClientUpdated, c.ID, actor, info)
	return c, nil
}

// RotateClientSecret gives a confidential client a fresh secret, returned
// this once; the old one stops working at once.
func (s *Service) RotateClientSecret(ctx context.Context, id, actor string, info ClientInfo) (string, error) {
	c, err := s.store.Client(ctx, id)
	if err != nil {
		return "", err
	}
	if c.Type != ClientConfidential {
		return "", InvalidInput("a public client has no secret")
	}
	secret, err := newClientSecret()
	if err != nil {
		return "", err
	}
	h := s.clientSecretHash(secret)
	c, _, err = s.store.UpdateClient(ctx, ClientUpdate{ID: id, SecretHash: &h, UpdatedAt: s.nowUTC()})
	if err != nil {
		return "", err
	}
	s.clients.put(c)
	s.clientEvent(ctx, EventClientSecretRotated, id, actor, info)
	return secret, nil
}

// DeleteClient ends every session and token of a client and deletes it. The
// default client cannot be deleted.
func (s *Service) DeleteClient(ctx context.Context, id, actor string, info ClientInfo) error {
	if id == s.cfg.DefaultClientID {
		return InvalidInput("the default client cannot be deleted")
	}
	c, err := s.store.Client(ctx, id)
	if err != nil {
		return err
	}
	cr := s.clientRevocation(c, ReasonClientDisabled, info, true)
	revs, err := s.store.DeleteClient(ctx, id, *cr)
	if err != nil {
		return err
	}
	s.clientRevoked(*cr, revs)
	s.clients.remove(id)
	s.clientEvent(ctx, EventClientDeleted, id, actor, info)
	return nil
}

// Client returns a stored client (the built-in default client if the
// store has none of its id).
func (s *Service) Client(ctx context.Context, id string) (Client, error) {
	c, err := s.store.Client(ctx, id)
	if errors.Is(err, ErrNotFound) && id == s.cfg.DefaultClientID {
		return s.DefaultClient(), nil
	}
	return c, err
}

// Clients lists the stored clients by id.
func (s *Service) Clients(ctx context.Context) ([]Client, error) { return s.store.Clients(ctx) }

// ApplyClients makes the stored clients match specs (a clients file):
// missing ones are created, present ones get every field the spec sets and
// its secret if it names one. Clients the specs do not name are left alone.
// It reports how many were created and updated.
func (s *Service) ApplyClients(ctx context.Context, specs []ClientSpec) (created, updated int, err error) {
	// The whole file is checked before anything is written, so a bad entry
	// never leaves it half applied.
	seen := map[string]bool{}
	exists := map[string]bool{}
	for _, spec := range specs {
		if seen[spec.ID] {
			return 0, 0, InvalidInput("client " + spec.ID + " is listed twice")
		}
		seen[spec.ID] = true
		old, err := s.store.Client(ctx, spec.ID)
		var next Client
		switch {
		case errors.Is(err, ErrNotFound):
			if spec.Type == ClientConfidential && spec.Secret == "" {
				return 0, 0, InvalidInput("client " + spec.ID + ": a confidential client in a clients file needs its secret")
			}
			next = Client{ID: spec.ID, Name: deref(spec.Name, spec.ID), Type: spec.Type,
				GrantTypes: deref(spec.GrantTypes, defaultGrants(spec.Type)), AllowedOrigins: deref(spec.AllowedOrigins, []string{}),
				Audience: deref(spec.Audience, s.cfg.Audience), Roles: deref(spec.Roles, []string{})}
		case err != nil:
			return 0, 0, err
		default:
			exists[spec.ID] = true
			if spec.Type != "" && spec.Type != old.Type {
				return 0, 0, InvalidInput("client " + spec.ID + ": a client's type cannot change")
			}
			next = old
			next.Name, next.GrantTypes = deref(spec.Name, old.Name), deref(spec.GrantTypes, old.GrantTypes)
			next.AllowedOrigins, next.Audience = deref(spec.AllowedOrigins, old.AllowedOrigins), deref(spec.Audience, old.Audience)
			next.Roles, next.Disabled = deref(spec.Roles, old.Roles), deref(spec.Disabled, old.Disabled)
		}
		if err := validateClient(next); err != nil {
			return 0, 0, fmt.Errorf("client %s: %w", spec.ID, err)
		}
		if spec.Secret != "" {
			if next.Type != ClientConfidential {
				return 0, 0, InvalidInput("client " + spec.ID + ": a public client has no secret")
			}
			if _, err := s.secretFor(spec.Secret); err != nil {
				return 0, 0, fmt.Errorf("client %s: %w", spec.ID, err)
			}
		}
		if spec.ID == s.cfg.DefaultClientID && (next.Disabled || next.Type != ClientPublic) {
			return 0, 0, InvalidInput("client " + spec.ID + ": the default client must stay public and enabled")
		}
	}
	for _, spec := range specs {
		switch {
		case !exists[spec.ID]:
			if _, _, err := s.CreateClient(ctx, spec, "clients-file", ClientInfo{}); err != nil {
				return created, updated, fmt.Errorf("client %s: %w", spec.ID, err)
			}
			created++
		default:
			if _, err := s.UpdateClient(ctx, spec, "clients-file", ClientInfo{}); err != nil {
				return created, updated, fmt.Errorf("client %s: %w", spec.ID, err)
			}
			updated++
		}
	}
	return created, updated, nil
}

// EnsureDefaultClient stores the default client if it is missing, with the
// configured origins and audience (CORS_ALLOWED_ORIGINS, JWT_AUDIENCE), and
// brings a stored one's origins and audience in line with them: for the
// default client the configuration is the source of truth.
func (s *Service) EnsureDefaultClient(ctx context.Context) error {
	origins, aud := slices.Clone(s.cfg.DefaultOrigins), s.cfg.Audience
	origins = NonNil(origins)
	stored, err := s.store.Client(ctx, s.cfg.DefaultClientID)
	if errors.Is(err, ErrNotFound) {
		name := "Default client"
		_, _, err = s.CreateClient(ctx, ClientSpec{ID: s.cfg.DefaultClientID, Name: &name, Type: ClientPublic,
			AllowedOrigins: &origins, Audience: &aud}, "startup", ClientInfo{})
		if errors.Is(err, ErrConflict) { // another instance was first
			err = nil
		}
		return err
	}
	if err != nil {
		return err
	}
	// The default client serves every request that names no client, with no
	// credentials: it must be public and enabled, or anyone could act as it.
	if stored.Type != ClientPublic || !stored.Allows(GrantPassword) && !stored.Allows(GrantRefreshToken) {
		return fmt.Errorf("client %q is %s: the default client must be a public client (choose another DEFAULT_CLIENT_ID)", stored.ID, stored.Type)
	}
	if stored.Disabled {
		return fmt.Errorf("client %q is disabled: the default client must be enabled", stored.ID)
	}
	_, err = s.UpdateClient(ctx, ClientSpec{ID: s.cfg.DefaultClientID, AllowedOrigins: &origins, Audience: &aud}, "startup", ClientInfo{})
	return err
}

// clientRevocation ends c's client_credentials tokens and, with sessions,
// every session issued to it.
func (s *Service) clientRevocation(c Client, reason Reason, info ClientInfo, sessions bool) *ClientRevocation {
	now := s.nowUTC()
	return &ClientRevocation{Family: c.TokenFamily, NewFamily: uuid.New(), EndSessions: sessions,
		Sessions: s.revocation(reason, EventRevoked, now, info)}
}

func (s *Service) clientEvent(ctx context.Context, kind EventKind, id, actor string, info ClientInfo) {
	_ = s.store.AddAudit(ctx, AuditEvent{At: s.nowUTC(), Kind: kind, IP: info.IP,
		Detail: map[string]string{"client_id": id, "by": actor}})
}

// clientRevoked takes in what a client revocation wrote: its sessions'
// entries (counted as revoked sessions) and its token family's entry (a
// family of client_credentials tokens, not a session).
func (s *Service) clientRevoked(r ClientRevocation, revs []Revocation) {
	sessions := make([]Revocation, 0, len(revs))
	for _, rev := range revs {
		if rev.Subject == r.Family {
			s.deny.Add(rev)
			continue
		}
		sessions = append(sessions, rev)
	}
	s.revoked(r.Sessions.Reason, sessions)
}
