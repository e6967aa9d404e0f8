package main

import (
	"fmt"
	"io"
	"runtime"
	"text/tabwriter"
	"time"
)

// SPEC §9 targets, printed beside the measured figures.
const (
	targetRatio      = 0.70
	targetRefreshP99 = 25 * time.Millisecond
	targetChecks     = 15000.0
	// Rotation v2 targets: Rotor's /refresh against the floor (cmd/bench/floor.go).
	targetFloorRatio = 0.75
	goalFloorRatio   = 0.90
)

// ms formats a latency in milliseconds.
func ms(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

// printTable prints one row per result.
func printTable(out io.Writer, rs []result) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "endpoint\tconc\trequests\terrors\treq/s\tp50\tp99\t")
	for _, r := range rs {
		p50, p99 := ms(r.pct(50)), ms(r.pct(99))
		if len(r.lat) == 0 && r.avgOnly > 0 {
			p50, p99 = "avg "+ms(r.avgOnly), "n/a"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.0f\t%s\t%s\t\n", r.name, r.conc, r.requests, r.errors, r.perSecond(), p50, p99)
	}
	_ = tw.Flush()
	fmt.Fprintln(out, "(requests and latencies: measured window only; errors include the warm-up;")
	fmt.Fprintln(out, " pgbench: tps from its summary, p50/p99 from its per-transaction log)")
}

// find returns the result named name at concurrency conc.
func find(rs []result, name string, conc int) (result, bool) {
	for _, r := range rs {
		if r.name == name && r.conc == conc {
			return r, true
		}
	}
	return result{}, false
}

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

// printTargets prints the SPEC §9 targets beside the measured values. They
// are figures, not assertions: a MISS does not change the exit status.
func printTargets(out io.Writer, rotor, pgb []result) {
	fmt.Fprintln(out, "\nSPEC §9 targets (figures, not assertions):")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	refresh, okR := find(rotor, "POST /refresh", 32)
	if pg, ok := find(pgb, "pgbench rotation", 32); ok && okR && pg.perSecond() > 0 {
		ratio := refresh.perSecond() / pg.perSecond()
		fmt.Fprintf(tw, "  /refresh c=32 ÷ pgbench c=32\t%.0f ÷ %.0f = %.2f\ttarget ≥ %.2f\t%s\n",
			refresh.perSecond(), pg.perSecond(), ratio, targetRatio, verdict(ratio >= targetRatio))
	} else {
		fmt.Fprintf(tw, "  /refresh c=32 ÷ pgbench c=32\tnot measured\ttarget ≥ %.2f\t-\n", targetRatio)
	}
	for _, n := range refreshConcs {
		if n < 8 { // the floor ratio targets are at c=8 and c=32
			continue
		}
		r, okRn := find(rotor, "POST /refresh", n)
		if fl, ok := find(rotor, "floor /refresh", n); ok && okRn && fl.perSecond() > 0 {
			ratio := r.perSecond() / fl.perSecond()
			fmt.Fprintf(tw, "  /refresh c=%d ÷ floor c=%d\t%.0f ÷ %.0f = %.2f\ttarget ≥ %.2f (goal %.2f)\t%s\n",
				n, n, r.perSecond(), fl.perSecond(), ratio, targetFloorRatio, goalFloorRatio, verdict(ratio >= targetFloorRatio))
		}
	}
	if pg, ok := find(pgb, "pgbench rotation", 32); ok && okR && refresh.requests > 0 && pg.requests > 0 && refresh.cpu.ok && pg.cpu.ok {
		per := func(r result, d time.Duration) float64 {
			return float64(d) / float64(time.Microsecond) / float64(r.requests)
		}
		if ref := per(pg, pg.cpu.pg); ref > 0 {
			got := per(refresh, refresh.cpu.pg)
			fmt.Fprintf(tw, "  PostgreSQL CPU per refresh ÷ pgbench's\t%.0f ÷ %.0f µs = %.2f\ttarget ≤ 1.30 (goal 1.10)\t%s\n",
				got, ref, got/ref, verdict(got/ref <= 1.30))
		}
		if refresh.cpu.wal >= 0 && pg.cpu.wal > 0 {
			got, ref := float64(refresh.cpu.wal)/float64(refresh.requests), float64(pg.cpu.wal)/float64(pg.requests)
			fmt.Fprintf(tw, "  WAL per refresh ÷ pgbench's\t%.0f ÷ %.0f B = %.2f\ttarget ≤ 2.00\t%s\n",
				got, ref, got/ref, verdict(got/ref <= 2))
		}
	}
	if okR && refresh.cpu.ok && refresh.requests > 0 && refresh.cpu.rotor > 0 {
		got := float64(refresh.cpu.rotor) / float64(time.Microsecond) / float64(refresh.requests)
		fmt.Fprintf(tw, "  Rotor process CPU per refresh c=32\t%.0f µs\ttarget ≤ 150 µs\t%s\n", got, verdict(got <= 150))
	}
	if okR {
		fmt.Fprintf(tw, "  /refresh c=32 p99\t%s\ttarget < %s\t%s\n",
			ms(refresh.pct(99)), ms(targetRefreshP99), verdict(refresh.pct(99) < targetRefreshP99))
	}
	for _, name := range []string{"GET /me", "POST /introspect"} {
		if r, ok := find(rotor, name, checkConc); ok {
			fmt.Fprintf(tw, "  %s c=%d\t%.0f req/s\ttarget ≥ %.0f req/s\t%s\n",
				name, checkConc, r.perSecond(), targetChecks, verdict(r.perSecond() >= targetChecks))
		}
	}
	if r, ok := find(rotor, "POST /token", loginConc); ok {
		fmt.Fprintf(tw, "  POST /token c=%d (login)\t%.0f req/s, p50 %s\treport only\t-\n",
			loginConc, r.perSecond(), ms(r.pct(50)))
	}
	_ = tw.Flush()
	if r, ok := find(rotor, "POST /token", loginConc); ok && r.requests > 0 {
		if r.cpu.rotor > 0 {
			fmt.Fprintf(out, "  Login cost: %.1f ms of server CPU per login (measured), ", float64(r.cpu.rotor)/float64(time.Millisecond)/float64(r.requests))
		} else {
			fmt.Fprintf(out, "  Login cost: at most %.1f ms of CPU per login (%d CPUs ÷ %.0f logins/s), ",
				float64(runtime.NumCPU())*1000/r.perSecond(), runtime.NumCPU(), r.perSecond())
		}
		fmt.Fprintln(out, "dominated by the argon2id\n  password hash by design (SPEC §5: 19 MiB, t=2).")
	}
}

