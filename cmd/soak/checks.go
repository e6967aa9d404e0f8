package main

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"
)

// simSession is what the simulation knows about one session at the end.
type simSession struct {
	reason     string // the event that ended it ("" while the simulation believes it live)
	unexpected string // why its browser gave it up although the simulation had not ended it
}

// problems is a count of one kind of problem with its first samples.
type problems struct {
	n       int
	samples []string
}

// simFacts is everything the simulation observed that the invariants need.
type simFacts struct {
	attacked      map[string]bool       // sessions deliberately attacked (answered with reuse detection)
	sessions      map[string]simSession // every session a browser held
	adminSessions map[string]bool

	lostRetried, retrySame, retryMismatch, retryRefused, retryFailed, retryAfterEnd int
	retries                                                                         problems

	twoSuccessors problems // one token answered with two successors, seen by a browser
	grandAccepted problems // a grandparent token answered 200

	finalChecked  int      // ended sessions asked about on both instances after the run
	finalFailures problems // wrong answers to those questions
	spotChecks    int
	spotMax       time.Duration
	late          problems // spot checks still accepted after 1 s

	fiveXX    problems
	transport problems

	unexpectedGrant int // refusals of sessions the simulation had not ended
	refusals        problems
	unexplained     problems // any other answer the simulation cannot explain
	eventFailed     problems // revocations the server declined
}

// finalChecks waits half a second after the run and asks both instances
// about every session the simulation saw end: its newest access token must
// get 401 from GET /me and its newest refresh token 400 invalid_grant. It
// then gathers everything the simulation observed.
func (w *world) finalChecks(ctx context.Context) simFacts {
	sleep(ctx, 500*time.Millisecond)
	f := simFacts{attacked: map[string]bool{}, sessions: map[string]simSession{}, adminSessions: map[string]bool{}}
	type endedSession struct{ id, access, token string }
	var ended []endedSession
	w.mu.Lock()
	for id := range w.attacked {
		f.attacked[id] = true
	}
	for _, s := range w.sessions {
		s.mu.Lock()
		f.sessions[s.id] = simSession{reason: s.reason, unexpected: s.unexpected}
		if s.over() {
			ended = append(ended, endedSession{s.id, s.access, s.token})
		}
		s.mu.Unlock()
	}
	w.mu.Unlock()
	w.adminMu.Lock()
	for _, id := range w.adminSessions {
		f.adminSessions[id] = true
	}
	w.adminMu.Unlock()

	var mu sync.Mutex
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		f.finalFailures.n++
		if len(f.finalFailures.samples) < maxSamples {
			f.finalFailures.samples = append(f.finalFailures.samples, fmt.Sprintf(format, args...))
		}
	}
	_ = parallel(8, len(ended), func(i int) error {
		s := ended[i]
		for _, in := range w.inst {
			r, err := w.call(ctx, in, "GET /me (final check)", http.MethodGet, "/me", s.access, nil)
			if err != nil || r.status != http.StatusUnauthorized {
				fail("session %s: GET /me on %s with its access token answered %s, want 401", s.id, in.name, describe(r, err))
			}
			r, err = w.call(ctx, in, "POST /refresh (final check)", http.MethodPost, "/refresh", "", map[string]string{"refresh_token": s.token})
			if err != nil || !r.invalidGrant() {
				fail("session %s: POST /refresh on %s with its refresh token answered %s, want 400 invalid_grant", s.id, in.name, describe(r, err))
			}
		}
		return nil
	})
	f.finalChecked = len(ended)

	st := w.stats
	f.lostRetried = int(st.lostRetried.Load())
	f.retrySame, f.retryMismatch = int(st.retrySame.Load()), int(st.retryMismatch.Load())
	f.retryRefused, f.retryFailed = int(st.retryRefused.Load()), int(st.retryFailed.Load())
	f.retryAfterEnd = int(st.retryAfterEnd.Load())
	f.spotChecks, f.spotMax = int(st.spotChecks.Load()), time.Duration(st.spotMaxNS.Load())
	f.unexpectedGrant = int(st.unexpectedGrant.Load())
	for kind, p := range map[string]*problems{
		"retry": &f.retries, "two successors": &f.twoSuccessors, "grandparent accepted": &f.grandAccepted,
		"late": &f.late, "5xx": &f.fiveXX, "transport": &f.transport, "unexpected refusal": &f.refusals,
		"unexplained": &f.unexplained, "event failed": &f.eventFailed,
	} {
		p.n, p.samples = st.sampled(kind)
	}
	return f
}

