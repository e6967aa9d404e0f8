#!/usr/bin/env bash
# Which fillfactor should the sessions table have? Since rotation v2 every
# refresh is one UPDATE of the session's row by primary key that changes no
# indexed column (internal/store/postgres/sessions.go, sqlRotateActive), so it
# is a HOT update whenever the row's page has room for the new version.
#
# For each fillfactor and each access pattern this script, in a scratch
# database rotor_ff_<random> migrated by `go run ./cmd/server migrate up`:
#   1. empties sessions, sets its fillfactor (ALTER TABLE sessions SET
#      (fillfactor = N)) and only then fills it with the same SESSIONS
#      realistic rows (so pages are packed to N%), ANALYZE, CHECKPOINT;
#   2. runs pgbench for DURATION seconds (-c CLIENTS -j THREADS -M prepared),
#      each transaction rotating one session with sqlRotateActive verbatim
#      (pgbench variables in place of its parameters):
#        uniform  a uniformly random session (of those the fast path can
#                 rotate, below)
#        hot      a uniformly random one of HOT_SET sessions scattered over
#                 the table (active users refreshing every few minutes)
#        uniform+held, hot+held
#                 the same while another connection holds a REPEATABLE READ
#                 snapshot for the whole run (a pg_dump, a long report, a
#                 standby's hot_standby_feedback): pruning cannot remove the
#                 versions the run leaves dead, so only the page's free space
#                 takes new versions. pgbench then runs CLIENTS-1 clients, so
#                 the connections stay at CLIENTS.
#   3. records tps, the table's updates and HOT updates (pg_stat_user_tables
#      deltas), rotations done (sum(refresh_count) delta), heap and index
#      sizes before and after, dead tuples and free space after
#      (pgstattuple_approx, which does not prune), WAL bytes and full-page
#      images per transaction (cluster-wide: other databases' WAL counts too)
#      and the checkpoints during the run.
# The rows are generated once, as cmd/bench/seed.go generates them (set-based
# INSERT ... SELECT FROM generate_series in batches of 100,000, SESSIONS/4
# users), into a staging table ff_seed, and copied into sessions in insertion
# order, in batches, for every run: every fillfactor and pattern starts from
# identical rows and identical hot sessions.
#
# Usage (from anywhere; PostgreSQL via PGHOST/PGPORT/PGUSER, default
# 127.0.0.1:5432 as postgres):
#   bench/pgbench/fillfactor.sh
#   SESSIONS=100000 DURATION=10 FILLFACTORS="100 70" PATTERNS=uniform bench/pgbench/fillfactor.sh
#   FILLFACTORS="90 80 70 50" PATTERNS="uniform+held hot+held" bench/pgbench/fillfactor.sh
# Progress goes to stderr, the result table to stdout (and, with
# RESULTS=file, tab-separated to that file). The scratch database is dropped
# at the end, on error and on interrupt. Needs the pgstattuple extension
# (postgresql-contrib) and a superuser (CHECKPOINT, CREATE EXTENSION).
set -euo pipefail

SESSIONS=${SESSIONS:-1000000}
DURATION=${DURATION:-60}
CLIENTS=${CLIENTS:-16}
THREADS=${THREADS:-2}
FILLFACTORS=${FILLFACTORS:-100 90 80 70 50}
PATTERNS=${PATTERNS:-uniform hot}
HOT_SET=${HOT_SET:-10000}
MOVED=${MOVED:-0.05} # share of rotations whose caller has a new address
RESULTS=${RESULTS:-}
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}

cd "$(dirname "$0")/../.."
DB=rotor_ff_$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
WORK=$(mktemp -d)
BENCH_PID=
HOLD_PID=

log() { printf 'fillfactor: %s\n' "$*" >&2; }
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [[ -n $BENCH_PID ]]; then kill "$BENCH_PID" 2>/dev/null || true; wait "$BENCH_PID" 2>/dev/null || true; fi
	if [[ -n $HOLD_PID ]]; then kill "$HOLD_PID" 2>/dev/null || true; wait "$HOLD_PID" 2>/dev/null || true; fi
	psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >&2 || log "could not drop $DB"
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PSQL=(psql -X -q -v ON_ERROR_STOP=1 -d "$DB")
q() { "${PSQL[@]}" -At -F '|' -c "$1"; } # one query, unaligned

