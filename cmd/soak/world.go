package main

import (
	"context"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// world is the whole simulation: both instances, the users, their browsers
// and every session the browsers ever held.
type world struct {
	o        options
	cluster  *cluster
	inst     [2]*instance
	stats    *stats
	users    []*user
	browsers []*browser
	runID    string

	start, deadline, end time.Time

	adminMu       sync.Mutex
	adminAccess   string   // guarded by adminMu
	adminSessions []string // guarded by adminMu

	mu       sync.Mutex
	sessions []*session      // every session any browser held, in login order
	attacked map[string]bool // sessions whose grandparent token was answered with reuse detection

	spots sync.WaitGroup // spot checks still polling
}

func newWorld(o options, c *cluster) *world {
	conns := o.sessions*o.tabs + 16
	w := &world{o: o, cluster: c, stats: newStats(), attacked: map[string]bool{}, runID: crand.Text()[:6]}
	for i, p := range c.procs {
		w.inst[i] = newInstance(p, conns)
	}
	return w
}

// pick returns instance A or B at random.
func (w *world) pick() *instance { return w.inst[rand.IntN(len(w.inst))] } // #nosec G404 -- simulated timing and load, not a secret

// running reports whether the browsers should go on.
func (w *world) running(ctx context.Context) bool {
	return ctx.Err() == nil && time.Now().Before(w.deadline)
}

// setup logs the admin in, signs the users up and logs every browser in.
func (w *world) setup(ctx context.Context) error {
	if err := w.adminLogin(ctx); err != nil {
		return err
	}
	w.users = make([]*user, w.o.users)
	err := parallel(4, len(w.users), func(i int) error {
		u := &user{email: fmt.Sprintf("soak-%s-%d@example.com", w.runID, i), password: newPassword()}
		r, err := w.call(ctx, w.pick(), "POST /users", http.MethodPost, "/users", "",
			map[string]string{"email": u.email, "password": u.password})
		if err != nil || r.status != http.StatusCreated {
			return fmt.Errorf("sign up user %d: %v %v", i, r, err)
		}
		var created struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(r.body, &created); err != nil || created.ID == "" {
			return fmt.Errorf("sign up user %d: no id in the answer", i)
		}
		u.id = created.ID
		w.users[i] = u
		return nil
	})
	if err != nil {
		return err
	}
	// Every user gets a browser, the rest go to random users: 1–2 each
	// with the defaults.
	order := rand.Perm(len(w.users))
	for i := 0; i < w.o.sessions; i++ {
		u := w.users[i%len(w.users)]
		if i >= len(w.users) {
			u = w.users[order[(i-len(w.users))%len(order)]]
		}
		b := &browser{n: i, user: u, burst: make(chan struct{})}
		u.browsers = append(u.browsers, b)
		w.browsers = append(w.browsers, b)
	}
	if err := parallel(8, len(w.browsers), func(i int) error {
		b := w.browsers[i]
		w.relogin(ctx, b, nil)
		if b.current() == nil {
			return fmt.Errorf("browser %d could not log in", i)
		}
		return nil
	}); err != nil {
		return err
	}
	// A few browsers present a grandparent token once, at a random moment
	// between 15 % and 75 % of the run.
	if n := int(float64(len(w.browsers))*w.o.attack + 0.5); w.o.attack > 0 {
		for _, i := range rand.Perm(len(w.browsers))[:max(1, min(n, len(w.browsers)))] {
			w.browsers[i].attackAt = 0.15 + 0.6*rand.Float64() // #nosec G404 -- simulated timing and load, not a secret
		}
	}
	return nil
}

// adminLogin logs the bootstrap admin in (again).
func (w *world) adminLogin(ctx context.Context) error {
	r, err := w.call(ctx, w.pick(), "POST /token", http.MethodPost, "/token", "",
		map[string]string{"username": w.cluster.adminEmail, "password": w.cluster.adminPassword})
	if err != nil || r.status != http.StatusOK {
		return fmt.Errorf("admin login: %v %v", r, err)
	}
	p, err := r.pair()
	if err != nil {
		return fmt.Errorf("admin login: %w", err)
	}
	w.adminMu.Lock()
	w.adminAccess = p.AccessToken
	w.adminSessions = append(w.adminSessions, p.SessionID)
	w.adminMu.Unlock()
	return nil
}

// admin sends an admin request, logging the admin in again once if its
// access token has expired.
func (w *world) admin(ctx context.Context, endpoint, method, path string) (reply, error) {
	for attempt := 0; ; attempt++ {
		w.adminMu.Lock()
		access := w.adminAccess
		w.adminMu.Unlock()
		r, err := w.call(ctx, w.pick(), endpoint, method, path, access, nil)
		if err != nil || r.status != http.StatusUnauthorized || attempt > 0 {
			return r, err
		}
		if err := w.adminLogin(ctx); err != nil {
			return r, err
		}
	}
}

// simulate runs every browser's tabs, its conductor (bursts and the
// attack) and the racing events until the deadline, then waits for
// everything to settle: in-flight requests, retries of lost replies and
// spot checks. It gives up two minutes after the deadline.
func (w *world) simulate(ctx context.Context) error {
	w.start = time.Now()
	w.deadline = w.start.Add(w.o.duration)
	var wg sync.WaitGroup
	for _, b := range w.browsers {
		for range w.o.tabs {
			wg.Go(func() { w.tab(ctx, b) })
		}
		wg.Go(func() { w.conduct(ctx, b) })
	}
	wg.Go(func() { w.events(ctx) })
	done := make(chan struct{})
	go func() {
		wg.Wait()
		w.spots.Wait()
		close(done)
	}()
	select {
	case <-done:
		w.end = time.Now()
		return nil
	case <-time.After(w.o.duration + 2*time.Minute):
		return errors.New("the simulation did not stop within 2 minutes of its deadline")
	}
}

// register records a new session.
func (w *world) register(s *session) {
	w.mu.Lock()
	w.sessions = append(w.sessions, s)
	w.mu.Unlock()
}

// parallel runs fn(0..n-1) on up to conc goroutines and returns the first
// error.
func parallel(conc, n int, fn func(i int) error) error {
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	next := make(chan int)
	for range conc {
		wg.Go(func() {
			for i := range next {
				if err := fn(i); err != nil {
					once.Do(func() { first = err })
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// newPassword returns a fresh random password.
func newPassword() string { return "soak-" + crand.Text() }
