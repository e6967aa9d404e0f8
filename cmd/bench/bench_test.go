package main

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rotorauth/rotor/internal/harness"
)

func TestPercentileNearestRank(t *testing.T) {
	r := result{}
	for i := 1; i <= 100; i++ {
		r.lat = append(r.lat, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {0.1, time.Millisecond}} {
		if got := r.pct(c.p); got != c.want {
			t.Errorf("pct(%v) = %v, want %v", c.p, got, c.want)
		}
	}
	if got := (result{}).pct(99); got != 0 {
		t.Errorf("pct of no samples = %v, want 0", got)
	}
}

func TestTokensFromAnswer(t *testing.T) {
	body := []byte(`{"access_token":"eyJ.a.b","token_type":"Bearer","expires_in":900,"refresh_token":"rt_AbC-_9","refresh_token_expires_in":1,"session_id":"x"}`)
	tr, err := tokens("/refresh", body)
	if err != nil || tr.AccessToken != "eyJ.a.b" || tr.RefreshToken != "rt_AbC-_9" {
		t.Fatalf("tokens = %+v, %v", tr, err)
	}
	// An escaped value falls back to the JSON decoder.
	tr, err = tokens("/refresh", []byte(`{"access_token":"a\/b","refresh_token":"r"}`))
	if err != nil || tr.AccessToken != "a/b" {
		t.Fatalf("escaped: %+v, %v", tr, err)
	}
	if _, err := tokens("/refresh", []byte(`{"error":"invalid_grant"}`)); err == nil {
		t.Fatal("an answer without tokens was accepted")
	}
}

func TestPgbenchSummaryAndLogs(t *testing.T) {
	out := `number of transactions actually processed: 87665
number of failed transactions: 0 (0.000%)
latency average = 2.941 ms
initial connection time = 54.589 ms
tps = 8760.245 (without initial connection time)`
	if match(reProcessed, out) != "87665" || match(reFailed, out) != "0" ||
		match(reLatency, out) != "2.941" || match(reTPS, out) != "8760.245" {
		t.Fatal("pgbench summary not parsed")
	}
	dir := t.TempDir()
	logs := "0 1 2414 0 1795340617 934480\n1 1 800 0 1795340617 934505\n2 1 failed 0 1795340617 934511\n"
	if err := os.WriteFile(filepath.Join(dir, "tx.123"), []byte(logs), 0o600); err != nil {
		t.Fatal(err)
	}
	lat, err := readTxLogs(dir)
	if err != nil || len(lat) != 2 || lat[0] != 800*time.Microsecond || lat[1] != 2414*time.Microsecond {
		t.Fatalf("readTxLogs = %v, %v", lat, err)
	}
}

func TestProcCPU(t *testing.T) {
	dir := t.TempDir()
	stat := "4242 (post gres) S 1 2 3 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 5 0 0\n"
	if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o600); err != nil {
		t.Fatal(err)
	}
	comm, d, ok := procCPU(dir)
	if !ok || comm != "post gres" || d != 300*clockTick {
		t.Fatalf("procCPU = %q, %v, %v", comm, d, ok)
	}
}

func TestWantPhases(t *testing.T) {
	o := options{only: "me, pgbench"}
	if !o.want("me") || !o.want("pgbench") || o.want("refresh") {
		t.Fatal("-only not honoured")
	}
	if !(options{}).want("refresh") {
		t.Fatal("without -only every phase runs")
	}
}

