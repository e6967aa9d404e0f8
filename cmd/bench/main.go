// Command bench measures Rotor as SPEC §9 asks: requests/s and p50/p99 per
// endpoint and concurrency, beside a pgbench run of a one-statement rotation
// transaction on the same PostgreSQL. It prints figures and never asserts
// speed: the exit status is 1 only when a request (or pgbench transaction)
// failed, 2 when the benchmark could not run.
//
//	go run ./cmd/bench           # builds and starts the server on a scratch database, ~2 minutes
//	go run ./cmd/bench -smoke    # a few seconds, for CI
//	go run ./cmd/bench -addr http://127.0.0.1:8080 -admin-email ... -admin-password ...
//	go run ./cmd/bench -sessions 1000000 -only refresh,floor -pgbench=false -duration 5m
//
// By default it creates the database rotor_bench_<random> through -pg, runs
// `go build ./cmd/server`, starts the binary on a free loopback port with
// LOGIN_RATE_LIMIT=0 and a bootstrap admin, and drops the database and stops
// the server at the end or on Ctrl-C. With -addr it uses a running server
// instead, which must have LOGIN_RATE_LIMIT=0 and the given admin; pgbench
// still runs in a scratch database of -pg.
//
// -sessions N seeds N sessions into the started server's database first
// (seed.go); every rotating phase reports its table's HOT ratio and size
// (tables.go), and phases of at least six -interval report every interval
// and their stability (intervals.go).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rotorauth/rotor/internal/harness"
)

// options are the command-line flags.
type options struct {
	addr          string
	adminEmail    string
	adminPassword string
	pg            string
	memory        bool
	smoke         bool
	pgbench       bool
	duration      time.Duration
	warmup        time.Duration
	only          string
	sessions      int64         // -sessions: seeded sessions
	interval      time.Duration // -interval: the long-run report's interval
	serverPID     int           // the started server, for the CPU table; 0 with -addr
	dbName        string        // the started server's database, for the CPU table
	table         string        // the table whose writes the phase reports ("": none)
}

// phases lists the phase names -only accepts.
const phases = "refresh,floor,me,introspect,token,pgbench"

// want reports whether phase runs: every phase unless -only names some.
func (o options) want(phase string) bool {
	if o.only == "" {
		return true
	}
	for _, p := range strings.Split(o.only, ",") {
		if strings.TrimSpace(p) == phase {
			return true
		}
	}
	return false
}

// rotorPhases reports whether a phase against Rotor runs.
func (o options) rotorPhases() bool {
	return o.want("refresh") || o.want("me") || o.want("introspect") || o.want("token")
}

func main() {
	if os.Getenv(floorAddrEnv) != "" {
		if err := serveFloor(); err != nil {
			fmt.Fprintln(os.Stderr, "bench floor:", err)
			os.Exit(2)
		}
		return
	}
	var o options
	flag.StringVar(&o.addr, "addr", "", "base URL of a running Rotor (LOGIN_RATE_LIMIT=0); empty: build and start one")
	flag.StringVar(&o.adminEmail, "admin-email", "", "admin to log in as (default: the bootstrap admin of the started server)")
	flag.StringVar(&o.adminPassword, "admin-password", "", "password of -admin-email")
	flag.StringVar(&o.pg, "pg", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "PostgreSQL in which to create the scratch database")
	flag.BoolVar(&o.memory, "memory", false, "start the server on the in-memory store (no DATABASE_URL)")
	flag.BoolVar(&o.pgbench, "pgbench", true, "run the pgbench reference")
	flag.BoolVar(&o.smoke, "smoke", false, "very short phases for CI: 300ms each, no warm-up, pgbench -T 1")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measured length of each phase")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured warm-up before each phase")
	flag.StringVar(&o.only, "only", "", "run only these phases, comma-separated, of "+phases)
	flag.Func("conc", "comma-separated concurrencies of the /refresh, floor and pgbench phases (default 1,8,32)", func(v string) error {
		cs, err := parseConcs(v)
		if err == nil {
			refreshConcs, pgbenchConcs = cs, cs
		}
		return err
	})
	flag.Int64Var(&o.sessions, "sessions", 0, "seed this many extra live sessions into the started server's database before the Rotor phases")
	flag.DurationVar(&o.interval, "interval", 10*time.Second, "phases of at least 6 intervals print req/s, p50, p99 every interval and a stability summary; 0: never")
	flag.Parse()
	for _, p := range strings.Split(o.only, ",") {
		if p = strings.TrimSpace(p); o.only != "" && !strings.Contains(","+phases+",", ","+p+",") {
			fmt.Fprintf(os.Stderr, "bench: -only: unknown phase %q (use %s)\n", p, phases)
			os.Exit(2)
		}
	}
	o.pgbench = o.pgbench && o.want("pgbench")
	if o.smoke {
		o.duration, o.warmup = 300*time.Millisecond, 0
	}
	if o.addr != "" && (o.adminEmail == "" || o.adminPassword == "") {
		fmt.Fprintln(os.Stderr, "bench: -addr needs -admin-email and -admin-password")
		os.Exit(2)
	}
	if o.addr != "" && o.memory {
		fmt.Fprintln(os.Stderr, "bench: -memory starts a server; it cannot be combined with -addr")
		os.Exit(2)
	}
	if o.sessions < 0 || o.interval < 0 {
		fmt.Fprintln(os.Stderr, "bench: -sessions and -interval cannot be negative")
		os.Exit(2)
	}
	if o.sessions > 0 && (o.addr != "" || o.memory || !o.rotorPhases()) {
		fmt.Fprintln(os.Stderr, "bench: -sessions seeds the database of the server the benchmark starts on PostgreSQL: not with -addr or -memory, and only with a Rotor phase (refresh, me, introspect or token)")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code, err := run(ctx, o, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		if code == 0 {
			code = 2
		}
	}
	os.Exit(code)
}

