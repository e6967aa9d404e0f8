package postgres_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rotorauth/rotor/internal/store/postgres"
	"github.com/rotorauth/rotor/internal/store/postgres/pgtest"
	"github.com/rotorauth/rotor/internal/store/storetest"
	"github.com/rotorauth/rotor/internal/tokens"
)

// TestFastPathReadsTheClockAfterThePoolWait: with every pool connection
// busy, a rotation waits for one; the instant it stamps (rotated_at) is read
// after the wait, so a concurrent loser never sees the winner's rotation "in
// its future" and a wait never shortens the grace window.
func TestFastPathReadsTheClockAfterThePoolWait(t *testing.T) {
	pgtest.Require(t, db)
	ctx := context.Background()
	sep := "?"
	if strings.Contains(db.URL, "?") {
		sep = "&"
	}
	s, err := postgres.Open(ctx, db.URL+sep+"pool_max_conns=1")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(ctx, "up", nil); err != nil {
		t.Fatal(err)
	}
	f := storetest.NewFixture(t, s)
	t0 := f.MustLogin(f.MustUser())
	busy, err := s.Pool().Acquire(ctx) // the only connection
	if err != nil {
		t.Fatal(err)
	}
	var released, read atomic.Int64
	done := make(chan error, 1)
	go func() {
		codec := storetest.Codec(t)
		p := storetest.Parse(t, t0.RefreshToken)
		_, ok, err := s.RotateActive(ctx, tokens.ActiveRotation{SessionID: p.SessionID, Generation: p.Generation, IssuedAt: p.IssuedAt,
			VerifierHash: codec.VerifierHash(p), SuccessorHash: codec.SuccessorSecret(p).Hash, RefreshTTL: time.Hour,
			Now: func() time.Time {
				read.Store(time.Now().UnixNano())
				return f.Clock.Now()
			}})
		if err == nil && !ok {
			t.Error("the active token did not rotate")
		}
		done <- err
	}()
	time.Sleep(200 * time.Millisecond)
	released.Store(time.Now().UnixNano())
	busy.Release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if read.Load() < released.Load() {
		t.Fatalf("the clock was read %v before the pool wait ended", time.Duration(released.Load()-read.Load()))
	}
}