func TestFloorStatementFromReferenceScript(t *testing.T) {
	script, err := os.ReadFile(filepath.Join("..", "..", "bench", "pgbench", "rotation.sql"))
	if err != nil {
		t.Fatal(err)
	}
	stmt, err := floorStatement(string(script))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"UPDATE bench_tokens", "bench_hash($1, $2, $3)", "bench_hash($1, $2, ($3 + 1))", "RETURNING session_id"} {
		if !strings.Contains(stmt, want) {
			t.Errorf("floor statement lacks %q:\n%s", want, stmt)
		}
	}
	if strings.Contains(stmt, `\set`) || strings.Contains(stmt, "--") || strings.Contains(stmt, ";") {
		t.Errorf("pgbench meta-commands, comments or ';' left in:\n%s", stmt)
	}
	if _, err := floorStatement(`SELECT :unknown`); err == nil {
		t.Error("a script with an unknown variable was accepted")
	}
	if _, err := floorStatement(`SELECT bench_hash(:run, :client_id, :step)::text`); err != nil {
		t.Errorf("a ::type cast was taken for a variable: %v", err)
	}
}

func TestFloorTokens(t *testing.T) {
	run, client, step, ok := parseFloorToken(floorToken(1001, 31, 12345))
	if !ok || run != 1001 || client != 31 || step != 12345 {
		t.Fatalf("round trip = %d %d %d %v", run, client, step, ok)
	}
	for _, bad := range []string{"", "fl_", "fl_1_2", "fl_1_2_3_4", "rt_1_2_3", "fl_1_-2_3", "fl_a_b_c"} {
		if _, _, _, ok := parseFloorToken(bad); ok {
			t.Errorf("parseFloorToken(%q) accepted", bad)
		}
	}
}

