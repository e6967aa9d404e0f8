package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// -sessions N: before the Rotor phases, N live v2 sessions of seeded users
// are written straight into the scratch database the started server has
// migrated. PostgreSQL generates the rows (INSERT … SELECT FROM
// generate_series, seedBatch rows a statement), so the benchmark holds none
// of them. The rows look like sessions Rotor wrote: a user row each, logins
// spread over the last seedSpan (inserted in login order, as a real table
// is), a last rotation between the login and now, generation = refresh_count
// = one rotation per 15 minutes in between, a 32-byte verifier hash, a
// browser's user agent and an address, and, once rotated, last_ip and
// last_user_agent (every rotation writes them; one in ten moved address).

const (
	seedBatch = 100000
	// seedSessionsPerUser keeps every seeded user far below
	// MAX_SESSIONS_PER_USER (50), as in a real table: a handful of users
	// with a million sessions would also give sessions_user_id a few huge
	// posting lists that no real table has.
	seedSessionsPerUser = 4
	// seedSpan is how far back the oldest seeded login lies: inside the
	// default SESSION_MAX_LIFETIME (720h), so every session is live.
	seedSpan = "25 days"
)

// seedUserAgents are the seeded sessions' user agents, ~100 bytes each as
// browsers send them.
var seedUserAgents = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
	"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.67",
}

// seedUserID is the SQL expression of seeded user number n of run (both SQL
// expressions): a uuid of version 4's shape derived from md5, so a session
// names its user without a join.
func seedUserID(run, n string) string {
	return fmt.Sprintf("overlay(overlay(md5(%s || ':' || %s) placing '4' from 13) placing '8' from 17)::uuid", run, n)
}

// seedIP is the SQL expression of a random client address: IPv4, one in
// eight IPv6 (the documentation prefix).
func seedIP() string {
	oct := func(lo, n int) string { return fmt.Sprintf("(%d + floor(random() * %d))::int", lo, n) }
	hex := "to_hex(floor(random() * 65536)::int)"
	return "CASE WHEN random() < 0.125 THEN '2001:db8:' || " + hex + " || ':' || " + hex + " || '::' || " + hex +
		" ELSE " + oct(1, 223) + " || '.' || " + oct(0, 256) + " || '.' || " + oct(0, 256) + " || '.' || " + oct(1, 254) + " END"
}

// seedUsersSQL inserts seeded users $2..$3 of run $1 (text). Their password
// hash has argon2id's shape and random bytes: no password matches it.
func seedUsersSQL() string {
	b64 := func(md5s int) string {
		parts := make([]string, md5s)
		for i := range parts {
			parts[i] = "md5(random()::text)"
		}
		return "rtrim(encode(decode(" + strings.Join(parts, " || ") + ", 'hex'), 'base64'), '=')"
	}
	return `INSERT INTO users (id, email, password_hash, roles, disabled, created_at, updated_at)
SELECT ` + seedUserID("$1::text", "u") + `, 'seed-' || $1::text || '-' || u || '@example.com',
       '$argon2id$v=19$m=19456,t=2,p=1$' || ` + b64(1) + ` || '$' || ` + b64(2) + `,
       '{}', false, t, t
FROM (SELECT u, now() - interval '400 days' - random() * interval '365 days' AS t
      FROM generate_series($2::bigint, $3::bigint) u OFFSET 0) g`
}

// seedSessionsSQL inserts seeded sessions $2..$3 (of $4 in all) of run $1,
// session i belonging to user i % $5, with user agents from $6. Every
// OFFSET 0 keeps a subquery whole, so each random() is drawn once a row.
func seedSessionsSQL() string {
	return `INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, user_agent, ip,
                      active_selector, active_expires_at, prev_selector, rotated_at, client_id,
                      generation, verifier_hash, refresh_count, last_ip, last_user_agent)
SELECT gen_random_uuid(), ` + seedUserID("$1::text", "(i % $5::bigint)") + `,
       c, c, c + interval '720 hours', ua, ip,
       NULL, least(r + interval '336 hours', c + interval '720 hours'), NULL, r, NULL,
       g, decode(md5(random()::text) || md5(random()::text), 'hex'), g,
       CASE WHEN g > 0 THEN CASE WHEN random() < 0.1 THEN ` + seedIP() + ` ELSE ip END END,
       CASE WHEN g > 0 THEN ua END
FROM (SELECT i, c, ua, ip, g, CASE WHEN g > 0 THEN r ELSE c END AS r
      FROM (SELECT *, floor(extract(epoch FROM r - c) / 900)::bigint AS g
            FROM (SELECT i, c, c + random() * (now() - c) AS r,
                         ($6::text[])[1 + i % cardinality($6::text[])] AS ua,
                         ` + seedIP() + ` AS ip
                  FROM (SELECT i, now() - interval '` + seedSpan + `' * (1 - i::float8 / $4::bigint) AS c
                        FROM generate_series($2::bigint, $3::bigint) i OFFSET 0) a
                  OFFSET 0) b
            OFFSET 0) d
      OFFSET 0) e`
}