log "scratch database $DB; $SESSIONS sessions, ${DURATION}s runs at -c $CLIENTS -j $THREADS, fillfactors $FILLFACTORS, patterns $PATTERNS"
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE $DB"
DATABASE_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$DB?sslmode=disable" go run ./cmd/server migrate up >"$WORK/migrate.log" 2>&1 ||
	{ cat "$WORK/migrate.log" >&2; exit 1; }
log "$(tail -n 1 "$WORK/migrate.log")"
q "CREATE EXTENSION pgstattuple" >/dev/null

# --- the rows, generated once (cmd/bench/seed.go's SQL) ---------------------

cat >"$WORK/users.sql" <<'SQL'
INSERT INTO users (id, email, password_hash, roles, disabled, created_at, updated_at)
SELECT overlay(overlay(md5(:'run' || ':' || u) placing '4' from 13) placing '8' from 17)::uuid,
       'seed-' || :'run' || '-' || u || '@example.com',
       '$argon2id$v=19$m=19456,t=2,p=1$' || rtrim(encode(decode(md5(random()::text), 'hex'), 'base64'), '=')
         || '$' || rtrim(encode(decode(md5(random()::text) || md5(random()::text), 'hex'), 'base64'), '='),
       '{}', false, t, t
FROM (SELECT u, now() - interval '400 days' - random() * interval '365 days' AS t
      FROM generate_series(:lo::bigint, :hi::bigint) u OFFSET 0) g;
SQL
# seedIP() of seed.go: IPv4, one in eight IPv6 (documentation prefix).
IP="CASE WHEN random() < 0.125 THEN '2001:db8:' || to_hex(floor(random() * 65536)::int) || ':' || to_hex(floor(random() * 65536)::int) || '::' || to_hex(floor(random() * 65536)::int) ELSE (1 + floor(random() * 223))::int || '.' || floor(random() * 256)::int || '.' || floor(random() * 256)::int || '.' || (1 + floor(random() * 254))::int END"
cat >"$WORK/sessions.sql" <<SQL
INSERT INTO ff_seed (ord, id, user_id, created_at, last_used_at, expires_at, user_agent, ip,
                     active_selector, active_expires_at, prev_selector, rotated_at, client_id,
                     generation, verifier_hash, refresh_count, last_ip, last_user_agent)
SELECT i, gen_random_uuid(), overlay(overlay(md5(:'run' || ':' || (i % :users::bigint)) placing '4' from 13) placing '8' from 17)::uuid,
       c, c, c + interval '720 hours', ua, ip,
       NULL, least(r + interval '336 hours', c + interval '720 hours'), NULL, r, NULL,
       g, decode(md5(random()::text) || md5(random()::text), 'hex'), g,
       CASE WHEN g > 0 THEN CASE WHEN random() < 0.1 THEN $IP ELSE ip END END,
       CASE WHEN g > 0 THEN ua END
FROM (SELECT i, c, ua, ip, g, CASE WHEN g > 0 THEN r ELSE c END AS r
      FROM (SELECT *, floor(extract(epoch FROM r - c) / 900)::bigint AS g
            FROM (SELECT i, c, c + random() * (now() - c) AS r,
                         (ARRAY['Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36',
                                'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15',
                                'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1',
                                'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36',
                                'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0',
                                'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.67'])[1 + i % 6] AS ua,
                         $IP AS ip
                  FROM (SELECT i, now() - interval '25 days' * (1 - i::float8 / :n::bigint) AS c
                        FROM generate_series(:lo::bigint, :hi::bigint) i OFFSET 0) a
                  OFFSET 0) b
            OFFSET 0) d
      OFFSET 0) e;
SQL

BATCH=100000
USERS=$(((SESSIONS + 3) / 4))
RUN=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
t0=$SECONDS
for ((lo = 0; lo < USERS; lo += BATCH)); do
	"${PSQL[@]}" -v run="$RUN" -v lo=$lo -v hi=$((lo + BATCH < USERS ? lo + BATCH - 1 : USERS - 1)) -f "$WORK/users.sql"
done
q "CREATE TABLE ff_seed (ord bigint NOT NULL, LIKE sessions)"
for ((lo = 0; lo < SESSIONS; lo += BATCH)); do
	"${PSQL[@]}" -v run="$RUN" -v users=$USERS -v n="$SESSIONS" -v lo=$lo \
		-v hi=$((lo + BATCH < SESSIONS ? lo + BATCH - 1 : SESSIONS - 1)) -f "$WORK/sessions.sql"
