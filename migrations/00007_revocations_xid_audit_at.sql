-- +goose Up
-- The instance sync reads entries of transactions that were in progress at
-- its last read, or took their xid after it (Store.Revocations); an index
-- on xid finds those without a scan of every unexpired entry.
CREATE INDEX revocations_xid ON revocations (xid);
-- The purge finds audit events past AUDIT_RETENTION through a BRIN index:
-- events are inserted in time order, so it is a few pages and costs an
-- insert almost nothing, where a B-tree would add an index insert to every
-- audited event.
CREATE INDEX audit_events_at_brin ON audit_events USING brin (at);

-- +goose Down
DROP INDEX audit_events_at_brin;
DROP INDEX revocations_xid;
