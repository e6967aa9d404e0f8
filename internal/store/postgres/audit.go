package postgres

import (
	"context"
	"math"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/rotorauth/rotor/internal/tokens"
)

// AddAudit implements tokens.Store.
func (s *Store) AddAudit(ctx context.Context, ev tokens.AuditEvent) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	return insertAudit(ctx, s.pool, ev)
}

// Audit implements tokens.Store.
func (s *Store) Audit(ctx context.Context, userID uuid.UUID, before int64, limit int) ([]tokens.AuditEvent, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if before <= 0 {
		before = math.MaxInt64
	}
	q := `SELECT id, at, kind, user_id, session_id, ip, detail FROM audit_events
	      WHERE id < $2 ORDER BY id DESC LIMIT $1`
	args := []any{limit, before}
	if userID != uuid.Nil {
		// Served by audit_events_user_id (user_id, id DESC).
		q = `SELECT id, at, kind, user_id, session_id, ip, detail FROM audit_events
		     WHERE user_id = $3 AND id < $2 ORDER BY id DESC LIMIT $1`
		args = append(args, userID)
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	out := []tokens.AuditEvent{}
	for rows.Next() {
		var ev tokens.AuditEvent
		if err := rows.Scan(&ev.ID, &ev.At, &ev.Kind, &ev.UserID, &ev.SessionID, &ev.IP, &ev.Detail); err != nil {
			return nil, wrap(err)
		}
		ev.Detail = tokens.NonNilMap(ev.Detail)
		out = append(out, ev)
	}
	return out, wrap(rows.Err())
}

// Revocations implements tokens.Store. The cursor is the read's snapshot:
// the highest ID it saw, its xmax and its in-progress transactions (xip).
// An entry the read did not see belongs to a transaction that was in
// progress then (in xip), or that took its xid after it (>= xmax), or has
// an ID above every one it saw; the next read asks for exactly those, so it
// never skips an entry whatever the order of IDs and commits, and it does
// not read again what it already has, however long some other transaction
// holds the snapshot's xmin back.
func (s *Store) Revocations(ctx context.Context, since tokens.SyncCursor, now time.Time) (_ []tokens.Revocation, _ tokens.SyncCursor, err error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	defer s.timed("revocations", time.Now(), &err)
	xip := since.Xip
	xip = tokens.NonNil(xip)
	var next tokens.SyncCursor
	var out []tokens.Revocation
	b := &pgx.Batch{}
	b.Queue("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
	// One snapshot for both statements: the entries read and the cursor
	// describe the same moment.
	b.Queue(`SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint,
	               ARRAY(SELECT x::text::bigint FROM pg_snapshot_xip(pg_current_snapshot()) x),
	               coalesce((SELECT max(id) FROM revocations), 0)`).QueryRow(func(row pgx.Row) error {
		return row.Scan(&next.Xmax, &next.Xip, &next.MaxID)
	})
	b.Queue(`
		SELECT id, kind, subject, until FROM revocations
		WHERE until > $4 AND (id > $1 OR xid >= $2::bigint::text::xid8 OR xid = ANY($3::bigint[]::text[]::xid8[]))
		ORDER BY id`, since.MaxID, since.Xmax, xip, now).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var r tokens.Revocation
			if err := rows.Scan(&r.ID, &r.Kind, &r.Subject, &r.Until); err != nil {
				return err
			}
			out = append(out, r)
		}
		return rows.Err()
	})
	b.Queue("COMMIT")
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, since, wrap(err)
	}
	if next.MaxID < since.MaxID { // the highest rows may have been purged meanwhile
		next.MaxID = since.MaxID
	}
	if out == nil {
		out = []tokens.Revocation{}
	}
	return out, next, nil
}

