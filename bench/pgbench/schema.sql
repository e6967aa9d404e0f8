-- Schema of the pgbench reference for SPEC §9: the cheapest transaction
-- that still does what a refresh-token rotation must do: update one row
-- found by its unique hash (mark it used) and insert its successor.
-- cmd/bench runs this file once in its scratch database, then, before each
-- pgbench run, inserts one active row per client (step 0 of that run's chains).
CREATE TABLE IF NOT EXISTS bench_tokens (
    hash       bytea       PRIMARY KEY,
    session_id bigint      NOT NULL,
    parent     bytea,
    used       boolean     NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- bench_hash names step `step` of client `client`'s chain in run `run`:
-- sha256 spreads the keys over the index like random token selectors.
-- A one-expression IMMUTABLE SQL function is inlined by the planner.
CREATE OR REPLACE FUNCTION bench_hash(run bigint, client bigint, step bigint)
RETURNS bytea LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT sha256(int8send(run * 281474976710656 + client * 4294967296 + step)) $$;
