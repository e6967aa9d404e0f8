// Package memory is an in-memory tokens.Store for quick starts and tests.
// Everything is lost when the process exits. One mutex serializes every
// operation, which gives the same guarantees as the PostgreSQL store's row
// locks (and more). It offers no fast path (tokens.FastRotator): every
// rotation is decided by tokens.Decide through Refresh, so the rules live in
// one place.
package memory

import (
	"bytes"
	"context"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/rotorauth/rotor/internal/tokens"
)

// Store is an in-memory tokens.Store.
type Store struct {
	mu       sync.Mutex
	users    map[uuid.UUID]tokens.User
	byEmail  map[string]uuid.UUID
	sessions map[uuid.UUID]tokens.Session
	clients  map[string]tokens.Client
	revs     []tokens.Revocation
	audit    []tokens.AuditEvent
	nextRev  int64
	nextEv   int64
}

var _ tokens.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	return &Store{
		users: map[uuid.UUID]tokens.User{}, byEmail: map[string]uuid.UUID{},
		sessions: map[uuid.UUID]tokens.Session{},
		clients:  map[string]tokens.Client{},
	}
}

func cloneUser(u tokens.User) tokens.User {
	u.Roles = slices.Clone(u.Roles)
	u.Roles = tokens.NonNil(u.Roles)
	return u
}

// CreateUser implements tokens.Store.
func (s *Store) CreateUser(_ context.Context, u tokens.User) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, taken := s.byEmail[u.Email]; taken {
		return tokens.ErrConflict
	}
	s.users[u.ID] = cloneUser(u)
	s.byEmail[u.Email] = u.ID
	return nil
}

// UserByEmail implements tokens.Store.
func (s *Store) UserByEmail(_ context.Context, email string) (tokens.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.byEmail[email]
	if !ok {
		return tokens.User{}, tokens.ErrNotFound
	}
	return cloneUser(s.users[id]), nil
}

// UserByID implements tokens.Store.
func (s *Store) UserByID(_ context.Context, id uuid.UUID) (tokens.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[id]
	if !ok {
		return tokens.User{}, tokens.ErrNotFound
	}
	return cloneUser(u), nil
}

// UpdateUser implements tokens.Store.
func (s *Store) UpdateUser(_ context.Context, up tokens.UserUpdate) (tokens.User, []tokens.Revocation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[up.ID]
	if !ok {
		return tokens.User{}, nil, tokens.ErrNotFound
	}
	before := u.Roles
	if up.Disabled != nil {
		u.Disabled = *up.Disabled
	}
	if up.Roles != nil {
		u.Roles = slices.Clone(*up.Roles)
	}
	if up.PasswordHash != nil {
		u.PasswordHash = *up.PasswordHash
	}
	s.users[u.ID] = u
	if up.Event != nil {
		s.addAuditLocked(*up.Event)
	}
	var revs []tokens.Revocation
	switch {
	case up.Revoke != nil:
		revs = s.revokeLocked(*up.Revoke)
	case up.RevokeOnRoleLoss != nil && tokens.RolesLost(before, u.Roles):
		revs = s.revokeLocked(*up.RevokeOnRoleLoss)
	}
	return cloneUser(u), revs, nil
}

// CreateSession implements tokens.Store.
func (s *Store) CreateSession(_ context.Context, ns tokens.NewSession) (tokens.User, []tokens.Revocation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[ns.Session.UserID]
	if !ok || u.Disabled || u.PasswordHash != ns.PasswordHash {
		return tokens.User{}, nil, tokens.ErrNotFound
	}
	if id := ns.Session.ClientID; id != "" {
		if c, ok := s.clients[id]; !ok || c.Disabled {
			return tokens.User{}, nil, tokens.ErrNotFound
		}
	}
	if _, dup := s.sessions[ns.Session.ID]; dup {
		return tokens.User{}, nil, tokens.ErrConflict
	}
	s.sessions[ns.Session.ID] = ns.Session
	s.addAuditLocked(ns.Event)
	var revs []tokens.Revocation
	if ns.MaxSessions > 0 {
		var others []tokens.Session
		for _, sess := range s.sessions {
			if sess.UserID == u.ID && sess.ID != ns.Session.ID && sess.RevokedAt == nil && ns.Session.CreatedAt.Before(sess.ExpiresAt) {
				others = append(others, sess)
			}
		}
		sort.Slice(others, func(i, j int) bool { // most recently used first
			if !others[i].LastUsedAt.Equal(others[j].LastUsedAt) {
				return others[i].LastUsedAt.After(others[j].LastUsedAt)
			}
			return bytes.Compare(others[i].ID[:], others[j].ID[:]) > 0
		})
		for _, sess := range others[min(len(others), ns.MaxSessions-1):] {
			r := ns.Evict
			r.SessionID = sess.ID
			revs = append(revs, s.revokeLocked(r)...)
		}
	}
	u = cloneUser(u)
	u.PasswordHash = ""
	return u, revs, nil
}

