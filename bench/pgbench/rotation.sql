-- One rotation, one statement, one round trip: mark client :client_id's
-- active token used (found by its unique hash) and insert its successor.
-- :run is set per pgbench run with -D run=N, :step starts at 0 (-D step=0)
-- and pgbench keeps each client's variables from one transaction to the
-- next, so every client walks its own chain and the UPDATE always finds its
-- row. cmd/bench checks afterwards that exactly one row per transaction was
-- marked used.
\set next :step + 1
WITH u AS (
    UPDATE bench_tokens SET used = true
    WHERE hash = bench_hash(:run, :client_id, :step) AND NOT used
    RETURNING hash, session_id
)
INSERT INTO bench_tokens (hash, session_id, parent)
SELECT bench_hash(:run, :client_id, :next), u.session_id, u.hash FROM u;
\set step :next
