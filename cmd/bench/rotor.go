package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
)

// Concurrency of each phase (SPEC §9 names c=32 for /refresh, /me and
// /introspect; logins are CPU-bound on the password hash).
var (
	refreshConcs = []int{1, 8, 32}
	checkConc    = 32
	loginConc    = 8
)

// benchUser is a user the benchmark created, with its one session: refresh
// is the token to present next, access the newest access token.
type benchUser struct {
	email, password string
	refresh, access string
}

// randHex returns n random bytes in hex.
func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// createUsers signs up n users and logs each in once, a few at a time (each
// sign-up and login is a password hash).
func createUsers(ctx context.Context, c *client, n int) ([]*benchUser, error) {
	run := randHex(4)
	users := make([]*benchUser, n)
	errs := make([]error, n)
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			u := &benchUser{email: fmt.Sprintf("bench-%s-%d@example.com", run, i), password: "pw-" + randHex(12)}
			if errs[i] = c.signup(ctx, u.email, u.password); errs[i] != nil {
				return
			}
			t, err := c.login(ctx, u.email, u.password)
			u.refresh, u.access, errs[i] = t.RefreshToken, t.AccessToken, err
			users[i] = u
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("creating users: %w", err)
		}
	}
	return users, nil
}

// runRotor drives every Rotor phase and returns one result per phase. With
// a floor, each /refresh phase is followed by the floor's at the same
// concurrency (interleaved, so both see the same machine).
func runRotor(ctx context.Context, o options, base string, fl *floor) ([]result, error) {
	if !(o.want("refresh") || o.want("me") || o.want("introspect") || o.want("token")) {
		return floorPhases(ctx, o, fl, nil)
	}
	maxConc := max(checkConc, loginConc, refreshConcs[len(refreshConcs)-1])
	c := newClient(base, maxConc)
	defer c.close()
	admin, err := c.login(ctx, o.adminEmail, o.adminPassword)
	if err != nil {
		return nil, fmt.Errorf("admin login (the server needs LOGIN_RATE_LIMIT=0 and this admin): %w", err)
	}
	users, err := createUsers(ctx, c, maxConc)
	if err != nil {
		return nil, err
	}
	var out []result
	for _, n := range refreshConcs {
		if o.want("refresh") && ctx.Err() == nil {
			out = append(out, refreshPhase(ctx, c, users[:n], o))
		}
		if out, err = floorPhases(ctx, o, fl, out, n); err != nil {
			return out, err
		}
	}
	if o.want("me") && ctx.Err() == nil {
		out = append(out, runPhase(ctx, o, "GET /me", checkConc, func(ctx context.Context, w int) error {
			return c.me(ctx, users[w].access)
		}))
	}
	if o.want("introspect") && ctx.Err() == nil {
		bodies := make([][]byte, checkConc)
		for i := range bodies {
			bodies[i] = jsonBody(map[string]string{"token": users[i%len(users)].access})
		}
		out = append(out, runPhase(ctx, o, "POST /introspect", checkConc, func(ctx context.Context, w int) error {
			return c.introspect(ctx, admin.AccessToken, bodies[w])
		}))
	}
	if o.want("token") && ctx.Err() == nil {
		next := make([]int, loginConc)
		out = append(out, runPhase(ctx, o, "POST /token", loginConc, func(ctx context.Context, w int) error {
			u := users[(w+next[w]*loginConc)%len(users)]
			next[w]++
			_, err := c.login(ctx, u.email, u.password)
			return err
		}))
	}
	return out, ctx.Err()
}

// refreshPhase makes each worker rotate its own user's chain: every request
// presents the refresh token the previous one returned (the sessions
// table's writes are reported when it is the started server's). A failure is
// returned (runPhase counts it; failed requests are not timed) after the
// worker has logged in again to start a new chain.
func refreshPhase(ctx context.Context, c *client, users []*benchUser, o options) result {
	if o.dbName != "" {
		o.table = "sessions" // the started server's database
	}
	return runPhase(ctx, o, "POST /refresh", len(users), func(ctx context.Context, w int) error {
		u := users[w]
		t, err := c.refresh(ctx, u.refresh)
		if err != nil {
			if t, lerr := c.login(ctx, u.email, u.password); lerr == nil {
				u.refresh, u.access = t.RefreshToken, t.AccessToken
			}
			return err
		}
		u.refresh, u.access = t.RefreshToken, t.AccessToken
		return nil
	})
}

// floorPhases appends the floor's /refresh phase at each of concs (every
// refresh concurrency when none is given); nothing without a floor.
func floorPhases(ctx context.Context, o options, fl *floor, out []result, concs ...int) ([]result, error) {
	if fl == nil {
		return out, nil
	}
	if len(concs) == 0 {
		concs = refreshConcs
	}
	for _, n := range concs {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		r, err := fl.phase(ctx, o, n)
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}
