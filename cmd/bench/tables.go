package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rotorauth/rotor/internal/harness"
)

// The benchmark watches the scratch database over one connection of its own:
// the WAL position (cpu.go) and the write counters and size of the table a
// phase rotates in (sessions for Rotor, bench_tokens for the floor and
// pgbench). The HOT ratio, n_tup_hot_upd ÷ n_tup_upd of pg_stat_user_tables,
// shows whether fillfactor leaves each rotation room on its page: a HOT
// update writes no index entry, any other one writes one into every index.
//
// Those counters lag: PostgreSQL 15 backends flush their statistics at the
// end of a transaction at most once a second, and a backend that goes idle
// with statistics pending flushes them 10 s later (PGSTAT_IDLE_INTERVAL), or
// when it exits. So after a phase the benchmark polls until the table's
// update count covers the phase's successful requests (each makes at least
// one UPDATE of the table), for at most statsWait; the report says how much
// of the phase the counters covered.

// relStats are a table's cumulative update counters and its size, and the
// cluster's checkpoint count.
type relStats struct {
	upd, hot    int64 // n_tup_upd, n_tup_hot_upd
	total, heap int64 // pg_total_relation_size, pg_relation_size (bytes)
	checkpoints int64 // timed + requested since the statistics reset; -1 unknown
}

// relStatsOf reads table's relStats in the scratch database; nil (or
// false) without one. Set by watchDB.
var relStatsOf func(table string) (relStats, bool)

// checkpointQueries count the cluster's checkpoints: PostgreSQL 15 and 16,
// then 17 and later.
var checkpointQueries = []string{
	"SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter",
	"SELECT num_timed + num_requested FROM pg_stat_checkpointer",
}

// relStatsQuery reads one table's counters and size; $1 is its name.
const relStatsQuery = `SELECT coalesce(s.n_tup_upd, 0), coalesce(s.n_tup_hot_upd, 0),
	pg_total_relation_size(c.oid), pg_relation_size(c.oid)
	FROM pg_class c LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
	WHERE c.oid = to_regclass($1)`

// watchDB opens the watching connection to db and sets walPosition and
// relStatsOf; the returned function unsets them and closes it.
func watchDB(ctx context.Context, db *harness.ScratchDB) (func(), error) {
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		return nil, err
	}
	ckpt := ""
	for _, q := range checkpointQueries {
		var n int64
		if conn.QueryRow(ctx, q).Scan(&n) == nil {
			ckpt = q
			break
		}
	}
	var mu sync.Mutex
	walPosition = func() (int64, bool) {
		mu.Lock()
		defer mu.Unlock()
		qctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var pos int64
		err := conn.QueryRow(qctx, "SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn").Scan(&pos)
		return pos, err == nil
	}
	relStatsOf = func(table string) (relStats, bool) {
		mu.Lock()
		defer mu.Unlock()
		qctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s := relStats{checkpoints: -1}
		if err := conn.QueryRow(qctx, relStatsQuery, table).Scan(&s.upd, &s.hot, &s.total, &s.heap); err != nil {
			return s, false
		}
		if ckpt != "" && conn.QueryRow(qctx, ckpt).Scan(&s.checkpoints) != nil {
			s.checkpoints = -1
		}
		return s, true
	}
	return func() {
		mu.Lock()
		defer mu.Unlock()
		walPosition, relStatsOf = nil, nil
		_ = conn.Close(context.Background())
	}, nil
}

// tableUse is what one phase (warm-up included) did to its table.
type tableUse struct {
	table         string
	before, after relStats
	expected      int64 // updates the phase made at least: its successful requests
}

func (u tableUse) updates() int64    { return u.after.upd - u.before.upd }
func (u tableUse) hotUpdates() int64 { return u.after.hot - u.before.hot }

// hotRatio is the share of the phase's counted updates that were HOT; ok
// is false when none was counted.
func (u tableUse) hotRatio() (float64, bool) {
	if u.updates() <= 0 {
		return 0, false
	}
	return float64(u.hotUpdates()) / float64(u.updates()), true
}

// covered is the share of the phase's updates the counters had flushed
// when read (1 when no update was expected).
func (u tableUse) covered() float64 {
	if u.expected <= 0 {
		return 1
	}
	return min(1, float64(u.updates())/float64(u.expected))
}

// checkpoints is the number of checkpoints during the phase; -1 unknown.
func (u tableUse) checkpoints() int64 {
	if u.before.checkpoints < 0 || u.after.checkpoints < 0 {
		return -1
	}
	return u.after.checkpoints - u.before.checkpoints
}

// statsWait is how long a phase waits for the statistics of its updates:
// the 10 s idle flush and a margin for long phases, where it is small
// beside the phase; 1.5 s (most of it: each backend's last second may be
// missing) for short ones; none with -smoke.
func statsWait(o options) time.Duration {
	switch {
	case o.smoke:
		return 0
	case o.duration >= longPhase:
		return 11 * time.Second
	default:
		return 1500 * time.Millisecond
	}
}

// tableBefore reads o.table's counters before a phase; ok is false when
// the phase reports no table.
func tableBefore(o options) (relStats, bool) {
	if o.table == "" || relStatsOf == nil {
		return relStats{}, false
	}
	return relStatsOf(o.table)
}

// tableAfter reads the table's size at once, then polls its counters
// until they count expected updates more than before, or wait passes.
func tableAfter(ctx context.Context, table string, before relStats, expected int64, wait time.Duration) *tableUse {
	if relStatsOf == nil {
		return nil
	}
	u := &tableUse{table: table, before: before, expected: expected}
	start := time.Now()
	var ok bool
	if u.after, ok = relStatsOf(table); !ok {
		return nil
	}
	for u.updates() < expected && time.Since(start) < wait && ctx.Err() == nil {
		time.Sleep(250 * time.Millisecond)
		s, ok := relStatsOf(table)
		if !ok {
			break
		}
		u.after.upd, u.after.hot = s.upd, s.hot
	}
	return u
}

// mb formats a size in bytes as MB.
func mb(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/(1<<20)) }