// RevocationFeed implements tokens.Store. Floor is an xmin as in
// Revocations; within one sequence of pages every page reads entries with
// xid >= Floor in ID order after After, and the sequence's successor floor
// is the xmin read at its first page: every transaction that could still
// commit an entry then has an xid at or above it, and every entry committed
// before it is visible to every page of the sequence, so none is skipped.
func (s *Store) RevocationFeed(ctx context.Context, c tokens.FeedCursor, now time.Time, limit int) (_ []tokens.Revocation, _ tokens.FeedCursor, _ bool, err error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	defer s.timed("revocation_feed", time.Now(), &err)
	rows, err := s.pool.Query(ctx, `
		WITH h AS (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin)
		SELECT h.xmin, r.id, r.kind, r.subject, r.until
		FROM h LEFT JOIN LATERAL (
			SELECT id, kind, subject, until FROM revocations
			WHERE xid >= $1::bigint::text::xid8 AND id > $2 AND until > $3
			ORDER BY id LIMIT $4) r ON true
		ORDER BY r.id`, c.Floor, c.After, now, limit+1)
	if err != nil {
		return nil, c, false, wrap(err)
	}
	defer rows.Close()
	out := []tokens.Revocation{}
	var xmin int64
	for rows.Next() {
		var id *int64
		var kind *string
		var subject *uuid.UUID
		var until *time.Time
		if err := rows.Scan(&xmin, &id, &kind, &subject, &until); err != nil {
			return nil, c, false, wrap(err)
		}
		if id != nil {
			out = append(out, tokens.Revocation{ID: *id, Kind: tokens.RevocationKind(*kind), Subject: *subject, Until: *until})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, c, false, wrap(err)
	}
	next := c.Next
	if c.After == 0 { // first page of a sequence
		next = xmin
	}
	if len(out) > limit {
		out = out[:limit]
		return out, tokens.FeedCursor{Floor: c.Floor, After: out[limit-1].ID, Next: next}, true, nil
	}
	return out, tokens.FeedCursor{Floor: next}, false, nil
}

// Purge implements tokens.Store. Each DELETE is its own short transaction
// over at most batch rows; SKIP LOCKED passes over sessions a rotation or
// revocation holds right now instead of waiting for them.
func (s *Store) Purge(ctx context.Context, now, auditBefore time.Time, batch int) (int, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var legacy bool // refresh_tokens is still there (server legacy-tokens drop)
	if err := s.pool.QueryRow(ctx, `SELECT to_regclass('refresh_tokens') IS NOT NULL`).Scan(&legacy); err != nil {
		return 0, wrap(err)
	}
	// A batch of sessions, then their v1 token rows (refresh_tokens has no
	// foreign key to cascade; since rotation v2 no rotation adds a row, so
	// the second statement needs no shared transaction, and tolerates a
	// concurrent `server legacy-tokens drop`).
	rows, err := s.pool.Query(ctx, `
		DELETE FROM sessions WHERE id IN (
			SELECT id FROM sessions
			WHERE expires_at <= $1 OR revoked_at <= $2
			LIMIT $3 FOR UPDATE SKIP LOCKED)
		RETURNING id`, now, now.Add(-tokens.RevokedRetention), batch)
	if err != nil {
		return 0, wrap(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return 0, wrap(err)
	}
	n := len(ids)
	if len(ids) > 0 && legacy {
		if _, err := s.pool.Exec(ctx, `DELETE FROM refresh_tokens WHERE session_id = ANY($1)`, ids); err != nil && !legacyTableGone(err) {
			return n, wrap(err)
		}
	}
	// Expired tokens of live sessions: presenting one is refused the same
	// way whether it is stored or not (SPEC §2.5), so it can go.
	if legacy {
		tag, err := s.pool.Exec(ctx, `
			DELETE FROM refresh_tokens WHERE ctid = ANY(ARRAY(
				SELECT ctid FROM refresh_tokens WHERE expires_at <= $1 LIMIT $2))`, now, batch)
		if err != nil && !legacyTableGone(err) {
			return n, wrap(err)
		}
		n += int(tag.RowsAffected())
	}
	tag, err := s.pool.Exec(ctx, `
		DELETE FROM revocations WHERE id IN (
			SELECT id FROM revocations WHERE until <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`,
		now, batch)
	if err != nil {
		return n, wrap(err)
	}
	n += int(tag.RowsAffected())
	// Audit events past retention, found through the BRIN index on at
	// (migration 00007): a purge with nothing old enough reads a few index
	// pages, not the table.
	tag, err = s.pool.Exec(ctx, `
		DELETE FROM audit_events WHERE ctid = ANY(ARRAY(
			SELECT ctid FROM audit_events WHERE at < $1 LIMIT $2))`,
		auditBefore, batch)
	if err != nil {
		return n, wrap(err)
	}
	return n + int(tag.RowsAffected()), nil
}