// verdict is the result of one invariant.
type verdict struct {
	name       string
	pass       bool
	detail     string   // what was counted
	violations []string // what broke it, one line each
}

// failures counts the failed verdicts.
func failures(vs []verdict) int {
	n := 0
	for _, v := range vs {
		if !v.pass {
			n++
		}
	}
	return n
}

// evaluate checks every invariant against what the simulation observed and
// what the database holds. It is pure.
func evaluate(sim simFacts, db dbFacts) []verdict {
	return []verdict{
		checkNoFalseReuse(sim, db),
		checkOneSuccessor(sim, db),
		checkRetries(sim),
		checkRefusedEverywhere(sim),
		checkNo5xx(sim),
		checkExplained(sim, db),
	}
}

// checkNoFalseReuse: the sessions revoked as reuse_detected are exactly the
// ones the simulation attacked.
func checkNoFalseReuse(sim simFacts, db dbFacts) verdict {
	v := verdict{name: "1. no false reuse (reuse_detected = attacked sessions)"}
	var falses []falseReuse
	reuse := 0
	for id, s := range db.sessions {
		if s.reason != "reuse_detected" {
			continue
		}
		reuse++
		if !sim.attacked[id] {
			falses = append(falses, falseReuse{id, s})
		}
	}
	sort.Slice(falses, func(i, j int) bool { return falses[i].s.revokedAt.Before(falses[j].s.revokedAt) })
	for _, f := range falses {
		line := fmt.Sprintf("FALSE REUSE session %s: rotated_at %s, revoked_at %s (%s)",
			f.id, stamp(f.s.rotatedAt), stamp(f.s.revokedAt), gap(f.s.rotatedAt, f.s.revokedAt))
		if why := sim.sessions[f.id].unexpected; why != "" {
			line += "; its browser: " + why
		}
		v.violations = append(v.violations, line)
	}
	var missed []string
	for id := range sim.attacked {
		if s, ok := db.sessions[id]; !ok || s.reason != "reuse_detected" {
			missed = append(missed, fmt.Sprintf("attacked session %s is %q in the database, not reuse_detected", id, s.reason))
		}
	}
	sort.Strings(missed)
	v.violations = append(v.violations, missed...)
	v.violations = append(v.violations, sim.grandAccepted.samples...)
	v.pass = len(falses) == 0 && len(missed) == 0 && sim.grandAccepted.n == 0
	v.detail = fmt.Sprintf("%d reuse revocations: %d of %d attacked sessions, %d FALSE", reuse, len(sim.attacked)-len(missed), len(sim.attacked), len(falses))
	if early := countEarly(falses); early > 0 {
		v.detail += fmt.Sprintf(" (%d of them revoked at an instant before the rotation they contradict)", early)
	}
	if sim.grandAccepted.n > 0 {
		v.detail += fmt.Sprintf("; %d grandparent tokens ACCEPTED", sim.grandAccepted.n)
	}
	return v
}

// falseReuse is a session revoked as reuse_detected that nobody attacked.
type falseReuse struct {
	id string
	s  dbSession
}

// countEarly counts the false reuses whose revocation instant is earlier
// than their last rotation's: a presentation that read the clock before
// the rotation that beat it, judged as reuse.
func countEarly(falses []falseReuse) int {
	n := 0
	for _, f := range falses {
		if !f.s.rotatedAt.IsZero() && f.s.revokedAt.Before(f.s.rotatedAt) {
			n++
		}
	}
	return n
}

// checkOneSuccessor: no refresh token has two successors, in the database
// or in what any browser was told.
func checkOneSuccessor(sim simFacts, db dbFacts) verdict {
	v := verdict{name: "2. never two successors of one token"}
	for _, d := range db.mismatches {
		v.violations = append(v.violations, fmt.Sprintf("session %s: generation %d after %d rotations", d.sessionID, d.generation, d.rotations))
	}
	v.violations = append(v.violations, sim.twoSuccessors.samples...)
	v.pass = len(db.mismatches) == 0 && sim.twoSuccessors.n == 0
	v.detail = fmt.Sprintf("%d sessions whose generation is not their rotation count, among %d rotations; %d tokens answered with two successors",
		len(db.mismatches), db.rotations, sim.twoSuccessors.n)
	return v
}

