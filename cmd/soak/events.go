package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"
)

// events fires racing revocations at random moments (exponential gaps of
// mean -event-every) until the deadline, each at a random browser: logouts,
// password changes, and admin revocations of one session or all of a
// user's.
func (w *world) events(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		gap := time.Duration(rand.ExpFloat64() * float64(w.o.eventEvery))
		sleep(ctx, min(gap, 5*w.o.eventEvery))
		if !w.running(ctx) {
			return
		}
		b := w.browsers[rand.IntN(len(w.browsers))] // #nosec G404 -- simulated timing and load, not a secret
		k := rand.IntN(100)                         // #nosec G404 -- simulated timing and load, not a secret
		switch {
		case k < 35:
			wg.Go(func() { w.logout(ctx, b) })
		case k < 65:
			wg.Go(func() { w.changePassword(ctx, b) })
		case k < 85:
			wg.Go(func() { w.adminRevokeSession(ctx, b) })
		default:
			wg.Go(func() { w.adminRevokeUser(ctx, b) })
		}
	}
}

// beginEnd marks the session as being revoked if it is live, and returns
// its access token; ok is false if there is nothing to revoke.
func (s *session) beginEnd() (access string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != live || s.refused {
		return "", false
	}
	s.state = revoking
	return s.access, true
}

// end records that the server confirmed the session's revocation.
func (s *session) end(reason string) {
	s.mu.Lock()
	s.state, s.reason = ended, reason
	s.mu.Unlock()
}

// abortEnd takes back beginEnd after the server refused the revocation:
// the refusals excused meanwhile were not caused by the simulation after
// all.
func (w *world) abortEnd(s *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != revoking {
		return
	}
	s.state = live
	if s.excused > 0 {
		w.stats.unexpectedGrant.Add(int64(s.excused))
		w.stats.mu.Lock()
		w.stats.refreshes[expectedRefusal] -= s.excused
		w.stats.refreshes[unexpectedRefusal] += s.excused
		w.stats.mu.Unlock()
		if s.unexpected == "" {
			s.unexpected = "refused while a revocation the server then declined was on its way"
		}
		w.stats.note("unexpected refusal", fmt.Sprintf("session %s: %d refusals while a revocation was on its way that the server declined", s.id, s.excused))
		s.excused = 0
	}
}

// liveSessions returns the user's sessions the simulation believes live,
// except one. u.mu held.
func (u *user) liveSessions(except *session) []*session {
	var out []*session
	for _, s := range u.sessions {
		s.mu.Lock()
		ok := s != except && s.state == live
		s.mu.Unlock()
		if ok {
			out = append(out, s)
		}
	}
	return out
}

// logout ends the browser's session with POST /logout and its access token.
func (w *world) logout(ctx context.Context, b *browser) {
	u := b.user
	u.mu.Lock()
	defer u.mu.Unlock()
	s := b.current()
	access, ok := s.beginEnd()
	if !ok {
		w.stats.eventSkipped.Add(1)
		return
	}
	in := w.pick()
	r, err := w.call(ctx, in, "POST /logout", http.MethodPost, "/logout", access, struct{}{})
	if err == nil && r.status == http.StatusNoContent {
		s.end("logout")
		w.stats.logouts.Add(1)
		w.spotCheck(ctx, s)
		return
	}
	w.abortEnd(s)
	w.eventFailed("logout of session %s on %s: %s", s.id, in.name, describe(r, err))
}

// changePassword changes the user's password from the browser's session,
// which must end all the user's other sessions and keep this one.
func (w *world) changePassword(ctx context.Context, b *browser) {
	u := b.user
	u.mu.Lock()
	defer u.mu.Unlock()
	s := b.current()
	s.mu.Lock()
	ok, access := s.state == live && !s.refused, s.access
	s.mu.Unlock()
	if !ok {
		w.stats.eventSkipped.Add(1)
		return
	}
	others := u.liveSessions(s)
	for _, o := range others {
		o.beginEnd()
	}
	next := newPassword()
	in := w.pick()
	r, err := w.call(ctx, in, "POST /password", http.MethodPost, "/password", access,
		map[string]string{"current_password": u.password, "new_password": next})
	if err == nil && r.status == http.StatusNoContent {
		u.password = next
		for _, o := range others {
			o.end("password_changed")
			w.spotCheck(ctx, o)
		}
		w.stats.passwords.Add(1)
		w.stats.pwEnded.Add(int64(len(others)))
		return
	}
	for _, o := range others {
		w.abortEnd(o)
	}
	w.eventFailed("password change from session %s on %s: %s", s.id, in.name, describe(r, err))
}

// adminRevokeSession ends the browser's session with DELETE
// /admin/sessions/{id}.
func (w *world) adminRevokeSession(ctx context.Context, b *browser) {
	u := b.user
	u.mu.Lock()
	defer u.mu.Unlock()
	s := b.current()
	if _, ok := s.beginEnd(); !ok {
		w.stats.eventSkipped.Add(1)
		return
	}
	r, err := w.admin(ctx, "DELETE /admin/sessions/{id}", http.MethodDelete, "/admin/sessions/"+s.id)
	if err == nil && r.status == http.StatusNoContent {
		s.end("admin")
		w.stats.adminSession.Add(1)
		w.spotCheck(ctx, s)
		return
	}
	w.abortEnd(s)
	w.eventFailed("admin revocation of session %s: %s", s.id, describe(r, err))
}