// run sets up, measures, prints the table and cleans up. Its exit code is 1
// when any request failed.
func run(ctx context.Context, o options, out io.Writer) (int, error) {
	root, err := moduleRoot()
	if err != nil {
		return 2, err
	}
	tmp, err := os.MkdirTemp("", "rotor-bench-")
	if err != nil {
		return 2, err
	}
	defer os.RemoveAll(tmp)

	var db *harness.ScratchDB
	if (o.addr == "" && !o.memory) || o.pgbench || o.want("floor") {
		if db, err = harness.CreateScratch(ctx, o.pg, "rotor_bench"); err != nil {
			return 2, fmt.Errorf("-pg: %w", err)
		}
		defer func() {
			if err := db.Drop(); err != nil {
				fmt.Fprintln(os.Stderr, "bench:", err)
			}
		}()
		stopWatch, err := watchDB(ctx, db)
		if err != nil {
			return 2, err
		}
		defer stopWatch()
	}
	rotorPhases := o.rotorPhases()
	store, base := "running server", o.addr
	if o.addr == "" && rotorPhases {
		o.adminEmail = "bench-admin-" + randHex(4) + "@example.com"
		o.adminPassword = "admin-" + randHex(16)
		dbURL := ""
		store = "in-memory store"
		if !o.memory {
			dbURL, store, o.dbName = db.URL, "PostgreSQL store, database "+db.Name, db.Name
		}
		fmt.Fprintln(os.Stderr, "bench: building and starting ./cmd/server")
		srv, err := startServer(ctx, root, tmp, dbURL, o.adminEmail, o.adminPassword)
		if err != nil {
			return 2, err
		}
		defer srv.stop()
		base, o.serverPID = srv.base, srv.cmd.Process.Pid
	}
	seeded := ""
	if o.sessions > 0 {
		// The server migrated the database before it became ready.
		rep, err := seed(ctx, o, db.URL)
		if err != nil {
			return 2, interrupted(ctx, err)
		}
		seeded = rep.String()
	}

	var fl *floor
	if o.want("floor") {
		if fl, err = startFloor(ctx, root, tmp, db); err != nil {
			return 2, err
		}
		defer fl.stop()
	}
	var rotor []result
	if rotorPhases || fl != nil {
		if rotor, err = runRotor(ctx, o, base, fl); err != nil {
			return 2, interrupted(ctx, err)
		}
	}
	var pgb []result
	if o.pgbench {
		if pgb, err = runPgbench(ctx, o, root, tmp, db); err != nil {
			return 2, interrupted(ctx, err)
		}
	}
	if !rotorPhases {
		base, store = "-", "not measured"
	}
	fmt.Fprintf(out, "\nRotor at %s (%s); %d CPUs shared by client, server and PostgreSQL; phases %s after %s warm-up\n\n",
		base, store, runtime.NumCPU(), o.duration, o.warmup)
	if seeded != "" {
		fmt.Fprintf(out, "Before the phases: %s\n\n", seeded)
	}
	all := append(append([]result(nil), rotor...), pgb...)
	printTable(out, all)
	printCPU(out, all)
	printWrites(out, all)
	printStability(out, all)
	printTargets(out, rotor, pgb)
	failed := 0
	for _, r := range all {
		failed += r.errors
		if r.errors > 0 {
			fmt.Fprintf(out, "ERROR %s c=%d: %d failed; first: %s\n", r.name, r.conc, r.errors, r.firstErr)
		}
	}
	if failed > 0 {
		return 1, errors.New("some requests failed (see above)")
	}
	return 0, nil
}

// interrupted replaces the error of a phase cut short by Ctrl-C.
func interrupted(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return errors.New("interrupted; the server was stopped and the scratch database dropped")
	}
	return err
}

// parseConcs reads -conc: ascending positive concurrencies, at most 256.
func parseConcs(v string) ([]int, error) {
	var cs []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 256 || (len(cs) > 0 && n <= cs[len(cs)-1]) {
			return nil, fmt.Errorf("-conc: %q is not an ascending list of concurrencies from 1 to 256", v)
		}
		cs = append(cs, n)
	}
	return cs, nil
}
