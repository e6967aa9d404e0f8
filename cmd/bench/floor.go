package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rotorauth/rotor/internal/harness"
)

// The floor is the cheapest HTTP rotation service there can be on this
// machine: net/http and encoding/json around the reference rotation of
// bench/pgbench/rotation.sql, one pgx statement per request, no signing,
// rules, middleware or logging. It runs as a child process of the benchmark
// (so its CPU is counted apart from the load generator's), is driven by the
// same load generator as Rotor, and its phases are interleaved with Rotor's
// /refresh phases. Rotor's /refresh ÷ floor is Rotor's overhead over the
// physical floor of an HTTP refresh.

// floorEnv names the variables that turn this binary into the floor server.
const (
	floorAddrEnv = "ROTOR_BENCH_FLOOR_ADDR"
	floorDBEnv   = "ROTOR_BENCH_FLOOR_DB"
	floorSQLEnv  = "ROTOR_BENCH_FLOOR_SQL"
)

// floorRunBase offsets the floor's run numbers from pgbench's, so both can
// share bench_tokens.
const floorRunBase = 1000

// unknownVariable finds a pgbench variable left in a statement (not a
// ::type cast).
var unknownVariable = regexp.MustCompile(`(^|[^:]):[a-z_]+`)

// floorStatement turns rotation.sql (a pgbench script with :run, :client_id,
// :step and :next) into one parameterised statement: $1 run, $2 client,
// $3 step. It returns the successor's session id, so a request that rotated
// nothing is seen as a failure.
func floorStatement(script string) (string, error) {
	var b strings.Builder
	for _, line := range strings.Split(script, "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "--") || strings.HasPrefix(t, `\`) {
			continue
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	s := strings.TrimSpace(b.String())
	s = strings.TrimSuffix(s, ";")
	s = strings.NewReplacer(":run", "$1", ":client_id", "$2", ":step", "$3", ":next", "($3 + 1)").Replace(s)
	if unknownVariable.MatchString(s) {
		return "", fmt.Errorf("rotation.sql: unknown variable in %q", s)
	}
	if !strings.Contains(s, "$1") || !strings.Contains(s, "$3") {
		return "", errors.New("rotation.sql: expected :run and :step")
	}
	return s + "\nRETURNING session_id", nil
}

// floorToken names step of client's chain in run; the floor's tokens carry
// no secret, they only stand in for the bytes a client presents.
func floorToken(run, client, step int64) string {
	return "fl_" + strconv.FormatInt(run, 10) + "_" + strconv.FormatInt(client, 10) + "_" + strconv.FormatInt(step, 10)
}

// parseFloorToken is floorToken's inverse.
func parseFloorToken(s string) (run, client, step int64, ok bool) {
	f := strings.Split(strings.TrimPrefix(s, "fl_"), "_")
	if len(f) != 3 || !strings.HasPrefix(s, "fl_") {
		return 0, 0, 0, false
	}
	var n [3]int64
	for i, p := range f {
		v, err := strconv.ParseInt(p, 10, 64)
		if err != nil || v < 0 {
			return 0, 0, 0, false
		}
		n[i] = v
	}
	return n[0], n[1], n[2], true
}

// floorHandler answers POST /refresh {"refresh_token": ...} like Rotor's
// (200 with access_token and refresh_token, 401 invalid_grant) and
// GET /readyz.
func floorHandler(pool *pgxpool.Pool, stmt string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("POST /refresh", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			RefreshToken string `json:"refresh_token"`
		}
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_request"})
			return
		}
		run, client, step, ok := parseFloorToken(req.RefreshToken)
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant"})
			return
		}
		var session int64
		err := pool.QueryRow(r.Context(), stmt, run, client, step).Scan(&session)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			w.WriteHeader(http.StatusUnauthorized)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant"})
		case err != nil:
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "unavailable"})
		default:
			_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "floor", "token_type": "Bearer",
				"refresh_token": floorToken(run, client, step+1), "session_id": session})
		}
	})
	return mux
}

