-- Replay of Rotor's rotation SQL without HTTP or Go, to see what the
-- PostgreSQL side alone can reach (an analysis aid; cmd/bench does not run
-- it). In a scratch database migrated by `server migrate up`, with
-- ../schema.sql applied, seed 32 users and sessions for run N:
--   psql -v run=N -f seed.sql
-- then, with the same N:
--   pgbench -n -M prepared -c 32 -j 2 -T 10 -D run=N -D step=0 -f rotor-v2.sql
-- (rotor-v2.sql: rotation v2's fast path; rotor-1rt.sql and rotor-2rt.sql:
-- the v1 statements, which insert a token and an audit row per rotation.
-- Seed a new run N for each script.)
-- Session ids and selectors are derived from (run, client, step), so each
-- pgbench client walks its own chain like a cmd/bench /refresh worker.
INSERT INTO users (id, email, password_hash, roles, created_at, updated_at)
SELECT md5('u' || :run || '-' || c)::uuid, 'sim' || :run || '-' || c || '@example.com', 'x', '{}', now(), now()
FROM generate_series(0, 31) c;
INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, user_agent, ip, active_selector, active_expires_at,
                      generation, verifier_hash)
SELECT md5('s' || :run || '-' || c)::uuid, md5('u' || :run || '-' || c)::uuid, now(), now(), now() + interval '30 days', 'Go-http-client/1.1', '127.0.0.1',
       substring(bench_hash(:run, c, 0) from 1 for 16), now() + interval '14 days', 0, sha256(bench_hash(:run, c, 0))
FROM generate_series(0, 31) c;
INSERT INTO refresh_tokens (selector, session_id, verifier_hash, created_at, expires_at)
SELECT substring(bench_hash(:run, c, 0) from 1 for 16), md5('s' || :run || '-' || c)::uuid, sha256(bench_hash(:run, c, 0)), now(), now() + interval '14 days'
FROM generate_series(0, 31) c;
