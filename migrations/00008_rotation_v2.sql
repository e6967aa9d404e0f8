-- +goose Up
-- Rotation v2 (docs/contract.md §1.2, §2): a refresh token names its session
-- and generation, and the session row holds the keyed hash of its active
-- token's secret, so a rotation is one UPDATE of this row by primary key
-- with no insert: no refresh_tokens row and, for an ordinary refresh, no
-- audit row. A rotation writes active_expires_at, prev_selector, rotated_at
-- and the columns below, all of them after the login's user agent and
-- address (last_used_at stays the login time; the last use is rotated_at),
-- so the WAL record of its HOT update leaves out the row's unchanged head.
-- No index covers a written column.
--
--   generation       the active token's generation (0 at login)
--   verifier_hash    keyed hash of the active token's secret; NULL while the
--                    active token is a v1 token (active_selector)
--   refresh_count    rotations so far
--   last_ip,         the last rotation's caller; NULL: the login's
--   last_user_agent
--
-- Every statement here is a catalog change: no row is rewritten, live v1
-- sessions keep working and rotate into v2 tokens. refresh_tokens stays
-- until no v1 token can be live (`server legacy-tokens`, docs/operations.md).
--
-- fillfactor 90 (was 70), from bench/pgbench/fillfactor.sh on 1,000,000
-- sessions with autovacuum off, 60 s of rotations at c=16: 100 gave 52 %
-- (uniform picks) and 86 % (a hot set) HOT updates and a growing heap; 90,
-- 80 and 70 gave 100 % HOT in both patterns with no growth, and 90 keeps
-- the heap 22 % smaller than 70 (471 against 601 MB). It applies to pages
-- filled from now on; existing pages keep their free room.
ALTER TABLE sessions SET (fillfactor = 90);
ALTER TABLE sessions
    ALTER COLUMN active_selector DROP NOT NULL,
    ADD COLUMN generation bigint NOT NULL DEFAULT 0,
    ADD COLUMN verifier_hash bytea,
    ADD COLUMN refresh_count bigint NOT NULL DEFAULT 0,
    ADD COLUMN last_ip text,
    ADD COLUMN last_user_agent text;

-- +goose Down
ALTER TABLE sessions SET (fillfactor = 70);
-- v2 sessions have no refresh_tokens rows: they cannot go back and are
-- deleted (their users sign in again). Their access tokens are denylisted
-- first, until the session's end (no access token outlives it) plus a
-- minute, so that none outlives its session.
INSERT INTO revocations (kind, subject, until, created_at)
SELECT 'session', id, expires_at + interval '1 minute', now() FROM sessions
WHERE active_selector IS NULL AND revoked_at IS NULL AND expires_at > now()
ON CONFLICT (kind, subject) DO NOTHING;
DELETE FROM sessions WHERE active_selector IS NULL;
ALTER TABLE sessions
    DROP COLUMN last_user_agent,
    DROP COLUMN last_ip,
    DROP COLUMN refresh_count,
    DROP COLUMN verifier_hash,
    DROP COLUMN generation,
    ALTER COLUMN active_selector SET NOT NULL;
