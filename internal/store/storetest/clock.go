package storetest

// Race tests under the real, advancing clock (SPEC §2.9): a frozen clock
// hides the orderings that matter, such as a caller that read the clock
// before another caller's rotation and took the lock after it.

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/rotorauth/rotor/internal/tokens"
)

func clockTests() []namedTest {
	return []namedTest{
		{"race (real clock): 2, 8 and 50 concurrent presentations, 100 rounds each, no false reuse", testRealClockRaces},
		{"race (real clock, instances with skewed clocks): 2, 8 and 50 concurrent presentations, 100 rounds each", testSkewedClockRaces},
		{"clock: a replay read by an instance whose clock is behind the rotation is not reuse", testNegativeElapsed},
		{"clock: a replay read by a clock far behind the rotation changes nothing", testSkewBeyondTolerance},
	}
}

// namedTest is one case of the suite.
type namedTest struct {
	name string
	fn   func(t *testing.T, store tokens.Store)
}

// WithNow sets the fixture's clock, such as time.Now.
func WithNow(now func() time.Time) Option { return func(c *tokens.Config) { c.Now = now } }

// Instance returns another Service on the same store whose clock is the
// real clock plus offset: an instance of the same deployment whose clock is
// off by offset.
func (f *Fixture) Instance(offset time.Duration) *Fixture {
	cfg := f.Cfg
	cfg.Now = func() time.Time { return time.Now().Add(offset) }
	svc, err := tokens.NewService(f.Store, FastPasswords, cfg)
	if err != nil {
		f.T.Fatalf("NewService: %v", err)
	}
	return &Fixture{T: f.T, Store: f.Store, Svc: svc, Clock: f.Clock, Cfg: cfg}
}

func testRealClockRaces(t *testing.T, store tokens.Store) {
	for _, n := range []int{2, 8, 50} {
		t.Run(fmt.Sprintf("%d callers", n), func(t *testing.T) {
			f := NewFixture(t, store, WithNow(time.Now))
			raceRounds(t, f, []*Fixture{f}, n, 100)
		})
	}
}

func testSkewedClockRaces(t *testing.T, store tokens.Store) {
	for _, n := range []int{2, 8, 50} {
		t.Run(fmt.Sprintf("%d callers", n), func(t *testing.T) {
			f := NewFixture(t, store, WithNow(time.Now))
			// Every caller is its own instance, its clock off by up to
			// half the tolerated skew either way: two instances differ by
			// at most MaxClockSkew.
			instances := make([]*Fixture, n)
			for i := range instances {
				off := time.Duration(rand.Int64N(int64(tokens.MaxClockSkew))) - tokens.MaxClockSkew/2 // #nosec G404 -- simulated timing and load, not a secret
				instances[i] = f.Instance(off)
			}
			raceRounds(t, f, instances, n, 100)
		})
	}
}

// raceRounds presents one token from n goroutines at once (caller i through
// instances[i%len]) for the given number of rounds, each round presenting
// the successor the last one agreed on: every caller must get the same
// successor, and the session must stay live with the chain presented ->
// successor.
func raceRounds(t *testing.T, f *Fixture, instances []*Fixture, n, rounds int) {
	t.Helper()
	t0 := f.MustLogin(f.MustUser())
	rt := t0.RefreshToken
	for round := 0; round < rounds; round++ {
		results, errs := presentAcross(instances, rt, n)
		for i := range results {
			if errs[i] != nil {
				s := f.Session(t0.SessionID)
				t.Fatalf("round %d caller %d: %v (session revoked %v as %q, rotated at %v)",
					round, i, errs[i], s.RevokedAt, s.RevokedReason, s.Chain.RotatedAt)
			}
			if results[i].RefreshToken != results[0].RefreshToken {
				t.Fatalf("round %d: caller %d got a different successor: more than one rotation", round, i)
			}
		}
		s := f.Session(t0.SessionID)
		if s.RevokedAt != nil {
			t.Fatalf("round %d: concurrent presentations revoked the session (%s)", round, s.RevokedReason)
		}
		if !bytes.Equal(s.Chain.PrevSelector, Selector(t, rt)) || !bytes.Equal(s.Chain.ActiveSelector, Selector(t, results[0].RefreshToken)) {
			t.Fatalf("round %d: the chain is not exactly presented -> successor", round)
		}
		for _, inst := range instances[:min(len(instances), 3)] {
			inst.MustAuthenticate(results[0].AccessToken)
		}
		rt = results[0].RefreshToken
	}
	f.MustRefresh(rt)
}

// presentAcross presents rt from n goroutines released by one barrier,
// caller i through instances[i%len(instances)].
func presentAcross(instances []*Fixture, rt string, n int) ([]tokens.TokenPair, []error) {
	results := make([]tokens.TokenPair, n)
	errs := make([]error, n)
	release := make(chan struct{})
	done := make(chan struct{}, n)
	for i := 0; i < n; i++ {
		go func() {
			defer func() { done <- struct{}{} }()
			<-release
			results[i], errs[i] = instances[i%len(instances)].Refresh(rt)
		}()
	}
	close(release)
	for i := 0; i < n; i++ {
		<-done
	}
	return results, errs
}

// testNegativeElapsed: instance A, whose clock is ahead, rotates; instance
// B, whose clock is behind by less than MaxClockSkew, is presented the
// rotated token at once: elapsed is negative, which is a grace replay, never
// reuse.
func testNegativeElapsed(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store, WithNow(time.Now))
	ahead, behind := f.Instance(tokens.MaxClockSkew/2), f.Instance(-tokens.MaxClockSkew/2+time.Millisecond)
	t0 := ahead.MustLogin(ahead.MustUser())
	t1 := ahead.MustRefresh(t0.RefreshToken)
	replay, err := behind.Refresh(t0.RefreshToken)
	if err != nil {
		t.Fatalf("replay through an instance %v behind: %v", tokens.MaxClockSkew-time.Millisecond, err)
	}
	if replay.RefreshToken != t1.RefreshToken {
		t.Fatal("the replay got a different successor")
	}
	if s := f.Session(t0.SessionID); s.RevokedAt != nil {
		t.Fatalf("negative elapsed time revoked the session as %q", s.RevokedReason)
	}
	behind.MustRefresh(t1.RefreshToken)
}

// testSkewBeyondTolerance: an instance whose clock is further behind than
// MaxClockSkew refuses the replay as unavailable and changes nothing; the
// session lives on.
func testSkewBeyondTolerance(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store, WithNow(time.Now))
	far := f.Instance(-tokens.MaxClockSkew - time.Second)
	t0 := f.MustLogin(f.MustUser())
	t1 := f.MustRefresh(t0.RefreshToken)
	if _, err := far.Refresh(t0.RefreshToken); !errors.Is(err, tokens.ErrUnavailable) || errors.Is(err, tokens.ErrInvalidGrant) {
		t.Fatalf("replay through a clock %v behind: %v, want unavailable", tokens.MaxClockSkew+time.Second, err)
	}
	if s := f.Session(t0.SessionID); s.RevokedAt != nil {
		t.Fatalf("skew beyond the tolerance revoked the session as %q", s.RevokedReason)
	}
	replay := f.MustRefresh(t0.RefreshToken)
	if replay.RefreshToken != t1.RefreshToken {
		t.Fatal("the replay got a different successor")
	}
}
