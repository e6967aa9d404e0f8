package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// Lock order: browser.loginMu, then user.mu, then browser.mu, then
// session.mu. Tabs take browser.mu and session.mu one at a time and never
// hold one across a request.

// user is an account with one or more browsers.
type user struct {
	id, email string
	browsers  []*browser // fixed after setup

	// mu serializes the user's logins with every revocation the
	// simulation makes of the user's sessions, so the set of sessions a
	// password change or a revoke-all ends is known exactly.
	mu       sync.Mutex
	password string     // guarded by mu
	sessions []*session // every session of the user, guarded by mu
}

// browser is one simulated browser: tabs sharing a cookie jar, which holds
// one session at a time.
type browser struct {
	n        int
	user     *user
	attackAt float64 // when to present a grandparent token, as a fraction of the run; 0: never

	loginMu sync.Mutex // one re-login at a time

	mu    sync.Mutex
	cur   *session      // guarded by mu
	burst chan struct{} // closed to wake every tab at once; guarded by mu
}

// current returns the browser's session (nil before its first login).
func (b *browser) current() *session {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cur
}

// fireBurst wakes every pausing tab at the same instant.
func (b *browser) fireBurst() {
	b.mu.Lock()
	close(b.burst)
	b.burst = make(chan struct{})
	b.mu.Unlock()
}

// sessionState is where a session stands in the simulation's eyes.
type sessionState int

const (
	live     sessionState = iota
	revoking              // a revocation of it is on its way: refusals are expected
	ended                 // the server confirmed the revocation
)

// session is one session (token family) and the browser's cookie jar for
// it. The jar only moves forward: depth counts rotations since login, and a
// reply replaces the jar's token only with a deeper one.
type session struct {
	id      string
	user    *user
	browser *browser

	mu        sync.Mutex
	cond      sync.Cond         // signalled when a request finishes or a freeze ends; L is &mu
	token     string            // the jar: the newest refresh token
	depth     int               // rotations from the login's token to token
	since     time.Time         // when token entered the jar
	ancestors [2]string         // the tokens one and two rotations before token ("" if none)
	access    string            // the newest access token
	succ      map[string]string // presented token → the successor it was answered with
	inflight  map[int]int       // depth → refreshes in flight presenting the token of that depth
	frozen    int               // lost replies awaiting their retry: the jar does not move until none is left

	state      sessionState
	reason     string // what ended it: logout, password_changed, admin, reuse_detected
	excused    int    // refusals seen while revoking, counted as expected
	refused    bool   // a refresh was refused: the browser gave the session up
	unexpected string // why, when the simulation had not ended it
}

func newSession(b *browser, p tokenPair) *session {
	s := &session{id: p.SessionID, user: b.user, browser: b, token: p.RefreshToken, access: p.AccessToken,
		since: time.Now(), succ: map[string]string{}, inflight: map[int]int{}}
	s.cond.L = &s.mu
	return s
}

// over reports whether the browser is done with the session. mu held.
func (s *session) over() bool { return s.state == ended || s.refused }

// olderInFlight reports whether a request presenting a token older than
// the jar's is still in flight. mu held. A tab waits for those before it
// presents the jar's token, so a slow request can never find itself two
// rotations behind (which would be true reuse caused by the load
// generator, not by the server).
func (s *session) olderInFlight() bool {
	for d, n := range s.inflight {
		if d < s.depth && n > 0 {
			return true
		}
	}
	return false
}

// finished ends the in-flight request that presented depth d. mu held.
func (s *session) finished(d int) {
	if s.inflight[d]--; s.inflight[d] <= 0 {
		delete(s.inflight, d)
	}
	s.cond.Broadcast()
}

// tab is one browser tab: it refreshes at random moments until the
// deadline, and logs in again when the session has ended.
func (w *world) tab(ctx context.Context, b *browser) {
	for w.running(ctx) {
		w.pause(ctx, b)
		if !w.running(ctx) {
			return
		}
		s := b.current()
		s.mu.Lock()
		over := s.over()
		s.mu.Unlock()
		if over {
			w.relogin(ctx, b, s)
			continue
		}
		if lr := w.refresh(ctx, s); lr != nil {
			w.retryLost(ctx, s, *lr)
		}
	}
}

// pause sleeps 0–300 ms, or less if the browser fires a burst.
func (w *world) pause(ctx context.Context, b *browser) {
	b.mu.Lock()
	burst := b.burst
	b.mu.Unlock()
	t := time.NewTimer(rand.N(300 * time.Millisecond)) // #nosec G404 -- simulated timing and load, not a secret
	defer t.Stop()
	select {
	case <-t.C:
	case <-burst:
		w.stats.bursts.Add(1)
	case <-ctx.Done():
	}
}

