-- Rotation v2's one-statement fast path (internal/store/postgres/sessions.go,
-- sqlRotateActive) with pgbench's variables in place of its parameters: the
-- session found by primary key, the lock taken only if free, every rule in
-- the WHERE clause, the active token's hash compared in constant time, one
-- HOT UPDATE and no insert (the audit CTE inserts only when the caller
-- moved, which it never does here). The session id and hashes are computed
-- in SQL from (run, client, step), which the server instead passes as
-- parameters. See seed.sql for how to run it.
\set next :step + 1
WITH l AS (
	SELECT s.id, s.user_id, s.created_at, s.expires_at,
	       coalesce(s.last_ip, s.ip) AS prev_ip, coalesce(s.last_user_agent, s.user_agent) AS prev_ua,
	       u.email, u.roles, u.created_at AS user_created
	FROM sessions s JOIN users u ON u.id = s.user_id
	WHERE s.id = md5('s' || :run || '-' || :client_id)::uuid AND s.generation = :step AND s.revoked_at IS NULL
	  AND s.expires_at > now() AND s.active_expires_at > now() AND coalesce(s.rotated_at, s.created_at) <= now()
	  AND coalesce(s.client_id, '') = '' AND NOT u.disabled
	  AND octet_length(s.verifier_hash) = 32
	  AND bit_count(('x' || encode(s.verifier_hash, 'hex'))::bit(256)
	              # ('x' || encode(sha256(bench_hash(:run, :client_id, :step)), 'hex'))::bit(256)) = 0
	FOR UPDATE OF s SKIP LOCKED
), r AS (
	UPDATE sessions s
	SET active_expires_at = LEAST(now() + interval '14 days', s.expires_at), prev_selector = NULL, rotated_at = now(),
	    generation = s.generation + 1, verifier_hash = sha256(bench_hash(:run, :client_id, :next)),
	    refresh_count = s.refresh_count + 1, last_ip = '127.0.0.1', last_user_agent = 'Go-http-client/1.1'
	FROM l WHERE s.id = l.id
	RETURNING s.active_expires_at, s.generation, s.refresh_count
), a AS (
	INSERT INTO audit_events (at, kind, user_id, session_id, ip, detail)
	SELECT now(), 'session_moved', l.user_id, l.id, '127.0.0.1', '{}'::jsonb
	FROM r, l WHERE l.prev_ip <> '127.0.0.1' OR l.prev_ua <> 'Go-http-client/1.1'
)
SELECT l.user_id, l.created_at, l.expires_at, r.active_expires_at, r.generation, l.email, l.roles
FROM r, l;
\set step :next
