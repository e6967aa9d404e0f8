package tokens_test

import (
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rotorauth/rotor/internal/tokens"
)

func TestDenylistSessionAndToken(t *testing.T) {
	d := tokens.NewDenylist()
	sid, jti, other := uuid.New(), uuid.New(), uuid.New()
	if d.Denied(sid, jti, t0) || d.Len() != 0 || d.Cursor().MaxID != 0 {
		t.Fatal("a new denylist is not empty")
	}
	d.Add(tokens.Revocation{ID: 1, Kind: tokens.RevokeSession, Subject: sid, Until: t0.Add(time.Minute)})
	if !d.Denied(sid, uuid.New(), t0) {
		t.Error("any token of a revoked session must be denied")
	}
	if d.Denied(other, jti, t0) {
		t.Error("another session is denied")
	}
	d.Add(tokens.Revocation{ID: 2, Kind: tokens.RevokeToken, Subject: jti, Until: t0.Add(time.Minute)})
	if !d.Denied(other, jti, t0) {
		t.Error("a revoked jti is not denied in another session")
	}
	if d.Denied(other, uuid.New(), t0) {
		t.Error("a sibling token of a revoked jti is denied")
	}
	if d.Len() != 2 {
		t.Errorf("Len = %d, want 2", d.Len())
	}
}

// A session revocation names a sid and a token revocation a jti; neither
// must be read as the other.
func TestDenylistKindsDoNotMix(t *testing.T) {
	d := tokens.NewDenylist()
	x, y := uuid.New(), uuid.New()
	d.Add(
		tokens.Revocation{ID: 1, Kind: tokens.RevokeSession, Subject: x, Until: t0.Add(time.Hour)},
		tokens.Revocation{ID: 2, Kind: tokens.RevokeToken, Subject: y, Until: t0.Add(time.Hour)},
	)
	if d.Denied(uuid.New(), x, t0) {
		t.Error("a session revocation denied a token whose jti equals the sid")
	}
	if d.Denied(y, uuid.New(), t0) {
		t.Error("a token revocation denied a session whose sid equals the jti")
	}
}

func TestDenylistExpiry(t *testing.T) {
	d := tokens.NewDenylist()
	sid, jti := uuid.New(), uuid.New()
	until := t0.Add(time.Minute)
	d.Add(tokens.Revocation{ID: 1, Kind: tokens.RevokeSession, Subject: sid, Until: until},
		tokens.Revocation{ID: 2, Kind: tokens.RevokeToken, Subject: jti, Until: until})
	for _, c := range []struct {
		at     time.Time
		denied bool
	}{
		{t0.Add(-time.Hour), true},
		{until.Add(-time.Nanosecond), true},
		{until, false}, // at Until every covered token has expired
		{until.Add(time.Hour), false},
	} {
		if got := d.Denied(sid, uuid.New(), c.at); got != c.denied {
			t.Errorf("session at %v: denied %v, want %v", c.at.Sub(until), got, c.denied)
		}
		if got := d.Denied(uuid.New(), jti, c.at); got != c.denied {
			t.Errorf("token at %v: denied %v, want %v", c.at.Sub(until), got, c.denied)
		}
	}
	// An entry that was already expired when added is never denied.
	late := uuid.New()
	d.Add(tokens.Revocation{ID: 3, Kind: tokens.RevokeToken, Subject: late, Until: t0.Add(-time.Second)})
	if d.Denied(uuid.New(), late, t0) {
		t.Error("an entry added already expired is denied")
	}
}

func TestDenylistLaterUntilWins(t *testing.T) {
	short, long := t0.Add(time.Minute), t0.Add(time.Hour)
	mid := t0.Add(30 * time.Minute)
	for name, order := range map[string][]time.Time{"short then long": {short, long}, "long then short": {long, short}} {
		for _, kind := range []tokens.RevocationKind{tokens.RevokeSession, tokens.RevokeToken} {
			d := tokens.NewDenylist()
			s := uuid.New()
			for i, u := range order {
				d.Add(tokens.Revocation{ID: int64(i + 1), Kind: kind, Subject: s, Until: u})
			}
			denied := d.Denied(s, s, mid)
			if !denied {
				t.Errorf("%s/%s: the later Until was lost", name, kind)
			}
			if d.Len() != 1 {
				t.Errorf("%s/%s: Len = %d, want one entry per subject", name, kind, d.Len())
			}
			if d.Purge(mid) != 0 || !d.Denied(s, s, mid) {
				t.Errorf("%s/%s: Purge used the earlier Until", name, kind)
			}
		}
	}
}

