package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Refresh tokens issued before rotation v2 (v1) live in refresh_tokens, one
// row per token. v2 writes none there; the table answers v1 presentations
// (a live v1 token rotates into v2, a used one is reuse) until no v1 token
// can be live, and then `server legacy-tokens drop` removes it.

// LegacyStatus is what is left of v1 tokens.
type LegacyStatus struct {
	// Present: refresh_tokens still exists.
	Present bool
	// Rows is the number of v1 token rows.
	Rows int64
	// Live is how many of them are unexpired tokens of live sessions:
	// presented, each would still rotate or be judged as reuse.
	Live int64
	// LastExpiry is when the last of them expires (zero if none is live).
	LastExpiry time.Time
}

const sqlLegacyLive = `
	SELECT count(*), max(t.expires_at) FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
	WHERE t.expires_at > $1 AND s.revoked_at IS NULL AND s.expires_at > $1`

// LegacyTokens reports what is left of v1 tokens at now.
func (s *Store) LegacyTokens(ctx context.Context, now time.Time) (LegacyStatus, error) {
	var st LegacyStatus
	if err := s.pool.QueryRow(ctx, `SELECT to_regclass('refresh_tokens') IS NOT NULL`).Scan(&st.Present); err != nil || !st.Present {
		return st, wrap(err)
	}
	var last *time.Time
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM refresh_tokens`).Scan(&st.Rows); err != nil {
		return st, wrap(err)
	}
	if err := s.pool.QueryRow(ctx, sqlLegacyLive, now).Scan(&st.Live, &last); err != nil {
		return st, wrap(err)
	}
	if last != nil {
		st.LastExpiry = *last
	}
	return st, nil
}

// ErrLegacyLive refuses to drop refresh_tokens while a v1 token is live.
var ErrLegacyLive = errors.New("v1 refresh tokens are still live")

// ErrNotUpgraded refuses to drop refresh_tokens from a database that is not
// at rotation v2 (migration 00008) or later: a release before v2 still
// writes a row per token there.
var ErrNotUpgraded = errors.New("the database is not at migration 00008 (rotation v2) or later; run `server migrate up` with this release first")

// v2Version is the migration that introduced rotation v2.
const v2Version = 8

// DropLegacyTokens drops refresh_tokens if no v1 token is live at now
// (ErrLegacyLive otherwise), in one transaction that holds the table
// against every reader while it checks: a v1 token presented afterwards is
// unknown, which is what an expired one already was. Dropping twice is a
// no-op.
func (s *Store) DropLegacyTokens(ctx context.Context, now time.Time) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return wrap(err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // no-op after Commit
	var version int64
	if err := tx.QueryRow(ctx, `SELECT coalesce((SELECT version_id FROM goose_db_version ORDER BY id DESC LIMIT 1), 0)`).
		Scan(&version); err != nil {
		return fmt.Errorf("%w (%v)", ErrNotUpgraded, wrap(err))
	}
	if version < v2Version {
		return ErrNotUpgraded
	}
	var present bool
	if err := tx.QueryRow(ctx, `SELECT to_regclass('refresh_tokens') IS NOT NULL`).Scan(&present); err != nil || !present {
		return wrap(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE refresh_tokens IN ACCESS EXCLUSIVE MODE`); err != nil {
		return wrap(err)
	}
	var live int64
	var last *time.Time
	if err := tx.QueryRow(ctx, sqlLegacyLive, now).Scan(&live, &last); err != nil {
		return wrap(err)
	}
	if live > 0 {
		return fmt.Errorf("%w: %d, the last expiring at %s", ErrLegacyLive, live, last.UTC().Format(time.RFC3339))
	}
	if _, err := tx.Exec(ctx, `DROP TABLE refresh_tokens`); err != nil {
		return wrap(err)
	}
	if err := tx.Commit(ctx); err != nil {
		return wrap(err)
	}
	s.legacyGone.Store(true)
	return nil
}
