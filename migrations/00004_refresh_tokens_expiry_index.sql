-- +goose Up
-- Lets the purge job find expired refresh tokens of live sessions (used
-- tokens accumulate one per rotation). Tokens are inserted roughly in
-- expiry order, so a BRIN index is a few pages and costs a rotation almost
-- nothing, where a B-tree would add an index insert to every rotation.
CREATE INDEX refresh_tokens_expires_at_brin ON refresh_tokens USING brin (expires_at);

-- +goose Down
DROP INDEX refresh_tokens_expires_at_brin;
