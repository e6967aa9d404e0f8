-- +goose Up

-- Users. email holds the normalized (trimmed, lower-case) address: the
-- unique index makes email case-insensitively unique.
CREATE TABLE users (
    id            uuid PRIMARY KEY,
    email         text        NOT NULL,
    password_hash text        NOT NULL,
    roles         text[]      NOT NULL DEFAULT '{}',
    disabled      boolean     NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);
CREATE UNIQUE INDEX users_email_key ON users (email);

-- Sessions (token families). The rotation state lives on this row, so one
-- row lock serializes rotation and every revocation of the session, and a
-- session has exactly one active refresh token by construction:
--   active_selector      the active token
--   prev_selector        the token rotated last (grace-window candidate)
--   rotated_at           when prev_selector was rotated: the grace clock
-- None of the rotation columns is indexed, so a rotation's UPDATE can be HOT;
-- fillfactor leaves room on the page for that.
CREATE TABLE sessions (
    id                uuid PRIMARY KEY,
    user_id           uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at        timestamptz NOT NULL,
    last_used_at      timestamptz NOT NULL,
    expires_at        timestamptz NOT NULL,
    revoked_at        timestamptz,
    revoked_reason    text,
    user_agent        text        NOT NULL DEFAULT '',
    ip                text        NOT NULL DEFAULT '',
    active_selector   bytea       NOT NULL,
    active_expires_at timestamptz NOT NULL,
    prev_selector     bytea,
    rotated_at        timestamptz
) WITH (fillfactor = 70);
-- A user's sessions (listing, revoke-all, disable).
CREATE INDEX sessions_user_id ON sessions (user_id);
-- The purge job's scans.
CREATE INDEX sessions_expires_at ON sessions (expires_at);
CREATE INDEX sessions_revoked_at ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

-- Refresh tokens: insert-only. Only the selector (public half) and a keyed
-- hash of the verifier (secret half) are stored, never a token. A successor's
-- selector is derived from its parent, so a parent can never have two
-- children: both would need the same primary key.
CREATE TABLE refresh_tokens (
    selector        bytea PRIMARY KEY,
    session_id      uuid        NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    verifier_hash   bytea       NOT NULL,
    parent_selector bytea,
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL
);
-- ON DELETE CASCADE from sessions (purge).
CREATE INDEX refresh_tokens_session_id ON refresh_tokens (session_id);

-- The denylist: revoked sessions (every access token with that sid) and
-- revoked access tokens (by jti), each until the tokens it covers expire.
-- id is the cursor of GET /revocations and of instance synchronisation.
CREATE TABLE revocations (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind       text        NOT NULL CHECK (kind IN ('session', 'token')),
    subject    uuid        NOT NULL,
    until      timestamptz NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX revocations_until ON revocations (until);

-- Audit log. No foreign keys: events outlive the sessions they name.
CREATE TABLE audit_events (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL,
    kind       text        NOT NULL,
    user_id    uuid,
    session_id uuid,
    ip         text        NOT NULL DEFAULT '',
    detail     jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_user_id ON audit_events (user_id, id DESC);

-- +goose Down
DROP TABLE audit_events;
DROP TABLE revocations;
DROP TABLE refresh_tokens;
DROP TABLE sessions;
DROP TABLE users;