// HasLegacyTokens implements tokens.LegacyStore: the memory store never
// held a v1 token.
func (s *Store) HasLegacyTokens() bool { return false }

// Refresh implements tokens.Store. The memory store never held a v1
// token: a reference by selector is not found.
func (s *Store) Refresh(_ context.Context, ref tokens.TokenRef, decide func(tokens.RefreshState) (tokens.RefreshOutcome, error)) ([]tokens.Revocation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[ref.SessionID]
	if !ok || ref.LegacySelector != nil {
		return nil, tokens.ErrNotFound
	}
	u := cloneUser(s.users[sess.UserID])
	u.PasswordHash = ""
	out, err := decide(tokens.RefreshState{Session: sess, User: u})
	if err != nil {
		return nil, err
	}
	switch out.Kind {
	case tokens.OutcomeRotate:
		if out.Chain.Generation != sess.Chain.Generation+1 || sess.RevokedAt != nil {
			return nil, tokens.ErrConflict // decide broke the contract
		}
		sess.Chain = out.Chain
		sess.LastUsedAt, sess.RefreshCount = out.Now, sess.RefreshCount+1
		sess.LastIP, sess.LastUserAgent = out.Client.IP, out.Client.UserAgent
		s.sessions[sess.ID] = sess
		for _, ev := range out.Events {
			uid, sid := sess.UserID, sess.ID
			ev.UserID, ev.SessionID = &uid, &sid
			s.addAuditLocked(ev)
		}
	case tokens.OutcomeRevoke:
		return s.revokeLocked(out.Revoke), nil
	}
	return nil, nil
}

// RevokeSessions implements tokens.Store.
func (s *Store) RevokeSessions(_ context.Context, r tokens.SessionRevocation) ([]tokens.Revocation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.revokeLocked(r), nil
}

func (s *Store) revokeLocked(r tokens.SessionRevocation) []tokens.Revocation {
	var ids []uuid.UUID
	if r.SessionID != uuid.Nil {
		ids = append(ids, r.SessionID)
	} else {
		for id, sess := range s.sessions {
			if sess.UserID == r.UserID {
				ids = append(ids, id)
			}
		}
		sort.Slice(ids, func(i, j int) bool { return bytes.Compare(ids[i][:], ids[j][:]) < 0 })
	}
	var revs []tokens.Revocation
	for _, id := range ids {
		sess, ok := s.sessions[id]
		// Sessions that expired less than an access-token lifetime ago are
		// revoked too: their last access tokens still live.
		if !ok || sess.RevokedAt != nil || !sess.ExpiresAt.After(r.At.Add(-r.DenyUntil.Sub(r.At))) || id == r.Except ||
			(r.UserID != uuid.Nil && sess.UserID != r.UserID) {
			continue
		}
		at := r.At
		sess.RevokedAt, sess.RevokedReason = &at, r.Reason
		s.sessions[id] = sess
		s.nextRev++
		rev := tokens.Revocation{ID: s.nextRev, Kind: tokens.RevokeSession, Subject: id, Until: r.DenyUntil}
		s.revs = append(s.revs, rev)
		revs = append(revs, rev)
		ev := r.Event
		uid, sid := sess.UserID, id
		ev.UserID, ev.SessionID = &uid, &sid
		s.addAuditLocked(ev)
	}
	return revs
}

// DenyToken implements tokens.Store.
func (s *Store) DenyToken(_ context.Context, jti uuid.UUID, until time.Time, ev tokens.AuditEvent) (tokens.Revocation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.revs {
		if (r.Kind == tokens.RevokeToken && r.Subject == jti) ||
			(r.Kind == tokens.RevokeSession && ev.SessionID != nil && r.Subject == *ev.SessionID) {
			return tokens.Revocation{}, tokens.ErrConflict
		}
	}
	s.nextRev++
	rev := tokens.Revocation{ID: s.nextRev, Kind: tokens.RevokeToken, Subject: jti, Until: until}
	s.revs = append(s.revs, rev)
	s.addAuditLocked(ev)
	return rev, nil
}

