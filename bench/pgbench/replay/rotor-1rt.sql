-- A one-statement happy path for comparison: the checks decide makes in Go
-- (active token, verifier hash, expiry, session not revoked or expired,
-- user not disabled) become the UPDATE's WHERE clause, so a rotation is one
-- autocommit statement and one round trip. Only when it updates nothing
-- would the server fall back to the locked two-round-trip path. See
-- seed.sql for how to run it.
\set next :step + 1
WITH s AS (
	UPDATE sessions s
	SET active_selector = substring(bench_hash(:run, :client_id, :next) from 1 for 16), active_expires_at = now() + interval '14 days',
	    prev_selector = t.selector, rotated_at = now(), last_used_at = now()
	FROM refresh_tokens t, users u
	WHERE t.selector = substring(bench_hash(:run, :client_id, :step) from 1 for 16)
	  AND t.verifier_hash = sha256(bench_hash(:run, :client_id, :step)) AND t.expires_at > now()
	  AND s.id = t.session_id AND s.active_selector = t.selector AND s.revoked_at IS NULL AND s.expires_at > now()
	  AND u.id = s.user_id AND NOT u.disabled
	RETURNING s.id, s.user_id, s.expires_at, u.email, u.roles
), t AS (
	INSERT INTO refresh_tokens (selector, session_id, verifier_hash, parent_selector, created_at, expires_at)
	SELECT substring(bench_hash(:run, :client_id, :next) from 1 for 16), s.id, sha256(bench_hash(:run, :client_id, :next)), substring(bench_hash(:run, :client_id, :step) from 1 for 16), now(), now() + interval '14 days' FROM s
), a AS (
	INSERT INTO audit_events (at, kind, user_id, session_id, ip)
	SELECT now(), 'refresh', s.user_id, s.id, '127.0.0.1' FROM s
)
SELECT s.id, s.user_id, s.expires_at, s.email, s.roles FROM s;
\set step :next
