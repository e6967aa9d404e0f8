package storetest

// Bounded password hashing: every path that hashes or verifies a password
// (sign-up and admin creation, bootstrap, login with a known or an unknown
// email, password change) shares the Service's hashing slots.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rotorauth/rotor/internal/tokens"
)

// countingPasswords records the most hashes it ever ran at once.
type countingPasswords struct {
	tokens.PasswordHasher
	now, peak atomic.Int32
}

func (c *countingPasswords) enter() func() {
	n := c.now.Add(1)
	for p := c.peak.Load(); n > p && !c.peak.CompareAndSwap(p, n); p = c.peak.Load() {
	}
	time.Sleep(2 * time.Millisecond) // make overlaps likely
	return func() { c.now.Add(-1) }
}

func (c *countingPasswords) Hash(pw string) (string, error) {
	defer c.enter()()
	return c.PasswordHasher.Hash(pw)
}

func (c *countingPasswords) Verify(encoded, pw string) (bool, error) {
	defer c.enter()()
	return c.PasswordHasher.Verify(encoded, pw)
}

func testHashingBounded(t *testing.T, store tokens.Store) {
	const slots = 3
	f := NewFixture(t, store)
	cp := &countingPasswords{PasswordHasher: FastPasswords}
	cfg := f.Cfg
	cfg.HashSlots = slots
	svc, err := tokens.NewService(store, cp, cfg)
	if err != nil {
		t.Fatal(err)
	}
	u := f.MustUser()
	p := f.MustLogin(u)
	paths := []func(i int) error{
		func(int) error { _, err := svc.Signup(ctx, Email(), Password, []string{"admin"}); return err },
		func(int) error { _, err := svc.EnsureUser(ctx, Email(), Password, nil); return err },
		func(int) error { _, err := svc.Login(ctx, u.Email, Password, tokens.ClientInfo{}); return err },
		func(int) error {
			_, err := svc.Login(ctx, Email(), Password, tokens.ClientInfo{})
			if errors.Is(err, tokens.ErrInvalidGrant) {
				return nil
			}
			return err
		},
		func(i int) error {
			err := svc.ChangePassword(ctx, p.Principal, "wrong password", fmt.Sprintf("new password %d", i), tokens.ClientInfo{})
			if errors.Is(err, tokens.ErrInvalidGrant) {
				return nil
			}
			return err
		},
	}
	var wg sync.WaitGroup
	for i := 0; i < 60; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := paths[i%len(paths)](i); err != nil {
				t.Errorf("path %d: %v", i%len(paths), err)
			}
		}()
	}
	wg.Wait()
	if peak := cp.peak.Load(); peak > slots {
		t.Fatalf("%d passwords hashed at once with %d slots", peak, slots)
	}
	// With every slot held, a caller whose context ends first is told to
	// retry (503), never refused as bad credentials.
	gate := make(chan struct{})
	bp := &blockingPasswords{PasswordHasher: FastPasswords, gate: gate}
	svc2, err := tokens.NewService(store, bp, cfg)
	if err != nil {
		t.Fatal(err)
	}
	bp.block.Store(true)
	var held sync.WaitGroup
	for i := 0; i < slots; i++ {
		held.Add(1)
		go func() {
			defer held.Done()
			_, _ = svc2.Signup(ctx, Email(), Password, nil)
		}()
	}
	for bp.waiting.Load() < slots {
		time.Sleep(time.Millisecond)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err = svc2.Login(short, u.Email, Password, tokens.ClientInfo{})
	close(gate)
	held.Wait()
	if !errors.Is(err, tokens.ErrUnavailable) || errors.Is(err, tokens.ErrInvalidGrant) {
		t.Fatalf("login with every hashing slot taken: %v, want unavailable", err)
	}
}

// blockingPasswords holds every Hash until gate closes, while block is set.
type blockingPasswords struct {
	tokens.PasswordHasher
	gate    chan struct{}
	block   atomic.Bool
	waiting atomic.Int32
}

func (b *blockingPasswords) Hash(pw string) (string, error) {
	if b.block.Load() {
		b.waiting.Add(1)
		<-b.gate
	}
	return b.PasswordHasher.Hash(pw)
}