// printCPU prints where the CPU time of each measured window went: per
// request for the server, PostgreSQL and the load generator (this process,
// or pgbench), and the share of the machine that the rest took (other
// processes, interrupts). A large "others" share means a disturbed run.
func printCPU(out io.Writer, rs []result) {
	if len(rs) == 0 || !rs[0].cpu.ok {
		return
	}
	fmt.Fprintf(out, "\nCPU time per request (µs) and share of the %d CPUs during each measured window:\n", runtime.NumCPU())
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "endpoint\tconc\tbusy\trotor\tpostgres\tclient\tothers\tWAL B/req\t")
	capacity := func(u cpuUsage) float64 { return float64(u.wall) * float64(runtime.NumCPU()) }
	for _, r := range rs {
		u := r.cpu
		if !u.ok || r.requests == 0 || u.wall <= 0 {
			continue
		}
		per := func(d time.Duration) string {
			return fmt.Sprintf("%.0f", float64(d)/float64(time.Microsecond)/float64(r.requests))
		}
		wal := "-"
		if u.wal >= 0 {
			wal = fmt.Sprintf("%.0f", float64(u.wal)/float64(r.requests))
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f%%\t%s\t%s\t%s\t%.0f%%\t%s\t\n", r.name, r.conc,
			100*float64(u.busy)/capacity(u), per(u.rotor), per(u.pg), per(u.client), 100*float64(u.others)/capacity(u), wal)
	}
	_ = tw.Flush()
	fmt.Fprintln(out, "(client: this benchmark, or pgbench for its rows; postgres: the scratch database's backends and")
	fmt.Fprintln(out, " PostgreSQL's shared processes; others: every other process, other databases, interrupts;")
	fmt.Fprintln(out, " WAL B/req: WAL the whole cluster wrote in the window ÷ requests, so other databases' writes count)")
}

// printWrites prints what each watched phase (warm-up included) did to its
// table: updates, the HOT share, the size before and after, and how much of
// the phase the lagging statistics had counted when read.
func printWrites(out io.Writer, rs []result) {
	head := false
	var tw *tabwriter.Writer
	for _, r := range rs {
		u := r.table
		if u == nil {
			continue
		}
		if !head {
			fmt.Fprintln(out, "\nTable writes per phase, warm-up included (pg_stat_user_tables and pg_total_relation_size):")
			tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintln(tw, "endpoint\tconc\ttable\tupdates\tHOT\tsize before\tafter\tgrowth\tcheckpoints\tcounted\t")
			head = true
		}
		hot := "-"
		if h, ok := u.hotRatio(); ok {
			hot = fmt.Sprintf("%.1f%%", 100*h)
		}
		ck := "-"
		if n := u.checkpoints(); n >= 0 {
			ck = fmt.Sprint(n)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%s\t%s\t%+.1f MB\t%s\t%.0f%%\t\n", r.name, r.conc, u.table, u.updates(), hot,
			mb(u.before.total), mb(u.after.total), float64(u.after.total-u.before.total)/(1<<20), ck, 100*u.covered())
	}
	if !head {
		return
	}
	_ = tw.Flush()
	fmt.Fprintln(out, "(HOT: n_tup_hot_upd ÷ n_tup_upd, updates that wrote no index entry; size: table, indexes and")
	fmt.Fprintln(out, " TOAST; sessions is never vacuumed, bench_tokens is before each floor and pgbench phase;")
	fmt.Fprintln(out, " counted: updates counted ÷ successful requests, below 100% when the statistics, which")
	fmt.Fprintln(out, " PostgreSQL flushes up to 10 s late, did not cover the whole phase when read)")
}
