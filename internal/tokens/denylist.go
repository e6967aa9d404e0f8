package tokens

import (
	"sync"
	"time"

	"github.com/google/uuid"
)

// RevocationKind says what a denylist entry covers.
type RevocationKind string

// Revocation kinds: a whole session (every access token with that sid) or a
// single access token (by jti).
const (
	RevokeSession RevocationKind = "session"
	RevokeToken   RevocationKind = "token"
)

// Revocation is one denylist entry. It matters only until Until, when every
// access token it covers has expired anyway.
type Revocation struct {
	ID      int64 // store-assigned, increasing
	Kind    RevocationKind
	Subject uuid.UUID // session id or token id
	Until   time.Time
}

// Denylist is an instance's in-memory copy of the unexpired revocations.
// Access-token checks consult it and never the database. It is safe for
// concurrent use.
type Denylist struct {
	mu       sync.RWMutex
	sessions map[uuid.UUID]time.Time
	tokens   map[uuid.UUID]time.Time
	cursor   SyncCursor
}

// NewDenylist returns an empty denylist.
func NewDenylist() *Denylist {
	return &Denylist{sessions: map[uuid.UUID]time.Time{}, tokens: map[uuid.UUID]time.Time{}}
}

// Add records revocations; entries already known are kept with the later
// Until. Revocations are never withdrawn, so a periodic re-synchronisation is
// simply Add of every unexpired entry followed by Purge.
func (d *Denylist) Add(rs ...Revocation) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range rs {
		m := d.tokens
		if r.Kind == RevokeSession {
			m = d.sessions
		}
		if old, ok := m[r.Subject]; !ok || r.Until.After(old) {
			m[r.Subject] = r.Until
		}
	}
}

// SetCursor records how far the store has been read (the cursor returned
// by Store.Revocations). It never moves back. Revocations this instance
// writes itself are Added without touching it: others' entries below them
// may not have been read yet.
func (d *Denylist) SetCursor(c SyncCursor) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c.newer(d.cursor) {
		d.cursor = c
	}
}

// Cursor returns the store cursor to read from next.
func (d *Denylist) Cursor() SyncCursor {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.cursor
}

// Denied reports whether an access token with session sid and id jti is
// revoked at now.
func (d *Denylist) Denied(sid, jti uuid.UUID, now time.Time) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if until, ok := d.sessions[sid]; ok && now.Before(until) {
		return true
	}
	if until, ok := d.tokens[jti]; ok && now.Before(until) {
		return true
	}
	return false
}

// Purge drops entries whose Until has passed and reports how many went.
func (d *Denylist) Purge(now time.Time) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, m := range []map[uuid.UUID]time.Time{d.sessions, d.tokens} {
		for k, until := range m {
			if !now.Before(until) {
				delete(m, k)
				n++
			}
		}
	}
	return n
}

// Len returns the number of entries held.
func (d *Denylist) Len() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return len(d.sessions) + len(d.tokens)
}