// TestFloorHandlerOnPostgres drives the floor's handler over the reference
// schema: a token rotates once, its replay and a forged token are refused.
func TestFloorHandlerOnPostgres(t *testing.T) {
	pgURL := os.Getenv("TEST_DATABASE_URL")
	if pgURL == "" {
		if os.Getenv("REQUIRE_POSTGRES") == "1" {
			t.Fatal("REQUIRE_POSTGRES=1 but TEST_DATABASE_URL is not set")
		}
		t.Skip("TEST_DATABASE_URL not set: skipping the floor on PostgreSQL")
	}
	ctx := context.Background()
	db, err := harness.CreateScratch(ctx, pgURL, "rotor_bench_test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Drop(); err != nil {
			t.Error(err)
		}
	})
	conn, err := referenceSchema(ctx, filepath.Join("..", ".."), db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `INSERT INTO bench_tokens (hash, session_id) VALUES (bench_hash(1001, 0, 0), 1001000000)`); err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile(filepath.Join("..", "..", "bench", "pgbench", "rotation.sql"))
	if err != nil {
		t.Fatal(err)
	}
	stmt, err := floorStatement(string(script))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pgxpool.ParseConfig(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	srv := httptest.NewServer(floorHandler(pool, stmt))
	defer srv.Close()
	c := newClient(srv.URL, 1)
	defer c.close()

	first := floorToken(1001, 0, 0)
	tr, err := c.refresh(ctx, first)
	if err != nil || tr.RefreshToken != floorToken(1001, 0, 1) {
		t.Fatalf("first rotation = %+v, %v", tr, err)
	}
	if _, err := c.refresh(ctx, tr.RefreshToken); err != nil {
		t.Fatalf("the successor did not rotate: %v", err)
	}
	for _, bad := range []string{first, floorToken(1001, 0, 7), "rt_nonsense"} {
		if _, err := c.refresh(ctx, bad); err == nil || !strings.Contains(err.Error(), "status 401") {
			t.Errorf("refresh(%q) = %v, want 401", bad, err)
		}
	}
	var used int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM bench_tokens WHERE used AND session_id = 1001000000`).Scan(&used); err != nil || used != 2 {
		t.Fatalf("%d tokens of the chain used (%v), want 2", used, err)
	}
}

func TestStabilityOf(t *testing.T) {
	st, ok := stabilityOf([]float64{100, 90, 110, 95, 80})
	if !ok || st.n != 5 || st.min != 80 || st.median != 95 || st.max != 110 {
		t.Fatalf("odd: %+v %v", st, ok)
	}
	if st.spread != 110.0/80 || st.trend != 0.8 {
		t.Fatalf("spread %v trend %v", st.spread, st.trend)
	}
	if st, _ := stabilityOf([]float64{4, 1, 3, 2}); st.median != 2.5 || st.trend != 0.5 {
		t.Fatalf("even: %+v", st)
	}
	if st, _ := stabilityOf([]float64{0, 10}); !math.IsInf(st.spread, 1) || !math.IsInf(st.trend, 1) {
		t.Fatalf("an empty interval: %+v", st)
	}
	if _, ok := stabilityOf([]float64{1}); ok {
		t.Fatal("one interval summarised")
	}
	if !strings.Contains(st.String(), "max ÷ min 1.38; last ÷ first 0.80") {
		t.Fatalf("String = %q", st.String())
	}
}

func TestIntervalsOn(t *testing.T) {
	for _, c := range []struct {
		duration, interval time.Duration
		want               bool
	}{{5 * time.Minute, 10 * time.Second, true}, {time.Minute, 10 * time.Second, true},
		{59 * time.Second, 10 * time.Second, false}, {10 * time.Second, 0, false}, {6 * time.Second, time.Second, true}} {
		if got := intervalsOn(options{duration: c.duration, interval: c.interval}); got != c.want {
			t.Errorf("intervalsOn(%s, %s) = %v", c.duration, c.interval, got)
		}
	}
}

func TestTableUseAndIntervalLine(t *testing.T) {
	u := tableUse{table: "sessions", before: relStats{upd: 100, hot: 90, total: 1 << 20, checkpoints: 3},
		after: relStats{upd: 1100, hot: 1080, total: 3 << 20, checkpoints: 4}, expected: 1250}
	if h, ok := u.hotRatio(); !ok || h != 0.99 {
		t.Fatalf("hotRatio = %v %v", h, ok)
	}
	if u.covered() != 0.8 || u.checkpoints() != 1 {
		t.Fatalf("covered %v checkpoints %d", u.covered(), u.checkpoints())
	}
	if _, ok := (tableUse{}).hotRatio(); ok {
		t.Fatal("a ratio without updates")
	}
	if (tableUse{before: relStats{checkpoints: -1}}).checkpoints() != -1 {
		t.Fatal("unknown checkpoints counted")
	}
	line := intervalLine("POST /refresh", 32, interval{end: 20 * time.Second, requests: 51234, errors: 2, rate: 5123.4,
		p50: 5900 * time.Microsecond, p99: 12300 * time.Microsecond, table: &u})
	for _, want := range []string{"c=32 ", "   20s", "5123 req/s", "p50 5.90 ms", "p99 12.30 ms", "errors 2",
		"sessions: HOT 99.0% of 1000 updates, 3.0 MB, 1 checkpoint(s)"} {
		if !strings.Contains(line, want) {
			t.Errorf("interval line lacks %q: %s", want, line)
		}
	}
}

// TestRunPhaseIntervals runs a phase of a fake request long enough for six
// intervals: each is reported, and together they account for the phase.
func TestRunPhaseIntervals(t *testing.T) {
	o := options{duration: 1200 * time.Millisecond, interval: 200 * time.Millisecond, warmup: 100 * time.Millisecond}
	var n atomic.Int64
	r := runPhase(context.Background(), o, "fake", 2, func(ctx context.Context, w int) error {
		time.Sleep(time.Millisecond)
		if n.Add(1)%50 == 0 {
			return errors.New("every 50th fails")
		}
		return nil
	})
	if len(r.interval) != 6 {
		t.Fatalf("%d intervals, want 6: %+v", len(r.interval), r.interval)
	}
	sum, errs := 0, 0
	for i, iv := range r.interval {
		sum += iv.requests
		errs += iv.errors
		if iv.requests == 0 || iv.rate <= 0 || iv.p50 < time.Millisecond || iv.p99 < iv.p50 {
			t.Errorf("interval %d: %+v", i, iv)
		}
		if want := time.Duration(i+1) * o.interval; iv.end < want || iv.end > want+100*time.Millisecond {
			t.Errorf("interval %d ends at %s, want %s", i, iv.end, want)
		}
	}
	// The intervals cover the measured window but for the requests that
	// ended after the last tick.
	if sum > r.requests || sum < r.requests-4 || errs > r.errors {
		t.Errorf("intervals count %d requests, %d errors; the phase %d, %d", sum, errs, r.requests, r.errors)
	}
	if int64(r.ok+r.errors) != n.Load() {
		t.Errorf("ok %d + errors %d ≠ %d requests made", r.ok, r.errors, n.Load())
	}
	if r.table != nil {
		t.Error("a table reported for a phase without one")
	}
}

func TestSeedBatchesAndSQL(t *testing.T) {
	got := seedBatches(250001, 100000)
	want := [][2]int64{{0, 99999}, {100000, 199999}, {200000, 250000}}
	if !slices.Equal(got, want) {
		t.Fatalf("seedBatches = %v", got)
	}
	if seedBatches(0, 10) != nil || len(seedBatches(10, 10)) != 1 {
		t.Fatal("edge cases")
	}
	for name, q := range map[string]string{"users": seedUsersSQL(), "sessions": seedSessionsSQL()} {
		if !strings.Contains(q, "generate_series($2::bigint, $3::bigint)") || strings.Contains(q, "gen_random_bytes") ||
			strings.Contains(q, "pgcrypto") || strings.Count(q, "(") != strings.Count(q, ")") {
			t.Errorf("%s statement:\n%s", name, q)
		}
	}
	s := seedSessionsSQL()
	for _, want := range []string{"$4::bigint", "$5::bigint", "$6::text[]", "gen_random_uuid()", "verifier_hash",
		"decode(md5(random()::text) || md5(random()::text), 'hex')", "client_id"} {
		if !strings.Contains(s, want) {
			t.Errorf("sessions statement lacks %q", want)
		}
	}
	// The INSERT names as many columns as the SELECT yields.
	cols := s[strings.Index(s, "(")+1 : strings.Index(s, ")")]
	sel := s[strings.Index(s, "SELECT ")+len("SELECT ") : strings.Index(s, "\nFROM (SELECT i, c,")]
	if nc, ns := len(strings.Split(cols, ",")), topLevelCommas(sel)+1; nc != ns || nc != 17 {
		t.Errorf("%d columns, %d values", nc, ns)
	}
	for _, ua := range seedUserAgents {
		if len(ua) < 80 || len(ua) > 140 || strings.Contains(ua, "'") {
			t.Errorf("user agent %q", ua)
		}
	}
}

// topLevelCommas counts the commas of s outside parentheses and quotes.
func topLevelCommas(s string) int {
	n, depth, quoted := 0, 0, false
	for _, r := range s {
		switch {
		case r == '\'':
			quoted = !quoted
		case quoted:
		case r == '(':
			depth++
		case r == ')':
			depth--
		case r == ',' && depth == 0:
			n++
		}
	}
	return n
}

// TestSeedBesideRealSessions seeds sessions into the database of a real
// server: they are live v2 sessions of real users, a seeded row's update is
// HOT and counted, and a login and two refreshes still work beside them.
func TestSeedBesideRealSessions(t *testing.T) {
	pgURL := os.Getenv("TEST_DATABASE_URL")
	if pgURL == "" {
		if os.Getenv("REQUIRE_POSTGRES") == "1" {
			t.Fatal("REQUIRE_POSTGRES=1 but TEST_DATABASE_URL is not set")
		}
		t.Skip("TEST_DATABASE_URL not set: skipping seeding on PostgreSQL")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db, err := harness.CreateScratch(ctx, pgURL, "rotor_bench_test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Drop(); err != nil {
			t.Error(err)
		}
	})
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := startServer(ctx, root, t.TempDir(), db.URL, "admin-"+randHex(4)+"@example.com", "pw-"+randHex(12))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.stop()
	const n = 1000
	rep, err := seedSessions(ctx, db.URL, n, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if rep.users != n/seedSessionsPerUser || rep.total <= rep.heap || rep.indexes <= 0 || !strings.Contains(rep.String(), "seeded 1000 sessions for 250 users") {
		t.Fatalf("report: %+v", rep)
	}
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var bad int
	err = conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE NOT (
		    s.expires_at > now() AND s.created_at <= now() AND s.last_used_at = s.created_at
		    AND s.rotated_at BETWEEN s.created_at AND now() AND s.revoked_at IS NULL AND s.client_id IS NULL
		    AND s.active_selector IS NULL AND s.prev_selector IS NULL
		    AND octet_length(s.verifier_hash) = 32 AND s.generation = s.refresh_count AND s.generation >= 0
		    AND octet_length(s.user_agent) BETWEEN 80 AND 140 AND s.ip <> ''
		    AND s.active_expires_at = least(s.rotated_at + interval '336 hours', s.expires_at)
		    AND (s.generation = 0) = (s.last_ip IS NULL) AND (s.generation = 0) = (s.last_user_agent IS NULL)
		    AND (s.generation > 0 OR s.rotated_at = s.created_at)))
		  + (SELECT count(*) FROM sessions x LEFT JOIN users u ON u.id = x.user_id WHERE u.id IS NULL)
		  + abs(count(*) - $1) + abs(count(DISTINCT s.user_id) - $2) + abs(count(DISTINCT s.verifier_hash) - $1)
		FROM sessions s JOIN users u ON u.id = s.user_id AND u.email LIKE 'seed-%'`, n, n/seedSessionsPerUser).Scan(&bad)
	if err != nil || bad != 0 {
		t.Fatalf("%d anomalies in the seeded sessions (%v)", bad, err)
	}

	// A seeded row rotated in place is a HOT update, and the watcher counts
	// it once the updating backend exits.
	stop, err := watchDB(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	before, ok := relStatsOf("sessions")
	if !ok || before.total != rep.total {
		t.Fatalf("relStatsOf = %+v %v, want total %d", before, ok, rep.total)
	}
	upd, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := upd.Exec(ctx, `UPDATE sessions SET generation = generation + 1, refresh_count = refresh_count + 1,
		rotated_at = now(), verifier_hash = decode(md5('a') || md5('b'), 'hex')
		WHERE id = (SELECT id FROM sessions ORDER BY id LIMIT 1)`); err != nil {
		t.Fatal(err)
	}
	_ = upd.Close(ctx)
	u := tableAfter(ctx, "sessions", before, 1, 5*time.Second)
	if u == nil || u.updates() != 1 || u.hotUpdates() != 1 || u.covered() != 1 {
		t.Fatalf("after one HOT update: %+v", u)
	}

	c := newClient(srv.base, 1)
	defer c.close()
	users, err := createUsers(ctx, c, 1)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		tr, err := c.refresh(ctx, users[0].refresh)
		if err != nil {
			t.Fatalf("refresh beside %d seeded sessions: %v", n, err)
		}
		users[0].refresh, users[0].access = tr.RefreshToken, tr.AccessToken
	}
	if err := c.me(ctx, users[0].access); err != nil {
		t.Fatal(err)
	}
}

func TestParseConcs(t *testing.T) {
	if cs, err := parseConcs("1, 8,32"); err != nil || len(cs) != 3 || cs[0] != 1 || cs[2] != 32 {
		t.Fatalf("parseConcs(1, 8,32) = %v, %v", cs, err)
	}
	if cs, err := parseConcs("32"); err != nil || len(cs) != 1 || cs[0] != 32 {
		t.Fatalf("parseConcs(32) = %v, %v", cs, err)
	}
	for _, bad := range []string{"", "0", "8,1", "8,8", "x", "1,,8", "257"} {
		if _, err := parseConcs(bad); err == nil {
			t.Errorf("parseConcs(%q) accepted", bad)
		}
	}
}
