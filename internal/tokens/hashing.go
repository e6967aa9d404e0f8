package tokens

import (
	"context"
	"fmt"
	"runtime"
)

// ErrBusy is a password hash that could not start before its caller gave
// up: every hashing slot was taken. It Is ErrUnavailable (503, retry).
var ErrBusy = fmt.Errorf("%w: the server is busy hashing passwords; retry shortly", ErrUnavailable)

// DefaultHashSlots is how many passwords are hashed at once unless
// configured: two per CPU. An argon2id hash with OWASP parameters holds
// 19 MiB while it runs, so this bounds hashing memory at about
// 38 MiB × GOMAXPROCS, whatever the request rate.
func DefaultHashSlots() int { return 2 * runtime.GOMAXPROCS(0) }

// hashGate is the one way the Service reaches its PasswordHasher: every
// hash and verification (sign-up, admin creation, bootstrap, login, the
// unknown-email equalizer, password change) takes one of a fixed number of
// slots, waiting for one until its context ends.
type hashGate struct {
	h     PasswordHasher
	slots chan struct{}
}

func newHashGate(h PasswordHasher, n int) hashGate {
	if n <= 0 {
		n = DefaultHashSlots()
	}
	return hashGate{h: h, slots: make(chan struct{}, n)}
}

func (g hashGate) acquire(ctx context.Context) error {
	select {
	case g.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ErrBusy
	}
}

func (g hashGate) release() { <-g.slots }

// Hash hashes pw in a slot.
func (g hashGate) Hash(ctx context.Context, pw string) (string, error) {
	if err := g.acquire(ctx); err != nil {
		return "", err
	}
	defer g.release()
	return g.h.Hash(pw)
}

// Verify checks pw against encoded in a slot.
func (g hashGate) Verify(ctx context.Context, encoded, pw string) (bool, error) {
	if err := g.acquire(ctx); err != nil {
		return false, err
	}
	defer g.release()
	return g.h.Verify(encoded, pw)
}
