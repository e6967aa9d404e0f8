package tokens

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// ClientRefreshInterval is how often an instance reloads the client list,
// so that clients created, changed or deleted through another instance are
// seen here. Revocations do not wait for it: disabling or deleting a client
// revokes its sessions and tokens through the denylist (within 1 s).
const ClientRefreshInterval = 5 * time.Second

// clientDirectory is an instance's in-memory copy of the clients, so that
// access-token checks (the audience of a token's client) and the public
// clients of the hot path (login, refresh, CORS) never wait for the
// database. Confidential clients are authenticated against the store.
type clientDirectory struct {
	mu      sync.RWMutex
	byID    map[string]Client
	builtin Client // the default client when the store has none
}

func newClientDirectory(builtin Client) *clientDirectory {
	return &clientDirectory{byID: map[string]Client{}, builtin: builtin}
}

// get returns a client; the default client always exists.
func (d *clientDirectory) get(id string) (Client, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if c, ok := d.byID[id]; ok {
		return c, true
	}
	if id == d.builtin.ID {
		return d.builtin, true
	}
	return Client{}, false
}

func (d *clientDirectory) put(c Client) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.byID[c.ID] = c
}

func (d *clientDirectory) remove(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.byID, id)
}

func (d *clientDirectory) replace(cs []Client) {
	m := make(map[string]Client, len(cs))
	for _, c := range cs {
		m[c.ID] = c
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.byID = m
}

// origins returns every allowed origin of every enabled client (for CORS
// preflights, which name no client).
func (d *clientDirectory) origins() []string {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var out []string
	add := func(c Client) {
		if !c.Disabled {
			out = append(out, c.AllowedOrigins...)
		}
	}
	if _, ok := d.byID[d.builtin.ID]; !ok {
		add(d.builtin)
	}
	for _, c := range d.byID {
		add(c)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// allowsOrigin reports whether an enabled client allows origin, without
// allocating (it runs for every browser request).
func (d *clientDirectory) allowsOrigin(origin string) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if _, stored := d.byID[d.builtin.ID]; !stored && !d.builtin.Disabled && slices.Contains(d.builtin.AllowedOrigins, origin) {
		return true
	}
	for _, c := range d.byID {
		if !c.Disabled && slices.Contains(c.AllowedOrigins, origin) {
			return true
		}
	}
	return false
}

// RefreshClients reloads the client list from the store. The server calls
// it at start and every ClientRefreshInterval.
func (s *Service) RefreshClients(ctx context.Context) error {
	cs, err := s.store.Clients(ctx)
	if err != nil {
		return fmt.Errorf("load clients: %w", err)
	}
	s.clients.replace(cs)
	return nil
}

// DefaultClient returns the client of requests that name none.
func (s *Service) DefaultClient() Client {
	c, _ := s.clients.get(s.cfg.DefaultClientID)
	return c
}

// KnownClient returns a client from the in-memory directory (public
// clients on the hot path; never for authenticating a secret).
func (s *Service) KnownClient(id string) (Client, bool) { return s.clients.get(id) }

// AllowedOrigins returns every enabled client's allowed browser origins.
func (s *Service) AllowedOrigins() []string { return s.clients.origins() }

// OriginAllowed reports whether some enabled client allows origin (CORS).
func (s *Service) OriginAllowed(origin string) bool { return s.clients.allowsOrigin(origin) }

// audienceOf is the access-token verifier's view of the directory.
func (s *Service) audienceOf(id string) (string, bool) {
	c, ok := s.clients.get(id)
	return c.Audience, ok
}

// storedClientID is how a session records its client: "" for the default.
func (s *Service) storedClientID(c Client) string {
	if c.ID == s.cfg.DefaultClientID {
		return ""
	}
	return c.ID
}

// SessionClientID is the id of the client a stored session belongs to.
func (s *Service) SessionClientID(sess Session) string { return s.sessionClient(sess) }

// sessionClient is the id of the client a stored session belongs to.
func (s *Service) sessionClient(sess Session) string {
	if sess.ClientID == "" {
		return s.cfg.DefaultClientID
	}
	return sess.ClientID
}