done
# ff_pick: 1..PICKS -> session id in random order, so picks 1..HOT_SET are
# HOT_SET sessions scattered over the whole table. Only sessions the fast
# path can rotate are picked: about 11.5% of the seeded ones were last
# rotated more than 14 days ago, so their active token has expired and
# sqlRotateActive rightly rotates nothing (they stay in the table, as in a
# real one, but a transaction that picked them would write nothing).
q "CREATE INDEX ff_seed_ord ON ff_seed (ord);
   CREATE TABLE ff_pick (n int PRIMARY KEY, id uuid NOT NULL);
   INSERT INTO ff_pick SELECT row_number() OVER (ORDER BY random()), id FROM ff_seed
   WHERE active_expires_at > now() + interval '1 day' AND expires_at > now() + interval '1 day';
   ANALYZE users, ff_seed, ff_pick" >/dev/null
PICKS=$(q "SELECT count(*) FROM ff_pick")
log "generated $SESSIONS sessions for $USERS users in $((SECONDS - t0))s; $PICKS of them rotatable (picked from)"

COLS="id, user_id, created_at, last_used_at, expires_at, revoked_at, revoked_reason, user_agent, ip, active_selector,
      active_expires_at, prev_selector, rotated_at, client_id, generation, verifier_hash, refresh_count, last_ip, last_user_agent"

# --- the rotation: sqlRotateActive verbatim ---------------------------------
# The first statement stands in for the client's token and the server's
# clock: it reads the picked session's id, generation, verifier hash and
# issue time (the token), the clock, a new verifier hash, and the caller
# (the session's last address and user agent; a new address for MOVED of
# the rotations, which then also writes the session_moved audit event).
# The second is sqlRotateActive with :variables for $1..$14 (pgbench makes
# each occurrence a parameter of its own, so the audit CTE's two uses of $3,
# typed by its other uses in the server's statement, are cast here).
cat >"$WORK/rotate.sql" <<SQL
\set n random(1, :picks)
SELECT s.id AS sid, s.generation AS gen, s.verifier_hash AS vh, s.rotated_at AS iat,
       c.t AS now, c.t + interval '336 hours' AS until, sha256(uuid_send(gen_random_uuid())) AS nh,
       CASE WHEN random() < $MOVED THEN (1 + floor(random() * 223))::int || '.' || floor(random() * 256)::int || '.'
                                     || floor(random() * 256)::int || '.' || (1 + floor(random() * 254))::int
            ELSE coalesce(s.last_ip, s.ip) END AS cip,
       coalesce(s.last_user_agent, s.user_agent) AS cua,
       '' AS cid, false AS every, 'refresh' AS ev_refresh, 'session_moved' AS ev_moved, 'default' AS defcid
