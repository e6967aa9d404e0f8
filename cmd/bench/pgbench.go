package main

import (
	"bufio"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rotorauth/rotor/internal/harness"
)

// pgbenchConcs are the client counts of the pgbench reference; c=32 is the
// one SPEC §9 compares /refresh with.
var pgbenchConcs = []int{1, 8, 32}

// pgbench runs bench/pgbench/rotation.sql against a scratch database.
type pgbench struct {
	db      *harness.ScratchDB
	root    string // module root, holding bench/pgbench
	dir     string // working directory for pgbench's per-transaction logs
	runs    int    // the run number: every run walks fresh chains
	seconds int
	wait    time.Duration // statsWait
}

// runPgbench creates the reference schema and runs pgbench once per client
// count, after an unmeasured warm-up run when warmup is at least 1 s
// (pgbench -T takes whole seconds).
func runPgbench(ctx context.Context, o options, root, dir string, db *harness.ScratchDB) ([]result, error) {
	conn, err := referenceSchema(ctx, root, db)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	p := &pgbench{db: db, root: root, dir: dir, seconds: max(1, int(o.duration.Round(time.Second)/time.Second)), wait: statsWait(o)}
	if o.warmup >= time.Second {
		w := *p
		w.seconds = int(o.warmup.Round(time.Second) / time.Second)
		if _, err := w.run(ctx, conn, pgbenchConcs[len(pgbenchConcs)-1]); err != nil {
			return nil, err
		}
		p.runs = w.runs
	}
	var out []result
	for _, c := range pgbenchConcs {
		r, err := p.run(ctx, conn, c)
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

// referenceHistory is the number of used rows bench_tokens starts with.
const referenceHistory = 50000

// referenceSchema connects to db and creates the reference schema of
// bench/pgbench/schema.sql there (idempotent: pgbench and the floor share
// it). The caller closes the connection.
func referenceSchema(ctx context.Context, root string, db *harness.ScratchDB) (*pgx.Conn, error) {
	schema, err := os.ReadFile(filepath.Join(root, "bench", "pgbench", "schema.sql")) // #nosec G304 -- the module's own file
	if err != nil {
		return nil, err
	}
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, string(schema)); err != nil {
		_ = conn.Close(context.Background())
		return nil, fmt.Errorf("bench/pgbench/schema.sql: %w", err)
	}
	// Rotated history (run 0, never presented): without it the first run
	// starts on a table of a few rows, its statistics say so, and the
	// cached plan scans the table while the chains grow.
	_, err = conn.Exec(ctx, `INSERT INTO bench_tokens (hash, session_id, used)
		SELECT bench_hash(0, 0, s), s % 1000000, true FROM generate_series(1, $1) s
		ON CONFLICT DO NOTHING`, referenceHistory)
	if err == nil {
		_, err = conn.Exec(ctx, "ANALYZE bench_tokens")
	}
	if err != nil {
		_ = conn.Close(context.Background())
		return nil, fmt.Errorf("seed bench_tokens history: %w", err)
	}
	return conn, nil
}

var (
	reProcessed = regexp.MustCompile(`number of transactions actually processed: (\d+)`)
	reFailed    = regexp.MustCompile(`number of failed transactions: (\d+)`)
	reLatency   = regexp.MustCompile(`latency average = ([\d.]+) ms`)
	reTPS       = regexp.MustCompile(`tps = ([\d.]+) \(without initial connection time\)`)
)

// run seeds one active token per client for a new run number, runs pgbench
// with c clients, and checks that every transaction rotated exactly one row.
func (p *pgbench) run(ctx context.Context, conn *pgx.Conn, c int) (result, error) {
	p.runs++
	run := p.runs
	fmt.Fprintf(os.Stderr, "bench: %-12s c=%-3d %ds\n", "pgbench", c, p.seconds)
	_, err := conn.Exec(ctx, `INSERT INTO bench_tokens (hash, session_id)
		SELECT bench_hash($1, c, 0), $1 * 1000000 + c FROM generate_series(0, $2 - 1) c`, run, c)
	if err == nil {
		_, err = conn.Exec(ctx, "VACUUM ANALYZE bench_tokens")
	}
	if err != nil {
		return result{}, fmt.Errorf("seed bench_tokens: %w", err)
	}
	logDir := filepath.Join(p.dir, fmt.Sprintf("pgbench-%d", run))
	if err := os.MkdirAll(logDir, 0o700); err != nil {
		return result{}, err
	}
	args, env, err := p.connArgs()
	if err != nil {
		return result{}, err
	}
	args = append([]string{"-n", "-M", "prepared", "-c", strconv.Itoa(c), "-j", strconv.Itoa(min(2, c)),
		"-T", strconv.Itoa(p.seconds), "-D", "run=" + strconv.Itoa(run), "-D", "step=0",
		"--log", "--log-prefix=tx", "-f", filepath.Join(p.root, "bench", "pgbench", "rotation.sql")}, args...)
	cmd := exec.CommandContext(ctx, "pgbench", args...) // #nosec G204 -- arguments built here from -pg and the module root
	cmd.Dir, cmd.Env = logDir, env
	tblBefore, tblOK := tableBefore(options{table: "bench_tokens"})
	meter := startCPU(0, p.db.Name)
	outb, err := cmd.CombinedOutput()
	usage := meter.finish()
	out := string(outb)
	if err != nil {
		return result{}, fmt.Errorf("pgbench %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	r := result{name: "pgbench rotation", conc: c, elapsed: time.Duration(p.seconds) * time.Second, cpu: usage}
	r.requests, _ = strconv.Atoi(match(reProcessed, out))
	r.errors, _ = strconv.Atoi(match(reFailed, out))
	r.rate, _ = strconv.ParseFloat(match(reTPS, out), 64)
	avg, _ := strconv.ParseFloat(match(reLatency, out), 64)
	r.avgOnly = time.Duration(avg * float64(time.Millisecond))
	if r.rate == 0 {
		return r, fmt.Errorf("could not read pgbench's output:\n%s", out)
	}
	if r.lat, err = readTxLogs(logDir); err != nil {
		return r, err
	}
	if tblOK {
		// pgbench's backends flush their statistics as they exit, at once:
		// a second covers them even with -smoke.
		r.table = tableAfter(ctx, "bench_tokens", tblBefore, int64(r.requests), max(p.wait, time.Second))
	}
	var used int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM bench_tokens WHERE used AND session_id / 1000000 = $1`, run).Scan(&used); err != nil {
		return r, err
	}
	if used != r.requests {
		r.errors += max(r.requests-used, used-r.requests)
		r.firstErr = fmt.Sprintf("pgbench: %d transactions but %d tokens rotated", r.requests, used)
	}
	return r, nil
}

// connArgs turns the scratch database URL into pgbench's connection
// arguments and libpq environment (password, sslmode).
func (p *pgbench) connArgs() ([]string, []string, error) {
	u, err := url.Parse(p.db.URL)
	if err != nil {
		return nil, nil, err
	}
	env := harness.EnvironWithout([]string{"PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGSSLMODE", "PGOPTIONS"})
	var args []string
	if h := u.Hostname(); h != "" {
		args = append(args, "-h", h)
	}
	if port := u.Port(); port != "" {
		args = append(args, "-p", port)
	}
	if u.User != nil {
		args = append(args, "-U", u.User.Username())
		if pw, ok := u.User.Password(); ok {
			env = append(env, "PGPASSWORD="+pw)
		}
	}
	if m := u.Query().Get("sslmode"); m != "" {
		env = append(env, "PGSSLMODE="+m)
	}
	return append(args, strings.TrimPrefix(u.Path, "/")), env, nil
}

func match(re *regexp.Regexp, s string) string {
	if m := re.FindStringSubmatch(s); m != nil {
		return m[1]
	}
	return ""
}

// readTxLogs reads pgbench's per-transaction logs (client, transaction,
// latency in µs, ...) and returns the sorted latencies.
func readTxLogs(dir string) ([]time.Duration, error) {
	files, err := filepath.Glob(filepath.Join(dir, "tx.*"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no pgbench transaction logs in %s", dir)
	}
	var lat []time.Duration
	for _, f := range files {
		fh, err := os.Open(f) // #nosec G304 -- pgbench's logs in our temporary directory
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 3 {
				continue
			}
			if us, err := strconv.ParseInt(fields[2], 10, 64); err == nil {
				lat = append(lat, time.Duration(us)*time.Microsecond)
			}
		}
		_ = fh.Close()
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	slices.Sort(lat)
	return lat, nil
}
