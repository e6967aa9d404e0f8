-- +goose Up
-- A rotation inserts a token into a session whose row it already holds
-- FOR UPDATE; the foreign key's check (a FOR KEY SHARE lookup through SPI)
-- added a fifth of PostgreSQL's work per rotation for nothing. Tokens are
-- only ever written next to their session, and the purge job deletes a
-- session's tokens in the same statement as the session.
ALTER TABLE refresh_tokens DROP CONSTRAINT refresh_tokens_session_id_fkey;

-- +goose Down
DELETE FROM refresh_tokens t WHERE NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = t.session_id);
ALTER TABLE refresh_tokens ADD CONSTRAINT refresh_tokens_session_id_fkey
    FOREIGN KEY (session_id) REFERENCES sessions (id) ON DELETE CASCADE;
