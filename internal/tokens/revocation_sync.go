package tokens

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// MaxRevocationLag is the contract's bound (SPEC: a revocation is refused
// everywhere within a second): an instance whose latest completed
// revocation sync started longer ago than this refuses access-token checks
// with ErrUnavailable, since a revocation committed elsewhere since then
// could be missing from its denylist.
const MaxRevocationLag = time.Second

// revocationFreshness is how current an instance's denylist is. A sync
// that started at T read a snapshot taken after T, so once it completes the
// denylist holds every revocation committed before T: freshness is the
// START of the latest successful sync, whatever its kind or duration.
type revocationFreshness struct {
	// maxLag is the enforced bound in nanoseconds; 0 means not enforced
	// (a store no other instance writes to: nothing can be missed).
	maxLag atomic.Int64
	// synced is the start of the latest successful sync; nil before the
	// first. It only moves forward, so concurrent syncs (incremental and
	// full) may complete in any order.
	synced atomic.Pointer[time.Time]
}

func (f *revocationFreshness) record(start time.Time) {
	for {
		old := f.synced.Load()
		if old != nil && !start.After(*old) {
			return
		}
		if f.synced.CompareAndSwap(old, &start) {
			return
		}
	}
}

// RequireFreshRevocations makes Authenticate refuse every access token with
// ErrUnavailable while no sync that started within maxLag has completed (or
// none has completed yet). Call it for a store shared with other instances
// (PostgreSQL), after the first sync, and keep syncing well within maxLag:
// SyncRevocations on every notice and on a short period. maxLag <= 0
// turns the rule off.
func (s *Service) RequireFreshRevocations(maxLag time.Duration) {
	s.revFresh.maxLag.Store(int64(max(maxLag, 0)))
}

// RevocationsSyncedAt returns the start of the latest successful
// revocation sync: the denylist holds every revocation committed before
// it. ok is false before the first sync.
func (s *Service) RevocationsSyncedAt() (at time.Time, ok bool) {
	p := s.revFresh.synced.Load()
	if p == nil {
		return time.Time{}, false
	}
	return *p, true
}

// RevocationLag returns how far behind the store the denylist may be: the
// time since the start of the latest successful sync. ok is false before
// the first sync.
func (s *Service) RevocationLag() (lag time.Duration, ok bool) {
	at, ok := s.RevocationsSyncedAt()
	if !ok {
		return 0, false
	}
	return s.now().Sub(at), true
}

// RevocationsStale reports whether Authenticate refuses tokens right now
// because the denylist may be missing revocations (always false unless
// RequireFreshRevocations is in force).
func (s *Service) RevocationsStale() bool { return s.staleRevocations(s.now()) != nil }

// staleRevocations is the freshness rule at now.
func (s *Service) staleRevocations(now time.Time) error {
	maxLag := time.Duration(s.revFresh.maxLag.Load())
	if maxLag <= 0 {
		return nil
	}
	at := s.revFresh.synced.Load()
	if at == nil || now.Sub(*at) > maxLag {
		return fmt.Errorf("%w: revocations cannot be checked right now", ErrUnavailable)
	}
	return nil
}

// timedSync runs one sync from since and, if it succeeds, records its start
// as the denylist's freshness.
func (s *Service) timedSync(ctx context.Context, since SyncCursor) error {
	start := s.now()
	if err := s.syncFrom(ctx, since); err != nil {
		return err
	}
	s.revFresh.record(start)
	return nil
}

// SyncRevocations reads the revocations committed since the denylist's
// cursor into the denylist. Call it whenever a revocation notice arrives,
// and periodically (well within MaxRevocationLag): each success renews the
// denylist's freshness.
func (s *Service) SyncRevocations(ctx context.Context) error {
	return s.timedSync(ctx, s.deny.Cursor())
}

// FullSyncRevocations reloads every unexpired revocation and drops expired
// entries from memory: at start, and periodically in case a notice was
// missed. (Incremental syncs leave purging to it: Denied already ignores an
// expired entry, so sweeping the map on every notice would be wasted work.)
func (s *Service) FullSyncRevocations(ctx context.Context) error {
	if err := s.timedSync(ctx, SyncCursor{}); err != nil {
		return err
	}
	s.deny.Purge(s.now())
	return nil
}

func (s *Service) syncFrom(ctx context.Context, since SyncCursor) error {
	rs, next, err := s.store.Revocations(ctx, since, s.now())
	if err != nil {
		return err
	}
	s.deny.Add(rs...)
	s.deny.SetCursor(next)
	return nil
}