FROM ff_pick p JOIN sessions s ON s.id = p.id, (SELECT clock_timestamp() AS t) c
WHERE p.n = :n
\gset
WITH l AS (
	SELECT s.id, s.user_id, s.created_at, s.expires_at,
	       coalesce(s.last_ip, s.ip) AS prev_ip, coalesce(s.last_user_agent, s.user_agent) AS prev_ua,
	       u.email, u.roles, u.created_at AS user_created
	FROM sessions s JOIN users u ON u.id = s.user_id
	WHERE s.id = :sid AND s.generation = :gen AND s.revoked_at IS NULL
	  AND s.expires_at > :now AND s.active_expires_at > :now AND s.rotated_at <= :now
	  AND s.rotated_at = :iat
	  AND (coalesce(s.client_id, '') = :cid OR (:cid = '' AND s.client_id = :defcid)) AND NOT u.disabled
	  AND octet_length(s.verifier_hash) = 32 AND octet_length(:vh::bytea) = 32
	  AND bit_count(('x' || encode(s.verifier_hash, 'hex'))::bit(256)
	              # ('x' || encode(:vh::bytea, 'hex'))::bit(256)) = 0
	FOR UPDATE OF s SKIP LOCKED
), r AS (
	UPDATE sessions s
	SET active_expires_at = LEAST(:until::timestamptz, s.expires_at), prev_selector = NULL, rotated_at = :now,
	    generation = s.generation + 1, verifier_hash = :nh, refresh_count = s.refresh_count + 1,
	    last_ip = :cip, last_user_agent = :cua
	FROM l WHERE s.id = l.id
	RETURNING s.active_expires_at, s.generation, s.refresh_count
), a AS (
	INSERT INTO audit_events (at, kind, user_id, session_id, ip, detail)
	SELECT :now::timestamptz, :ev_refresh, l.user_id, l.id, :cip, '{}'::jsonb FROM r, l WHERE :every
	UNION ALL
	SELECT :now::timestamptz, :ev_moved, l.user_id, l.id, :cip,
	       jsonb_build_object('previous_ip', l.prev_ip, 'previous_user_agent', l.prev_ua, 'user_agent', :cua::text)
	FROM r, l WHERE l.prev_ip <> :cip OR l.prev_ua <> :cua
)
SELECT l.user_id, l.created_at, l.expires_at, r.active_expires_at, r.generation, r.refresh_count,
       l.email, l.roles, l.user_created
FROM r, l;
SQL

# --- the runs ----------------------------------------------------------------

STATS="SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relid = 'sessions'::regclass"
SIZES="SELECT pg_relation_size('sessions'), pg_indexes_size('sessions'), pg_relation_size('sessions_pkey'),
              pg_current_wal_lsn() - '0/0', w.wal_fpi, w.wal_records,
              b.checkpoints_timed + b.checkpoints_req
       FROM pg_stat_wal w, pg_stat_bgwriter b"
mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f", 100 * a / b; else printf "-" }'; }

HDR=$'fillfactor\tpattern\tclients\ttps\ttransactions\trotations\tupdates\thot_updates\thot_pct\theap_before_mb\theap_after_mb\theap_growth_pct\tindexes_before_mb\tindexes_after_mb\tindex_growth_pct\tpkey_before_mb\tpkey_after_mb\tdead_mb\tfree_mb_after\twal_bytes_per_tx\tfpi_per_tx\tcheckpoints\tload_avg'
ROWS=()

for ff in $FILLFACTORS; do
	for pattern in $PATTERNS; do
		clients=$CLIENTS
		[[ $pattern != *+held ]] || clients=$((CLIENTS - 1))
		case ${pattern%+held} in
		uniform) picks=$PICKS ;;
		hot) picks=$HOT_SET ;;
		*) log "unknown pattern $pattern"; exit 2 ;;
		esac
		t0=$SECONDS
		q "TRUNCATE sessions, audit_events RESTART IDENTITY; ALTER TABLE sessions SET (fillfactor = $ff)" >/dev/null
		for ((lo = 0; lo < SESSIONS; lo += BATCH)); do
			q "INSERT INTO sessions ($COLS) SELECT $COLS FROM ff_seed WHERE ord BETWEEN $lo AND $((lo + BATCH - 1)) ORDER BY ord" >/dev/null
		done
		# A full read first sets every row's hint bits, as on a table in
		# service, so the run does not pay for them; then ANALYZE, CHECKPOINT.
		sum0=$(q "SELECT sum(refresh_count) FROM sessions")
		q "ANALYZE sessions" >/dev/null
		q "CHECKPOINT" >/dev/null
		IFS='|' read -r heap0 idx0 pk0 lsn0 fpi0 rec0 ck0 < <(q "$SIZES")
		IFS='|' read -r upd0 hot0 < <(q "$STATS")
		log "ff $ff $pattern: seeded (heap $(mb "$heap0") MB, indexes $(mb "$idx0") MB) in $((SECONDS - t0))s; pgbench ${DURATION}s"

		if [[ $pattern == *+held ]]; then
			# psql runs the lines one by one: the snapshot is taken by the
			# SELECT and held through the sleep, until the backend is ended.
			printf '%s\n' "SET application_name = 'ff_holder';" "BEGIN ISOLATION LEVEL REPEATABLE READ;" \
				"SELECT count(*) FROM ff_pick WHERE n = 1;" "SELECT pg_sleep(86400);" |
				psql -X -q -d "$DB" >/dev/null 2>&1 &
			HOLD_PID=$!
			for ((i = 0; i < 50; i++)); do
				[[ $(q "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
				          AND application_name = 'ff_holder' AND backend_xmin IS NOT NULL") == 1 ]] && break
				sleep 0.2
			done
			((i < 50)) || { log "the snapshot holder did not start"; exit 1; }
		fi
		pgbench -n -M prepared -c "$clients" -j "$THREADS" -T "$DURATION" -P 10 -D picks="$picks" \
			-f "$WORK/rotate.sql" "$DB" >"$WORK/pgbench.out" 2>"$WORK/pgbench.err" &
		BENCH_PID=$!
		wait "$BENCH_PID" || { cat "$WORK/pgbench.out" "$WORK/pgbench.err" >&2; BENCH_PID=; exit 1; }
		BENCH_PID=
		load=$(cut -d' ' -f1 /proc/loadavg)
		# WAL and sizes at once, before this script's own reads prune pages.
		IFS='|' read -r heap1 idx1 pk1 lsn1 fpi1 rec1 ck1 < <(q "$SIZES")
		IFS='|' read -r dead free1 < <(q "SELECT dead_tuple_len, approx_free_space FROM pgstattuple_approx('sessions')")
		if [[ -n $HOLD_PID ]]; then
			q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			   WHERE datname = current_database() AND application_name = 'ff_holder'" >/dev/null
			wait "$HOLD_PID" 2>/dev/null || true
			HOLD_PID=
		fi
		tx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$WORK/pgbench.out")
		failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$WORK/pgbench.out")
		tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$WORK/pgbench.out")
		sed -n 's/^progress: /  /p' "$WORK/pgbench.out" >&2
		if [[ ${failed:-0} != 0 ]]; then cat "$WORK/pgbench.out" "$WORK/pgbench.err" >&2; log "$failed failed transactions"; exit 1; fi
		rot=$(($(q "SELECT sum(refresh_count) FROM sessions") - sum0))
		# pgbench's backends flush their statistics as they exit; wait
		# (at most ~11 s) until the counted updates cover the rotations.
		for ((i = 0; i < 23; i++)); do
			IFS='|' read -r upd1 hot1 < <(q "$STATS")
			((upd1 - upd0 >= rot)) && break
			sleep 0.5
		done
		upd=$((upd1 - upd0)) hot=$((hot1 - hot0))
		((rot * 100 >= tx * 99)) || log "warning: $tx transactions rotated only $rot sessions"
		((upd >= rot)) || log "warning: statistics count $upd updates of $rot rotations"
		row=$(printf '%s\t' "$ff" "$pattern" "$clients" "$tps" "$tx" "$rot" "$upd" "$hot" "$(pct "$hot" "$upd")" \
			"$(mb "$heap0")" "$(mb "$heap1")" "$(pct $((heap1 - heap0)) "$heap0")" \
			"$(mb "$idx0")" "$(mb "$idx1")" "$(pct $((idx1 - idx0)) "$idx0")" "$(mb "$pk0")" "$(mb "$pk1")" \
			"$(mb "$dead")" "$(mb "${free1%.*}")" $(((lsn1 - lsn0) / (tx > 0 ? tx : 1))) \
			"$(awk -v a=$((fpi1 - fpi0)) -v b="$tx" 'BEGIN { printf "%.2f", a / (b > 0 ? b : 1) }')" $((ck1 - ck0)) "$load")
		ROWS+=("${row%$'\t'}")
		log "ff $ff $pattern: $tps tps, $rot rotations, HOT $(pct "$hot" "$upd")%, heap $(mb "$heap0") -> $(mb "$heap1") MB, indexes $(mb "$idx0") -> $(mb "$idx1") MB, $(((lsn1 - lsn0) / (tx > 0 ? tx : 1))) WAL B/tx, $((ck1 - ck0)) checkpoints, load $load"
	done
done

{
	echo "$HDR"
	printf '%s\n' "${ROWS[@]}"
} >"$WORK/results.tsv"
[[ -z $RESULTS ]] || cp "$WORK/results.tsv" "$RESULTS"

echo
echo "sessions: $SESSIONS rows ($PICKS rotatable), ${DURATION}s of pgbench -c $CLIENTS -j $THREADS per run; tps is noisy (shared machine); WAL is cluster-wide"
awk -F '\t' 'NR == 1 { next }
	NR == 2 { printf "%-4s %-12s %3s %7s %8s %6s %21s %7s %21s %7s %8s %8s %6s %4s\n",
		"ff", "pattern", "c", "tps", "rotat.", "HOT%", "heap MB before->after", "growth", "idx MB before->after", "growth",
		"dead MB", "WAL B/tx", "FPI/tx", "ckpt" }
	{ printf "%-4s %-12s %3s %7.0f %8s %6s %10s->%-10s %6s%% %10s->%-10s %6s%% %8s %8s %6s %4s\n",
		$1, $2, $3, $4, $6, $9, $10, $11, $12, $13, $14, $15, $18, $20, $21, $22 }' "$WORK/results.tsv"