// checkRetries: every eligible retry of a lost reply got the byte-identical
// successor.
func checkRetries(sim simFacts) verdict {
	v := verdict{name: "3. lost-reply retries get the same successor"}
	eligible := sim.retrySame + sim.retryMismatch + sim.retryRefused + sim.retryFailed
	v.pass = eligible == sim.retrySame
	v.detail = fmt.Sprintf("%d of %d eligible retries got the same successor (%d mismatched, %d refused, %d failed; %d more found their session ended by the simulation)",
		sim.retrySame, eligible, sim.retryMismatch, sim.retryRefused, sim.retryFailed, sim.retryAfterEnd)
	v.violations = sim.retries.samples
	return v
}

// checkRefusedEverywhere: every session that ended is refused by both
// instances, after the run and within 1 s during it.
func checkRefusedEverywhere(sim simFacts) verdict {
	v := verdict{name: "4. ended sessions refused on A and B"}
	v.pass = sim.finalFailures.n == 0 && sim.late.n == 0
	v.detail = fmt.Sprintf("%d ended sessions × (GET /me, POST /refresh) × (A, B) after the run: %d wrong; %d spot checks during the run: %d later than 1s (slowest %s)",
		sim.finalChecked, sim.finalFailures.n, sim.spotChecks, sim.late.n, sim.spotMax.Round(time.Millisecond))
	v.violations = append(append(v.violations, sim.finalFailures.samples...), sim.late.samples...)
	return v
}

// checkNo5xx: no request got a 5xx answer or no answer at all.
func checkNo5xx(sim simFacts) verdict {
	v := verdict{name: "5. no 5xx answers (nor transport errors)"}
	v.pass = sim.fiveXX.n == 0 && sim.transport.n == 0
	v.detail = fmt.Sprintf("%d 5xx answers, %d transport errors", sim.fiveXX.n, sim.transport.n)
	v.violations = append(append(v.violations, sim.fiveXX.samples...), sim.transport.samples...)
	return v
}

// checkExplained: every refusal and every revocation is one the simulation
// caused: no session was refused while the simulation believed it live, no
// revocation was declined, and the database's revoked_reason of every
// session is the simulation's (reuse revocations are check 1's).
func checkExplained(sim simFacts, db dbFacts) verdict {
	v := verdict{name: "6. every refusal and revocation explained"}
	var mismatches []string
	for id, s := range sim.sessions {
		d, ok := db.sessions[id]
		switch {
		case !ok && s.reason == "":
			mismatches = append(mismatches, fmt.Sprintf("session %s, live for the simulation, is not in the database", id))
		case !ok, s.unexpected != "", d.reason == "reuse_detected" && !sim.attacked[id]:
			// Purged, already reported as a refusal, or a false reuse.
		case d.reason != s.reason:
			mismatches = append(mismatches, fmt.Sprintf("session %s: the simulation %s, the database says %s",
				id, simWords(s.reason), dbWords(d.reason)))
		}
	}
	for id := range db.sessions {
		if _, ok := sim.sessions[id]; !ok && !sim.adminSessions[id] {
			mismatches = append(mismatches, fmt.Sprintf("session %s is in the database but no browser logged it in", id))
		}
	}
	sort.Strings(mismatches)
	v.pass = sim.unexpectedGrant == 0 && sim.unexplained.n == 0 && sim.eventFailed.n == 0 && len(mismatches) == 0
	v.detail = fmt.Sprintf("%d refusals of live sessions, %d other unexplained answers, %d declined revocations, %d database disagreements",
		sim.unexpectedGrant, sim.unexplained.n, sim.eventFailed.n, len(mismatches))
	v.violations = append(v.violations, sim.refusals.samples...)
	v.violations = append(v.violations, sim.unexplained.samples...)
	v.violations = append(v.violations, sim.eventFailed.samples...)
	if len(mismatches) > maxSamples {
		mismatches = append(mismatches[:maxSamples], fmt.Sprintf("… and %d more", len(mismatches)-maxSamples))
	}
	v.violations = append(v.violations, mismatches...)
	return v
}

func simWords(reason string) string {
	if reason == "" {
		return "believes it live"
	}
	return "ended it (" + reason + ")"
}

func dbWords(reason string) string {
	if reason == "" {
		return "live"
	}
	return "revoked (" + reason + ")"
}

// stamp formats a database instant to the microsecond.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("15:04:05.000000Z")
}

// gap describes when a revocation happened relative to the last rotation.
func gap(rotated, revoked time.Time) string {
	switch {
	case rotated.IsZero():
		return "never rotated"
	case revoked.Before(rotated):
		return fmt.Sprintf("%s BEFORE its last rotation", rotated.Sub(revoked))
	default:
		return fmt.Sprintf("%s after its last rotation", revoked.Sub(rotated))
	}
}