// serveFloor is the child process: it serves the floor until SIGTERM.
func serveFloor() error {
	addr, dbURL, stmt := os.Getenv(floorAddrEnv), os.Getenv(floorDBEnv), os.Getenv(floorSQLEnv)
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return err
	}
	cfg.MaxConns = int32(refreshConcs[len(refreshConcs)-1]) // #nosec G115 -- a small constant
	ctx, stop := signalContext()
	defer stop()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	srv := &http.Server{Addr: addr, Handler: floorHandler(pool, stmt), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// floor is a started floor server and the bench_tokens it rotates.
type floor struct {
	*server
	conn *pgx.Conn
	runs int64 // the last run number used
}

// startFloor creates the reference schema in db (shared with pgbench),
// starts this binary again as the floor server and waits for it.
func startFloor(ctx context.Context, root, dir string, db *harness.ScratchDB) (*floor, error) {
	script, err := os.ReadFile(filepath.Join(root, "bench", "pgbench", "rotation.sql")) // #nosec G304 -- the module's own file
	if err != nil {
		return nil, err
	}
	stmt, err := floorStatement(string(script))
	if err != nil {
		return nil, err
	}
	conn, err := referenceSchema(ctx, root, db)
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		_ = conn.Close(context.Background())
		return nil, err
	}
	addr, err := harness.FreePort()
	if err != nil {
		_ = conn.Close(context.Background())
		return nil, err
	}
	cmd := exec.Command(self) // #nosec G204 -- this very binary
	cmd.Env = append(os.Environ(), floorAddrEnv+"="+addr, floorDBEnv+"="+db.URL, floorSQLEnv+"="+stmt)
	srv, err := launch(ctx, cmd, "floor server", "http://"+addr, filepath.Join(dir, "floor.log"), 30*time.Second)
	if err != nil {
		_ = conn.Close(context.Background())
		return nil, err
	}
	return &floor{server: srv, conn: conn, runs: floorRunBase}, nil
}

// stop stops the floor server and closes the seeding connection.
func (f *floor) stop() {
	f.server.stop()
	_ = f.conn.Close(context.Background())
}

// phase seeds one chain per worker for a new run and drives the floor's
// /refresh with conc workers, each presenting the token its previous
// request returned. Afterwards it checks that the database rotated exactly
// as many tokens as requests succeeded.
func (f *floor) phase(ctx context.Context, o options, conc int) (result, error) {
	f.runs++
	run := f.runs
	_, err := f.conn.Exec(ctx, `INSERT INTO bench_tokens (hash, session_id)
		SELECT bench_hash($1, c, 0), $1 * 1000000 + c FROM generate_series(0, $2 - 1) c`, run, conc)
	if err == nil {
		_, err = f.conn.Exec(ctx, "VACUUM ANALYZE bench_tokens")
	}
	if err != nil {
		return result{}, fmt.Errorf("seed bench_tokens for the floor: %w", err)
	}
	c := newClient(f.base, conc)
	defer c.close()
	next := make([]string, conc)
	for w := range next {
		next[w] = floorToken(run, int64(w), 0)
	}
	var ok atomic.Int64
	fo := o
	fo.serverPID, fo.table = f.cmd.Process.Pid, "bench_tokens"
	r := runPhase(ctx, fo, "floor /refresh", conc, func(ctx context.Context, w int) error {
		t, err := c.refresh(ctx, next[w])
		if err != nil {
			return err
		}
		next[w] = t.RefreshToken
		ok.Add(1)
		return nil
	})
	var used int64
	if err := f.conn.QueryRow(ctx, `SELECT count(*) FROM bench_tokens WHERE used AND session_id / 1000000 = $1`, run).Scan(&used); err != nil {
		return r, err
	}
	if used != ok.Load() {
		r.errors++
		r.firstErr = fmt.Sprintf("floor: %d successful requests but %d tokens rotated", ok.Load(), used)
	}
	return r, nil
}

// signalContext is cancelled by SIGTERM or Ctrl-C.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}
