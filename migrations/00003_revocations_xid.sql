-- +goose Up
-- The transaction that wrote each denylist entry, for a revocation feed
-- cursor that never skips an entry (see Store.Revocations): IDs are handed
-- out before commit, so ID order is not commit order.
ALTER TABLE revocations ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id();

-- +goose Down
ALTER TABLE revocations DROP COLUMN xid;
