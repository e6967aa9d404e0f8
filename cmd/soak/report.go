package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// report prints the summary table: what ran, what was sent and answered,
// and each invariant's verdict with its violations.
func report(out io.Writer, w *world, dbName string, sim simFacts, verdicts []verdict) {
	st := w.stats
	ran := w.end.Sub(w.start).Round(100 * time.Millisecond)
	fmt.Fprintf(out, "\nRotor soak: %s (browsers stopped after %s), instances A %s and B %s on database %s, grace window %s\n",
		ran, w.o.duration, w.inst[0].base, w.inst[1].base, dbName, w.o.effectiveGrace())
	fmt.Fprintf(out, "%d users, %d browsers × %d tabs; %d sessions in all (%d logins after an end, %d failed logins)\n",
		len(w.users), len(w.browsers), w.o.tabs, len(sim.sessions), st.relogins.Load(), st.loginFailed.Load())

	fmt.Fprintf(out, "\nrequests per endpoint (setup, run and final checks)\n")
	names, counts := st.endpointRows()
	for _, e := range names {
		total := 0
		for _, n := range counts[e] {
			total += n
		}
		var parts []string
		for _, r := range sortedCounts(counts[e]) {
			parts = append(parts, fmt.Sprintf("%s: %d", r.name, r.n))
		}
		fmt.Fprintf(out, "  %-34s %8d   %s\n", e, total, strings.Join(parts, ", "))
	}

	fmt.Fprintf(out, "\nrefreshes by the tabs, by outcome\n")
	for _, r := range st.refreshRows() {
		fmt.Fprintf(out, "  %-66s %8d\n", r.name, r.n)
	}
	row := func(name, format string, args ...any) {
		fmt.Fprintf(out, "  %-34s %s\n", name, fmt.Sprintf(format, args...))
	}
	fmt.Fprintln(out)
	row("grace replays (same successor)", "%d", st.graceReplays.Load())
	row("tabs woken by a burst", "%d", st.bursts.Load())
	row("lost replies retried", "%d: %d same successor, %d other successor, %d refused, %d failed; %d found the session ended meanwhile",
		sim.lostRetried, sim.retrySame, sim.retryMismatch, sim.retryRefused, sim.retryFailed, sim.retryAfterEnd)
	row("logouts", "%d", st.logouts.Load())
	row("password changes", "%d (ending %d other sessions)", st.passwords.Load(), st.pwEnded.Load())
	row("admin revocations", "%d of one session, %d of all a user's (ending %d)", st.adminSession.Load(), st.adminUser.Load(), st.adminEnded.Load())
	row("reuse attacks (grandparent)", "%d detected; %d found the session already revoked", st.attacks.Load(), st.attackMissed.Load())
	row("events skipped / declined", "%d (no live session) / %d", st.eventSkipped.Load(), st.eventFailed.Load())
	row("spot checks of revocations", "%d, %d later than 1s, slowest %s", sim.spotChecks, sim.late.n, sim.spotMax.Round(time.Millisecond))

	fmt.Fprintf(out, "\ninvariants\n")
	for _, v := range verdicts {
		result := "PASS"
		if !v.pass {
			result = "FAIL"
		}
		fmt.Fprintf(out, "  %s  %-52s %s\n", result, v.name, v.detail)
	}
	if failures(verdicts) == 0 {
		fmt.Fprintf(out, "\nall %d invariants hold\n", len(verdicts))
		return
	}
	fmt.Fprintf(out, "\nviolations\n")
	for _, v := range verdicts {
		if v.pass {
			continue
		}
		fmt.Fprintf(out, "  %s:\n", v.name)
		for _, line := range v.violations {
			fmt.Fprintf(out, "    %s\n", line)
		}
	}
}