func TestDenylistPurge(t *testing.T) {
	d := tokens.NewDenylist()
	d.SetCursor(tokens.SyncCursor{MaxID: 10, Xmax: 10})
	var keep, gone []uuid.UUID
	for i := range 10 {
		s := uuid.New()
		until := t0.Add(time.Minute)
		kind := tokens.RevokeSession
		if i%2 == 0 {
			kind = tokens.RevokeToken
		}
		if i < 4 {
			until = t0 // expires exactly at the purge instant
			gone = append(gone, s)
		} else {
			keep = append(keep, s)
		}
		d.Add(tokens.Revocation{ID: int64(i + 1), Kind: kind, Subject: s, Until: until})
	}
	if n := d.Purge(t0); n != len(gone) {
		t.Fatalf("Purge removed %d, want %d", n, len(gone))
	}
	if d.Len() != len(keep) {
		t.Fatalf("Len = %d after purge, want %d", d.Len(), len(keep))
	}
	for _, s := range keep {
		if !d.Denied(s, s, t0) {
			t.Errorf("unexpired entry %s purged", s)
		}
	}
	if n := d.Purge(t0); n != 0 {
		t.Errorf("second Purge removed %d", n)
	}
	if n := d.Purge(t0.Add(time.Minute)); n != len(keep) || d.Len() != 0 {
		t.Errorf("final Purge removed %d, Len %d", n, d.Len())
	}
	if d.Cursor().MaxID != 10 {
		t.Errorf("Purge moved the cursor to %d", d.Cursor().MaxID)
	}
}

func TestDenylistCursor(t *testing.T) {
	d := tokens.NewDenylist()
	for _, c := range []struct{ set, want int64 }{{5, 5}, {3, 5}, {9, 9}, {0, 9}, {10, 10}} {
		d.SetCursor(tokens.SyncCursor{MaxID: c.set, Xmax: c.set})
		if got := d.Cursor().MaxID; got != c.want {
			t.Fatalf("after SetCursor(%d): Cursor = %d, want %d", c.set, got, c.want)
		}
	}
	// Entries, local or synced, never move the cursor: only the store's
	// cursor says how far the store has been read.
	d.Add(tokens.Revocation{ID: 400, Kind: tokens.RevokeSession, Subject: uuid.New(), Until: t0.Add(time.Hour)})
	if d.Cursor().MaxID != 10 {
		t.Fatalf("Add moved the cursor to %d", d.Cursor().MaxID)
	}
}

// TestDenylistConcurrent runs Add, Denied, Purge, Cursor and Len from 50
// goroutines; run it with -race.
func TestDenylistConcurrent(t *testing.T) {
	d := tokens.NewDenylist()
	const workers, per = 50, 40
	subjects := make([][]uuid.UUID, workers)
	var wg sync.WaitGroup
	for w := range workers {
		subjects[w] = make([]uuid.UUID, per)
		for i := range subjects[w] {
			subjects[w][i] = uuid.New()
		}
	}
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, s := range subjects[w] {
				kind := tokens.RevokeSession
				if i%2 == 1 {
					kind = tokens.RevokeToken
				}
				d.Add(tokens.Revocation{ID: int64(w*per + i + 1), Kind: kind, Subject: s, Until: t0.Add(time.Hour)})
				if !d.Denied(s, s, t0) {
					t.Errorf("worker %d: own entry %d not denied", w, i)
				}
				_ = d.Denied(uuid.New(), subjects[(w+1)%workers][i], t0)
				if i%10 == 0 {
					d.Purge(t0)
					_ = d.Cursor()
					_ = d.Len()
				}
			}
		}()
	}
	wg.Wait()
	if d.Len() != workers*per {
		t.Fatalf("Len = %d, want %d", d.Len(), workers*per)
	}
	for _, ss := range subjects {
		for _, s := range ss {
			if !d.Denied(s, s, t0) {
				t.Fatalf("entry %s lost under concurrency", s)
			}
		}
	}
}
