-- Rotor's rotation today (internal/store/postgres/sessions.go Refresh): two
-- round trips, BEGIN + SELECT ... FOR UPDATE pipelined, then the rotate CTE
-- + COMMIT pipelined. See seed.sql for how to run it.
\set next :step + 1
\startpipeline
BEGIN;
SELECT t.session_id, t.verifier_hash, t.parent_selector, t.created_at, t.expires_at,
       s.id, s.user_id, s.created_at, s.last_used_at, s.expires_at, s.revoked_at,
       coalesce(s.revoked_reason, ''), s.user_agent, s.ip,
       s.active_selector, s.active_expires_at, s.prev_selector, s.rotated_at,
       u.email, u.roles, u.disabled, u.created_at
FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id JOIN users u ON u.id = s.user_id
WHERE t.selector = substring(bench_hash(:run, :client_id, :step) from 1 for 16)
FOR UPDATE OF s;
\endpipeline
\startpipeline
WITH s AS (
	UPDATE sessions
	SET active_selector = substring(bench_hash(:run, :client_id, :next) from 1 for 16), active_expires_at = now() + interval '14 days',
	    prev_selector = substring(bench_hash(:run, :client_id, :step) from 1 for 16), rotated_at = now(), last_used_at = now()
	WHERE id = md5('s' || :run || '-' || :client_id)::uuid AND active_selector = substring(bench_hash(:run, :client_id, :step) from 1 for 16) AND revoked_at IS NULL
	RETURNING id, user_id
), t AS (
	INSERT INTO refresh_tokens (selector, session_id, verifier_hash, parent_selector, created_at, expires_at)
	SELECT substring(bench_hash(:run, :client_id, :next) from 1 for 16), s.id, sha256(bench_hash(:run, :client_id, :next)), substring(bench_hash(:run, :client_id, :step) from 1 for 16), now(), now() + interval '14 days' FROM s
), a AS (
	INSERT INTO audit_events (at, kind, user_id, session_id, ip)
	SELECT now(), 'refresh', s.user_id, s.id, '127.0.0.1' FROM s
)
SELECT count(*) FROM s;
COMMIT;
\endpipeline
\set step :next
