-- +goose Up
-- One denylist entry per revoked session or access token: revocation is
-- idempotent (a repeated /revoke writes nothing), and the feed can never list
-- one sid or jti twice. Duplicates written before this migration collapse
-- into the entry that lasts longest.
DELETE FROM revocations a USING revocations b
WHERE a.kind = b.kind AND a.subject = b.subject
  AND (a.until < b.until OR (a.until = b.until AND a.id < b.id));
CREATE UNIQUE INDEX revocations_kind_subject ON revocations (kind, subject);

-- +goose Down
DROP INDEX revocations_kind_subject;
