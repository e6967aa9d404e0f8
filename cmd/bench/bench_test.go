package main

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
