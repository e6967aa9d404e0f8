package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