// seedBatches cuts 0..n-1 into ranges of at most size numbers (inclusive
// bounds).
func seedBatches(n, size int64) [][2]int64 {
	var out [][2]int64
	for lo := int64(0); lo < n; lo += size {
		out = append(out, [2]int64{lo, min(lo+size, n) - 1})
	}
	return out
}

// seedReport is what seeding did, for the output's header.
type seedReport struct {
	sessions, users       int64
	insert, analyze, ckpt time.Duration
	ckptErr               error
	total, heap, indexes  int64 // bytes
	reloptions            string
}

func (s seedReport) String() string {
	ck := fmt.Sprintf("CHECKPOINT %s", s.ckpt.Round(10*time.Millisecond))
	if s.ckptErr != nil {
		ck = "no CHECKPOINT: " + s.ckptErr.Error()
	}
	return fmt.Sprintf("seeded %d sessions for %d users in %s (then ANALYZE %s, %s); sessions: %s (heap %s, indexes %s), %s",
		s.sessions, s.users, s.insert.Round(10*time.Millisecond), s.analyze.Round(10*time.Millisecond), ck,
		mb(s.total), mb(s.heap), mb(s.indexes), s.reloptions)
}

// seedSessions writes n sessions (and n / seedSessionsPerUser users) into
// the migrated database at dbURL, then runs ANALYZE on sessions and users
// and a CHECKPOINT (so the seeding's dirty pages are not written during a
// measured phase; it needs superuser or pg_checkpoint and is skipped with a
// note otherwise). progress receives a line per batch.
func seedSessions(ctx context.Context, dbURL string, n int64, progress io.Writer) (seedReport, error) {
	rep := seedReport{sessions: n, users: max(1, (n+seedSessionsPerUser-1)/seedSessionsPerUser)}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return rep, err
	}
	defer conn.Close(context.Background())
	run := randHex(4)
	start := time.Now()
	for _, b := range seedBatches(rep.users, seedBatch) {
		if _, err := conn.Exec(ctx, seedUsersSQL(), run, b[0], b[1]); err != nil {
			return rep, fmt.Errorf("seed users: %w", err)
		}
	}
	for _, b := range seedBatches(n, seedBatch) {
		if _, err := conn.Exec(ctx, seedSessionsSQL(), run, b[0], b[1], n, rep.users, seedUserAgents); err != nil {
			return rep, fmt.Errorf("seed sessions: %w", err)
		}
		fmt.Fprintf(progress, "bench: seeded %d of %d sessions (%s)\n", b[1]+1, n, time.Since(start).Round(100*time.Millisecond))
	}
	rep.insert = time.Since(start)
	start = time.Now()
	if _, err := conn.Exec(ctx, "ANALYZE sessions, users"); err != nil {
		return rep, err
	}
	rep.analyze = time.Since(start)
	start = time.Now()
	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		rep.ckptErr = err
	}
	rep.ckpt = time.Since(start)
	err = conn.QueryRow(ctx, `SELECT pg_total_relation_size(oid), pg_relation_size(oid), pg_indexes_size(oid),
		coalesce(array_to_string(reloptions, ', '), 'default storage options') FROM pg_class WHERE oid = 'sessions'::regclass`).
		Scan(&rep.total, &rep.heap, &rep.indexes, &rep.reloptions)
	return rep, err
}

// seed runs seedSessions for -sessions and prints its report.
func seed(ctx context.Context, o options, dbURL string) (seedReport, error) {
	fmt.Fprintf(os.Stderr, "bench: seeding %d sessions\n", o.sessions)
	rep, err := seedSessions(ctx, dbURL, o.sessions, os.Stderr)
	if err != nil {
		return rep, fmt.Errorf("-sessions: %w", err)
	}
	fmt.Fprintln(os.Stderr, "bench:", rep)
	return rep, nil
}
