package main

import (
	"strings"
	"testing"
	"time"
)

// cleanFacts is a run in which everything held: one attacked session
// revoked for reuse, one logged out, one live.
func cleanFacts() (simFacts, dbFacts) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	sim := simFacts{
		attacked: map[string]bool{"attacked": true},
		sessions: map[string]simSession{
			"attacked": {reason: "reuse_detected"},
			"out":      {reason: "logout"},
			"alive":    {},
		},
		adminSessions: map[string]bool{"admin": true},
		lostRetried:   3, retrySame: 3,
		finalChecked: 2,
	}
	db := dbFacts{
		sessions: map[string]dbSession{
			"attacked": {reason: "reuse_detected", rotatedAt: t0, revokedAt: t0.Add(time.Second)},
			"out":      {reason: "logout", rotatedAt: t0, revokedAt: t0.Add(time.Second)},
			"alive":    {rotatedAt: t0},
			"admin":    {},
		},
		rotations: 10,
	}
	return sim, db
}

func TestEvaluateCleanRun(t *testing.T) {
	sim, db := cleanFacts()
	for _, v := range evaluate(sim, db) {
		if !v.pass {
			t.Errorf("%s failed: %s %q", v.name, v.detail, v.violations)
		}
	}
}

func TestEvaluateFindsFalseReuse(t *testing.T) {
	sim, db := cleanFacts()
	rotated := db.sessions["alive"].rotatedAt
	// A replay that read the clock 3 ms before the rotation that beat it,
	// judged as reuse; its browser was refused.
	db.sessions["alive"] = dbSession{reason: "reuse_detected", rotatedAt: rotated, revokedAt: rotated.Add(-3 * time.Millisecond)}
	sim.sessions["alive"] = simSession{unexpected: "refresh on B refused: refresh token was already used"}
	sim.unexpectedGrant = 1
	vs := evaluate(sim, db)
	v := vs[0]
	if v.pass || len(v.violations) != 1 {
		t.Fatalf("check 1 = %v %q, want one violation", v.pass, v.violations)
	}
	for _, want := range []string{"FALSE REUSE session alive", "rotated_at 03:04:05.000000Z", "revoked_at 03:04:04.997000Z", "3ms BEFORE", "refused"} {
		if !strings.Contains(v.violations[0], want) {
			t.Errorf("violation %q lacks %q", v.violations[0], want)
		}
	}
	if !strings.Contains(v.detail, "1 FALSE") {
		t.Errorf("detail %q", v.detail)
	}
	if vs[5].pass {
		t.Error("check 6 passed with a refusal of a live session")
	}
	if failures(vs) != 2 {
		t.Errorf("%d failures, want 2 (checks 1 and 6)", failures(vs))
	}
}

func TestEvaluateFindsMissedAttackAndOtherBreakage(t *testing.T) {
	sim, db := cleanFacts()
	db.sessions["attacked"] = dbSession{reason: "logout"}
	db.mismatches = []countMismatch{{sessionID: "out", generation: 3, rotations: 2}}
	sim.retryMismatch = 1
	sim.late = problems{n: 1, samples: []string{"late"}}
	sim.fiveXX = problems{n: 1, samples: []string{"500"}}
	db.sessions["stray"] = dbSession{}
	vs := evaluate(sim, db)
	for i, v := range vs {
		if v.pass {
			t.Errorf("check %d (%s) passed: %s", i+1, v.name, v.detail)
		}
	}
	if !strings.Contains(strings.Join(vs[0].violations, "\n"), "attacked session attacked") {
		t.Errorf("check 1 does not name the missed attack: %q", vs[0].violations)
	}
	if !strings.Contains(strings.Join(vs[5].violations, "\n"), "session stray is in the database") {
		t.Errorf("check 6 does not name the stray session: %q", vs[5].violations)
	}
}

func TestParseOptions(t *testing.T) {
	o, err := parseOptions([]string{"-db", "postgres://x@127.0.0.1/db", "-duration", "5s", "-grace", "3s"}, nil)
	if err != nil || o.duration != 5*time.Second || o.effectiveGrace() != 3*time.Second || o.tabs != 4 {
		t.Fatalf("%+v %v", o, err)
	}
	if _, err := parseOptions([]string{"-db", "postgres://x@127.0.0.1/db", "-grace", "100ms"}, nil); err == nil {
		t.Error("-grace 100ms accepted")
	}
}