// conduct fires the browser's bursts every 0.3–2.5 s and makes its attack
// when it is due.
func (w *world) conduct(ctx context.Context, b *browser) {
	attacked := b.attackAt == 0
	for w.running(ctx) {
		sleep(ctx, 300*time.Millisecond+rand.N(2200*time.Millisecond)) // #nosec G404 -- simulated timing and load, not a secret
		if !w.running(ctx) {
			return
		}
		if !attacked && time.Since(w.start) >= time.Duration(b.attackAt*float64(w.o.duration)) {
			attacked = w.attack(ctx, b)
		}
		b.fireBurst()
	}
}

// lostReply is a refresh whose answer the tab pretends it never got.
type lostReply struct {
	token string // presented
	depth int
	want  string // the successor the server did send
}

// Retries of lost replies come 50 ms to 2 s later (at most a quarter of
// the grace window).
const (
	minRetryDelay = 50 * time.Millisecond
	maxRetryDelay = 2 * time.Second
)

func (w *world) maxRetryDelay() time.Duration {
	return min(maxRetryDelay, w.o.effectiveGrace()/4)
}

// refresh presents the jar's token once, as a tab does: it reads the jar
// and sends without holding the jar's lock, so tabs present the same token
// concurrently. It returns a lost reply to retry, if it lost this one.
func (w *world) refresh(ctx context.Context, s *session) *lostReply {
	s.mu.Lock()
	for s.olderInFlight() {
		s.cond.Wait()
	}
	if s.over() {
		s.mu.Unlock()
		return nil
	}
	tok, d := s.token, s.depth
	s.inflight[d]++
	s.mu.Unlock()

	in := w.pick()
	r, err := w.call(ctx, in, "POST /refresh", http.MethodPost, "/refresh", "", map[string]string{"refresh_token": tok})

	s.mu.Lock()
	defer s.mu.Unlock()
	s.finished(d)
	switch {
	case err != nil:
		w.stats.refresh("network error")
	case r.status == http.StatusOK:
		p, perr := r.pair()
		if perr != nil {
			w.unexplained("refresh of session %s on %s: %v", s.id, in.name, perr)
			w.stats.refresh("200 malformed")
			return nil
		}
		// Lose the reply? Only when the retry is sure to be a grace
		// replay: the session is live, the jar still holds the presented
		// token (frozen from now on, so nobody presents its successor
		// until the retry is done), and the retry will come in the first
		// half of the window that opened at the earliest when the token
		// entered the jar; the other half is headroom for slow answers.
		lose := rand.Float64() < w.o.lost // #nosec G404 -- simulated timing and load, not a secret
		if s.state == live && s.depth == d && time.Since(s.since)+w.maxRetryDelay() < w.o.effectiveGrace()/2 && lose {
			s.frozen++
			w.stats.refresh("200 (reply lost, retried)")
			return &lostReply{token: tok, depth: d, want: p.RefreshToken}
		}
		w.stats.refresh("200")
		w.accept(s, in, tok, d, p)
	case r.invalidGrant():
		w.refusal(s, in, d, r, "refresh")
	default:
		w.stats.refresh(r.String())
		if r.status < 500 {
			w.unexplained("refresh of session %s on %s: %s", s.id, in.name, r)
		}
	}
	return nil
}

// accept takes a successful answer to the token of depth d. mu held.
func (w *world) accept(s *session, in *instance, tok string, d int, p tokenPair) {
	if p.SessionID != s.id {
		w.stats.wrongSession.Add(1)
		w.unexplained("refresh of session %s on %s answered for session %s", s.id, in.name, p.SessionID)
	}
	if prev, ok := s.succ[tok]; !ok {
		s.succ[tok] = p.RefreshToken
	} else if prev == p.RefreshToken {
		w.stats.graceReplays.Add(1)
	} else {
		w.stats.clientTwoSucc.Add(1)
		w.stats.note("two successors", fmt.Sprintf("session %s: the token of depth %d was answered with two different successors (the second on %s)", s.id, d, in.name))
	}
	s.access = p.AccessToken
	if s.frozen == 0 && d+1 > s.depth {
		s.ancestors = [2]string{s.token, s.ancestors[0]}
		s.token, s.depth, s.since = p.RefreshToken, d+1, time.Now()
	}
}

// refusal takes an invalid_grant for the token of depth d: the browser
// gives the session up. It is expected while the simulation is ending the
// session, and unexplained otherwise. mu held.
func (w *world) refusal(s *session, in *instance, d int, r reply, what string) {
	s.refused = true
	if s.state != live {
		if s.state == revoking {
			s.excused++
		}
		w.stats.refresh(expectedRefusal)
		return
	}
	w.stats.refresh(unexpectedRefusal)
	w.stats.unexpectedGrant.Add(1)
	if s.unexpected == "" {
		s.unexpected = fmt.Sprintf("%s on %s at %s refused: %s", what, in.name, time.Now().Format("15:04:05.000"), r.desc)
	}
	w.stats.note("unexpected refusal", fmt.Sprintf("session %s, %s on %s of the token of depth %d (jar depth %d): %s",
		s.id, what, in.name, d, s.depth, r))
}