// adminRevokeUser ends all the user's sessions with DELETE
// /admin/users/{id}/sessions.
func (w *world) adminRevokeUser(ctx context.Context, b *browser) {
	u := b.user
	u.mu.Lock()
	defer u.mu.Unlock()
	all := u.liveSessions(nil)
	if len(all) == 0 {
		w.stats.eventSkipped.Add(1)
		return
	}
	for _, s := range all {
		s.beginEnd()
	}
	r, err := w.admin(ctx, "DELETE /admin/users/{id}/sessions", http.MethodDelete, "/admin/users/"+u.id+"/sessions")
	if err == nil && r.status == http.StatusOK {
		for _, s := range all {
			s.end("admin")
			w.spotCheck(ctx, s)
		}
		w.stats.adminUser.Add(1)
		w.stats.adminEnded.Add(int64(len(all)))
		return
	}
	for _, s := range all {
		w.abortEnd(s)
	}
	w.eventFailed("admin revocation of the sessions of user %s: %s", u.id, describe(r, err))
}

// attack presents the token two rotations before the jar's, which must
// revoke the session as reuse_detected even inside the grace window. It
// reports false if the browser's session cannot be attacked yet.
func (w *world) attack(ctx context.Context, b *browser) bool {
	u := b.user
	u.mu.Lock()
	defer u.mu.Unlock()
	s := b.current()
	s.mu.Lock()
	grandparent := s.ancestors[1]
	ok := s.state == live && !s.refused && grandparent != ""
	if ok {
		s.state = revoking
	}
	s.mu.Unlock()
	if !ok {
		return false
	}
	in := w.pick()
	r, err := w.call(ctx, in, "POST /refresh (attack)", http.MethodPost, "/refresh", "", map[string]string{"refresh_token": grandparent})
	switch {
	case err == nil && r.invalidGrant() && strings.Contains(r.desc, "already used"):
		w.mu.Lock()
		w.attacked[s.id] = true
		w.mu.Unlock()
		s.end("reuse_detected")
		w.stats.attacks.Add(1)
		w.spotCheck(ctx, s)
	case err == nil && r.invalidGrant():
		// Revoked already, by nothing the simulation did (it holds the
		// user's lock): not an attack, and unexplained.
		w.stats.attackMissed.Add(1)
		w.abortEnd(s)
		s.mu.Lock()
		s.refused = true
		if s.unexpected == "" {
			s.unexpected = "found already revoked by the reuse attack on " + in.name + ": " + r.desc
		}
		s.mu.Unlock()
		w.unexplained("reuse attack on session %s on %s: the session was already revoked (%s)", s.id, in.name, r.desc)
	case err == nil && r.status == http.StatusOK:
		w.abortEnd(s)
		w.stats.note("grandparent accepted", fmt.Sprintf("session %s: a token two rotations old was ACCEPTED on %s", s.id, in.name))
	default:
		w.abortEnd(s)
		w.unexplained("reuse attack on session %s on %s: %s", s.id, in.name, describe(r, err))
	}
	return true
}

// eventFailed records a revocation the server declined; the session had
// ended without the simulation knowing, or something is wrong.
func (w *world) eventFailed(format string, args ...any) {
	w.stats.eventFailed.Add(1)
	w.stats.note("event failed", fmt.Sprintf(format, args...))
}

// spotCheck polls GET /me with the ended session's access token on both
// instances, with probability -spot, until both answer 401; later than 1 s
// is a violation.
func (w *world) spotCheck(ctx context.Context, s *session) {
	roll := rand.Float64() // #nosec G404 -- simulated timing and load, not a secret
	if roll >= w.o.spot {
		return
	}
	s.mu.Lock()
	access := s.access
	s.mu.Unlock()
	start := time.Now()
	w.spots.Go(func() {
		var refused [2]bool
		for {
			for i, in := range w.inst {
				if !refused[i] {
					r, err := w.call(ctx, in, "GET /me", http.MethodGet, "/me", access, nil)
					refused[i] = err == nil && r.status == http.StatusUnauthorized
				}
			}
			took := time.Since(start)
			if refused[0] && refused[1] {
				w.stats.spot(took, false)
				return
			}
			if took > time.Second || ctx.Err() != nil {
				w.stats.spot(took, true)
				w.stats.note("late", fmt.Sprintf("session %s: access token still accepted after %s (refused by A %v, by B %v)",
					s.id, took.Round(time.Millisecond), refused[0], refused[1]))
				return
			}
			sleep(ctx, 25*time.Millisecond)
		}
	})
}

// describe is an answer or a transport error, for a message.
func describe(r reply, err error) string {
	if err != nil {
		return err.Error()
	}
	return r.String()
}
