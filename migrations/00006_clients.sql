-- +goose Up
-- OAuth clients (RFC 6749 §2). Secrets are stored as keyed hashes only.
CREATE TABLE clients (
    id              text PRIMARY KEY,
    name            text NOT NULL,
    type            text NOT NULL CHECK (type IN ('public', 'confidential')),
    secret_hash     bytea,
    grant_types     text[] NOT NULL,
    allowed_origins text[] NOT NULL DEFAULT '{}',
    audience        text NOT NULL,
    roles           text[] NOT NULL DEFAULT '{}',
    disabled        boolean NOT NULL DEFAULT false,
    -- sid of the client's client_credentials tokens; replaced when they
    -- are revoked together.
    token_family    uuid NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);

-- The client a session was issued to. NULL is the default client: every
-- session from before clients existed, and the default client's own, so
-- the upgrade rewrites no row (an ADD COLUMN without a default is instant).
ALTER TABLE sessions ADD COLUMN client_id text;
-- Revoking a client's sessions; rotations never change client_id, so the
-- index does not cost them their HOT updates.
CREATE INDEX sessions_client_id ON sessions (client_id) WHERE client_id IS NOT NULL;

-- +goose Down
DROP INDEX sessions_client_id;
ALTER TABLE sessions DROP COLUMN client_id;
DROP TABLE clients;
