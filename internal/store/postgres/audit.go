package postgres

import (
	"context"
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
func (s *Store) Audit(ctx context.Context, userID uuid.UUID, limit int) ([]tokens.AuditEvent, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	q := `SELECT id, at, kind, user_id, session_id, ip, detail FROM audit_events ORDER BY id DESC LIMIT $1`
	args := []any{limit}
	if userID != uuid.Nil {
		// Served by audit_events_user_id (user_id, id DESC).
		q = `SELECT id, at, kind, user_id, session_id, ip, detail FROM audit_events
		     WHERE user_id = $2 ORDER BY id DESC LIMIT $1`
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
		if ev.Detail == nil {
			ev.Detail = map[string]string{}
		}
		out = append(out, ev)
	}
	return out, wrap(rows.Err())
}

// Revocations implements tokens.Store. The cursor is the snapshot's xmin:
// every transaction with an older xid had finished when the statement's
// snapshot was taken, so its entries are listed now; any transaction that
// may still commit has an xid at or above xmin, so reading "xid >= cursor"
// next time catches its entries whatever their IDs. (Entries already seen
// with such xids are listed again: harmless.) An ID cursor would skip an
// entry whose transaction took its ID first and committed last.
func (s *Store) Revocations(ctx context.Context, since int64, now time.Time) (_ []tokens.Revocation, _ int64, err error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	defer s.timed("revocations", time.Now(), &err)
	rows, err := s.pool.Query(ctx, `
		WITH h AS (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin)
		SELECT h.xmin, r.id, r.kind, r.subject, r.until
		FROM h LEFT JOIN revocations r ON r.xid >= $1::bigint::text::xid8 AND r.until > $2
		ORDER BY r.id`, since, now)
	if err != nil {
		return nil, 0, wrap(err)
	}
	defer rows.Close()
	out := []tokens.Revocation{}
	var next int64
	for rows.Next() {
		var id *int64
		var kind *string
		var subject *uuid.UUID
		var until *time.Time
		if err := rows.Scan(&next, &id, &kind, &subject, &until); err != nil {
			return nil, 0, wrap(err)
		}
		if id != nil {
			out = append(out, tokens.Revocation{ID: *id, Kind: *kind, Subject: *subject, Until: *until})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, 0, wrap(err)
	}
	return out, next, nil
}

// Purge implements tokens.Store. Each DELETE is its own short transaction
// over at most batch rows; SKIP LOCKED passes over sessions a rotation or
// revocation holds right now instead of waiting for them.
func (s *Store) Purge(ctx context.Context, now time.Time, batch int) (int, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	// A batch of sessions, then their tokens, as two statements of one
	// transaction: the second statement takes a fresh snapshot, so it also
	// sees a successor a rotation committed while the first waited for a
	// row, and once the sessions are deleted under our locks no rotation can
	// add another (refresh_tokens has no foreign key to cascade).
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, wrap(err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // no-op after Commit
	rows, err := tx.Query(ctx, `
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
	if len(ids) > 0 {
		if _, err := tx.Exec(ctx, `DELETE FROM refresh_tokens WHERE session_id = ANY($1)`, ids); err != nil {
			return 0, wrap(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, wrap(err)
	}
	n := len(ids)
	// Expired tokens of live sessions: presenting one is refused the same
	// way whether it is stored or not (SPEC §2.5), so it can go.
	tag, err := s.pool.Exec(ctx, `
		DELETE FROM refresh_tokens WHERE ctid = ANY(ARRAY(
			SELECT ctid FROM refresh_tokens WHERE expires_at <= $1 LIMIT $2))`, now, batch)
	if err != nil {
		return n, wrap(err)
	}
	n += int(tag.RowsAffected())
	tag, err = s.pool.Exec(ctx, `
		DELETE FROM revocations WHERE id IN (
			SELECT id FROM revocations WHERE until <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`,
		now, batch)
	if err != nil {
		return n, wrap(err)
	}
	return n + int(tag.RowsAffected()), nil
}