// Session implements tokens.Store.
func (s *Store) Session(_ context.Context, id uuid.UUID) (tokens.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[id]
	if !ok {
		return tokens.Session{}, tokens.ErrNotFound
	}
	return sess, nil
}

// ActiveSessions implements tokens.Store.
func (s *Store) ActiveSessions(_ context.Context, userID uuid.UUID, now time.Time, after *tokens.SessionCursor, limit int) ([]tokens.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// newer orders sessions newest first, then by id.
	newer := func(a, b tokens.Session) bool {
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.After(b.CreatedAt)
		}
		return bytes.Compare(a.ID[:], b.ID[:]) < 0
	}
	out := []tokens.Session{}
	for _, sess := range s.sessions {
		if sess.UserID == userID && sess.RevokedAt == nil && now.Before(sess.ExpiresAt) &&
			(after == nil || newer(tokens.Session{CreatedAt: after.CreatedAt, ID: after.ID}, sess)) {
			out = append(out, sess)
		}
	}
	sort.Slice(out, func(i, j int) bool { return newer(out[i], out[j]) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// Revocations implements tokens.Store.
// Every write here commits at once, in ID order, so the cursor is the last
// ID handed out.
func (s *Store) Revocations(_ context.Context, since tokens.SyncCursor, now time.Time) ([]tokens.Revocation, tokens.SyncCursor, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []tokens.Revocation{}
	for _, r := range s.revs {
		if r.ID > since.MaxID && r.Until.After(now) {
			out = append(out, r)
		}
	}
	return out, tokens.SyncCursor{MaxID: s.nextRev, Xmax: s.nextRev}, nil
}

// RevocationFeed implements tokens.Store. IDs are handed out in commit
// order here, so Floor and After are both IDs already seen.
func (s *Store) RevocationFeed(_ context.Context, c tokens.FeedCursor, now time.Time, limit int) ([]tokens.Revocation, tokens.FeedCursor, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := c.Next
	if c.After == 0 {
		next = s.nextRev
	}
	out := []tokens.Revocation{}
	for _, r := range s.revs {
		if r.ID > max(c.Floor, c.After) && r.Until.After(now) {
			if len(out) == limit {
				return out, tokens.FeedCursor{Floor: c.Floor, After: out[limit-1].ID, Next: next}, true, nil
			}
			out = append(out, r)
		}
	}
	return out, tokens.FeedCursor{Floor: next}, false, nil
}

// AddAudit implements tokens.Store.
func (s *Store) AddAudit(_ context.Context, ev tokens.AuditEvent) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addAuditLocked(ev)
	return nil
}

func (s *Store) addAuditLocked(ev tokens.AuditEvent) {
	s.nextEv++
	ev.ID = s.nextEv
	ev.Detail = tokens.NonNilMap(ev.Detail)
	s.audit = append(s.audit, ev)
}

// Audit implements tokens.Store.
func (s *Store) Audit(_ context.Context, userID uuid.UUID, before int64, limit int) ([]tokens.AuditEvent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []tokens.AuditEvent{}
	for i := len(s.audit) - 1; i >= 0 && len(out) < limit; i-- {
		ev := s.audit[i]
		if before > 0 && ev.ID >= before {
			continue
		}
		if userID == uuid.Nil || (ev.UserID != nil && *ev.UserID == userID) {
			out = append(out, ev)
		}
	}
	return out, nil
}

// Purge implements tokens.Store.
func (s *Store) Purge(_ context.Context, now, auditBefore time.Time, batch int) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id, sess := range s.sessions {
		if n >= batch {
			break
		}
		if !now.Before(sess.ExpiresAt) || (sess.RevokedAt != nil && sess.RevokedAt.Before(now.Add(-tokens.RevokedRetention))) {
			delete(s.sessions, id)
			n++
		}
	}
	kept := s.revs[:0]
	m := 0
	for _, r := range s.revs {
		if m < batch && !r.Until.After(now) {
			m++
			continue
		}
		kept = append(kept, r)
	}
	s.revs = kept
	a := 0
	for a < len(s.audit) && a < batch && s.audit[a].At.Before(auditBefore) {
		a++
	}
	s.audit = append(s.audit[:0:0], s.audit[a:]...)
	return n + m + a, nil
}

// Ping implements tokens.Store.
func (s *Store) Ping(context.Context) error { return nil }