const (
	expectedRefusal   = "400 invalid_grant (expected: the simulation was ending the session)"
	unexpectedRefusal = "400 invalid_grant (UNEXPECTED: the session was live)"
)

// retryLost waits 50 ms–2 s and presents the token of the lost reply
// again, through either instance. The answer must be the same successor,
// unless the simulation ended the session meanwhile. The retry happens
// even past the deadline, so the jar is never left frozen.
func (w *world) retryLost(ctx context.Context, s *session, lr lostReply) {
	w.stats.lostRetried.Add(1)
	sleep(ctx, minRetryDelay+rand.N(w.maxRetryDelay()-minRetryDelay)) // #nosec G404 -- simulated timing and load, not a secret
	s.mu.Lock()
	s.inflight[lr.depth]++
	s.mu.Unlock()

	in := w.pick()
	r, err := w.call(ctx, in, "POST /refresh", http.MethodPost, "/refresh", "", map[string]string{"refresh_token": lr.token})

	s.mu.Lock()
	defer s.mu.Unlock()
	s.finished(lr.depth)
	s.frozen--
	switch {
	case err == nil && r.status == http.StatusOK:
		p, perr := r.pair()
		switch {
		case perr != nil:
			w.stats.retryFailed.Add(1)
			w.stats.note("retry", fmt.Sprintf("session %s: retry on %s: %v", s.id, in.name, perr))
			w.stats.refresh("200 malformed")
			return
		case p.RefreshToken == lr.want:
			w.stats.retrySame.Add(1)
			w.stats.refresh("200 (retry of a lost reply: same successor)")
		default:
			w.stats.retryMismatch.Add(1)
			w.stats.note("retry", fmt.Sprintf("session %s: the retry of a lost reply on %s got ANOTHER successor", s.id, in.name))
			w.stats.refresh("200 (retry of a lost reply: OTHER successor)")
		}
		w.accept(s, in, lr.token, lr.depth, p)
	case err == nil && r.invalidGrant():
		if s.state != live {
			w.stats.retryAfterEnd.Add(1)
		} else {
			w.stats.retryRefused.Add(1)
			w.stats.note("retry", fmt.Sprintf("session %s: the retry of a lost reply on %s was refused: %s", s.id, in.name, r))
		}
		w.refusal(s, in, lr.depth, r, "retry of a lost reply")
	default:
		w.stats.retryFailed.Add(1)
		what := fmt.Sprint(err)
		if err == nil {
			what = r.String()
			w.stats.refresh(what)
		} else {
			w.stats.refresh("network error")
		}
		w.stats.note("retry", fmt.Sprintf("session %s: the retry of a lost reply on %s failed: %s", s.id, in.name, what))
	}
}

// relogin logs the browser in again, unless another tab already replaced
// old or the run is over. With old nil it is the browser's first login.
func (w *world) relogin(ctx context.Context, b *browser, old *session) {
	b.loginMu.Lock()
	defer b.loginMu.Unlock()
	if b.current() != old || (old != nil && !w.running(ctx)) {
		return
	}
	u := b.user
	u.mu.Lock()
	defer u.mu.Unlock()
	for attempt := 0; attempt < 3 && ctx.Err() == nil; attempt++ {
		r, err := w.call(ctx, w.pick(), "POST /token", http.MethodPost, "/token", "",
			map[string]string{"username": u.email, "password": u.password})
		if err == nil && r.status == http.StatusOK {
			p, perr := r.pair()
			if perr != nil {
				w.unexplained("login of %s: %v", u.email, perr)
				break
			}
			s := newSession(b, p)
			u.sessions = append(u.sessions, s)
			w.register(s)
			b.mu.Lock()
			b.cur = s
			b.mu.Unlock()
			w.stats.logins.Add(1)
			if old != nil {
				w.stats.relogins.Add(1)
			}
			return
		}
		w.stats.loginFailed.Add(1)
		if err == nil && r.status < 500 {
			w.unexplained("login of browser %d: %s", b.n, r)
			break
		}
		sleep(ctx, 200*time.Millisecond)
	}
	// The browser keeps its ended session; its tabs try again after their
	// next pause.
}

// unexplained records an answer the simulation cannot explain.
func (w *world) unexplained(format string, args ...any) {
	w.stats.unexplained.Add(1)
	w.stats.note("unexplained", fmt.Sprintf(format, args...))
}
