// Command soak runs the real Rotor server as two instances on one scratch
// PostgreSQL database, drives them the way browsers do, and then checks
// every rotation invariant.
//
//	go run ./cmd/soak                             # 30 s: 45 sessions of 30 users, 4 tabs each
//	go run ./cmd/soak -duration 5m -sessions 120  # longer and wider
//	go run ./cmd/soak -server ./rotor -db postgres://postgres@127.0.0.1:5432/test?sslmode=disable
//
// It builds ./cmd/server (unless -server names a binary), creates the
// database rotor_soak_<random> through -db (default $TEST_DATABASE_URL),
// starts instances A and B on it with the same TOKEN_SECRET and JWT_KEYS on
// free 127.0.0.1 ports, and drops the database and stops both at the end.
//
// Every session is a simulated browser: several tabs share one cookie jar
// (the session's newest refresh token) and refresh at random moments, and
// all at once in bursts, through a random instance. Some replies are "lost"
// and retried with the same token inside the grace window. Logouts,
// password changes and admin revocations race the refreshes, and a few
// sessions are deliberately attacked with a token two rotations old. The
// checks that follow read the sessions table and ask
// both instances about every session that ended; see checks.go.
//
// The browsers never cause reuse themselves, so every reuse revocation but
// the attacks is the server's fault: a tab presents only the jar's token (or
// the token of a lost reply), waits until no presentation of an older token
// is in flight before it presents a newer one, so no request can find itself
// two rotations behind; and while a lost reply awaits its retry the jar does
// not move, so the retried token stays the immediate predecessor. A reply is
// lost only when its retry will come within the first half of the window.
//
// Exit status: 0 when every invariant holds, 1 when one is violated (the
// violations are listed), 2 when the soak could not run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.As(err, new(*violationError)):
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	default:
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(2)
	}
}

// options are the command-line flags.
type options struct {
	duration   time.Duration
	sessions   int // simulated browsers, each holding one session at a time
	users      int
	tabs       int
	server     string // prebuilt server binary; "" builds ./cmd/server
	db         string
	grace      time.Duration // REFRESH_REUSE_GRACE to set; 0 leaves the server default
	lost       float64       // probability that a refresh reply is lost and retried
	attack     float64       // fraction of browsers attacked once with a grandparent token
	eventEvery time.Duration // mean time between racing revocation events
	spot       float64       // probability that an ended session is spot-checked at once
}

// defaultGrace is the server's REFRESH_REUSE_GRACE default.
const defaultGrace = 10 * time.Second

// effectiveGrace is the grace window the servers run with.
func (o options) effectiveGrace() time.Duration {
	if o.grace > 0 {
		return o.grace
	}
	return defaultGrace
}

// parseOptions reads the flags in args.
func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "how long the browsers run")
	fs.IntVar(&o.sessions, "sessions", 45, "simulated browsers (concurrent sessions); spread over -users, 1-2 each by default")
	fs.IntVar(&o.users, "users", 30, "users the sessions belong to")
	fs.IntVar(&o.tabs, "tabs", 4, "tabs per browser, sharing one cookie jar")
	fs.StringVar(&o.server, "server", "", "server binary to run (default: go build ./cmd/server into a temporary directory)")
	fs.StringVar(&o.db, "db", "", "PostgreSQL URL in which to create the scratch database (default $TEST_DATABASE_URL)")
	fs.DurationVar(&o.grace, "grace", 0, "REFRESH_REUSE_GRACE for both instances (default: the server's, 10s)")
	fs.Float64Var(&o.lost, "lost", 0.10, "probability that a refresh reply is lost and the token retried")
	fs.Float64Var(&o.attack, "attack", 0.05, "fraction of browsers that present a grandparent token once (true reuse)")
	fs.DurationVar(&o.eventEvery, "event-every", 400*time.Millisecond, "mean time between racing logouts, password changes and admin revocations")
	fs.Float64Var(&o.spot, "spot", 0.5, "probability that a revocation is spot-checked on both instances within 1s")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.db == "" {
		o.db = os.Getenv("TEST_DATABASE_URL")
	}
	var bad []error
	if fs.NArg() > 0 {
		bad = append(bad, fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	if o.duration < time.Second {
		bad = append(bad, errors.New("-duration must be at least 1s"))
	}
	if o.sessions < 1 || o.users < 1 || o.tabs < 1 {
		bad = append(bad, errors.New("-sessions, -users and -tabs must be at least 1"))
	}
	if o.users > o.sessions {
		o.users = o.sessions
	}
	if o.grace < 0 || o.grace > time.Minute || (o.grace > 0 && o.grace < time.Second) {
		bad = append(bad, errors.New("-grace must be from 1s to 1m: tabs sharing a token need a grace window (strict mode would be reuse by design)"))
	}
	for _, p := range []struct {
		name string
		v    float64
	}{{"-lost", o.lost}, {"-attack", o.attack}, {"-spot", o.spot}} {
		if p.v < 0 || p.v > 1 {
			bad = append(bad, fmt.Errorf("%s must be from 0 to 1", p.name))
		}
	}
	if o.eventEvery <= 0 {
		bad = append(bad, errors.New("-event-every must be positive"))
	}
	if o.db == "" {
		bad = append(bad, errors.New("-db or TEST_DATABASE_URL is required (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable)"))
	}
	return o, errors.Join(bad...)
}

// run is the whole command: set up, soak, check, report, clean up. A
// *violationError means the soak ran and an invariant failed.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "rotor-soak-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	bin := o.server
	if bin == "" {
		fmt.Fprintln(stderr, "soak: building ./cmd/server")
		if bin, err = buildServer(ctx, tmp); err != nil {
			return err
		}
	}
	db, err := createScratch(ctx, o.db)
	if err != nil {
		return err
	}
	defer func() {
		if err := db.Drop(); err != nil {
			fmt.Fprintln(stderr, "soak:", err)
		}
	}()

	fmt.Fprintf(stderr, "soak: starting instances A and B on database %s\n", db.Name)
	c, err := startCluster(ctx, bin, tmp, db.URL, o)
	if err != nil {
		return err
	}
	defer c.stop()

	w := newWorld(o, c)
	if err := w.setup(ctx); err != nil {
		c.printTails(stderr)
		return fmt.Errorf("setup: %w", err)
	}
	fmt.Fprintf(stderr, "soak: %d browsers of %d users, %d tabs each, for %s\n", len(w.browsers), len(w.users), o.tabs, o.duration)
	if err := w.simulate(ctx); err != nil {
		c.printTails(stderr)
		return err
	}
	if ctx.Err() != nil {
		return errors.New("interrupted; the servers were stopped and the scratch database dropped")
	}
	fmt.Fprintln(stderr, "soak: run over; checking invariants")
	sim := w.finalChecks(ctx)
	facts, err := readDatabase(ctx, db.URL)
	if err != nil {
		c.printTails(stderr)
		return err
	}
	verdicts := evaluate(sim, facts)
	c.stop() // before the summary, so a crash on shutdown shows up in the tails
	report(stdout, w, db.Name, sim, verdicts)
	if failed := failures(verdicts); failed > 0 {
		c.printTails(stderr)
		return &violationError{failed: failed, total: len(verdicts)}
	}
	return nil
}

// violationError is a soak that ran and found an invariant violated.
type violationError struct{ failed, total int }

func (e *violationError) Error() string {
	return fmt.Sprintf("%d of %d invariants violated (see the summary above)", e.failed, e.total)
}
