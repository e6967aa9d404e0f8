package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rotorauth/rotor/internal/tokens"
)

const clientColumns = `id, name, type, secret_hash, grant_types, allowed_origins, audience, roles,
	disabled, token_family, created_at, updated_at`

func scanClient(row pgx.Row) (tokens.Client, error) {
	var c tokens.Client
	var typ string
	err := row.Scan(&c.ID, &c.Name, &typ, &c.SecretHash, &c.GrantTypes, &c.AllowedOrigins, &c.Audience, &c.Roles,
		&c.Disabled, &c.TokenFamily, &c.CreatedAt, &c.UpdatedAt)
	c.Type = tokens.ClientType(typ)
	for _, l := range []*[]string{&c.GrantTypes, &c.AllowedOrigins, &c.Roles} {
		*l = tokens.NonNil(*l)
	}
	return c, err
}

// CreateClient implements tokens.Store.
func (s *Store) CreateClient(ctx context.Context, c tokens.Client) (err error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	defer s.timed("create_client", time.Now(), &err)
	_, err = s.pool.Exec(ctx, `
		INSERT INTO clients (`+clientColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		c.ID, c.Name, string(c.Type), c.SecretHash, c.GrantTypes, c.AllowedOrigins, c.Audience, c.Roles,
		c.Disabled, c.TokenFamily, c.CreatedAt, c.UpdatedAt)
	return wrap(err)
}

// Client implements tokens.Store.
func (s *Store) Client(ctx context.Context, id string) (tokens.Client, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	c, err := scanClient(s.pool.QueryRow(ctx, `SELECT `+clientColumns+` FROM clients WHERE id = $1`, id))
	return c, wrap(err)
}

// Clients implements tokens.Store.
func (s *Store) Clients(ctx context.Context) ([]tokens.Client, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT `+clientColumns+` FROM clients ORDER BY id`)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	out := []tokens.Client{}
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			return nil, wrap(err)
		}
		out = append(out, c)
	}
	return out, wrap(rows.Err())
}

// UpdateClient implements tokens.Store. The UPDATE locks the client row, so
// a login for this client (which holds it FOR SHARE) either committed
// before, and its session is revoked by the statements that follow (they
// take their snapshots after the lock), or waits and then finds the client
// disabled.
func (s *Store) UpdateClient(ctx context.Context, u tokens.ClientUpdate) (_ tokens.Client, _ []tokens.Revocation, err error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	defer s.timed("update_client", time.Now(), &err)
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return tokens.Client{}, nil, wrap(err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // no-op after Commit
	var secret any
	if u.SecretHash != nil {
		secret = *u.SecretHash
	}
	c, err := scanClient(tx.QueryRow(ctx, `
		UPDATE clients SET name = coalesce($2, name), grant_types = coalesce($3, grant_types),
		       allowed_origins = coalesce($4, allowed_origins), audience = coalesce($5, audience),
		       roles = coalesce($6, roles), disabled = coalesce($7, disabled),
		       secret_hash = coalesce($8, secret_hash), updated_at = $9
		WHERE id = $1
		RETURNING `+clientColumns, u.ID, u.Name, u.GrantTypes, u.AllowedOrigins, u.Audience, u.Roles, u.Disabled, secret, u.UpdatedAt))
	if err != nil {
		return tokens.Client{}, nil, wrap(err)
	}
	var revs []tokens.Revocation
	if u.Revoke != nil {
		if revs, err = revokeClient(ctx, tx, u.ID, *u.Revoke); err != nil {
			return tokens.Client{}, nil, err
		}
		c.TokenFamily = u.Revoke.NewFamily
	}
	if err := tx.Commit(ctx); err != nil {
		return tokens.Client{}, nil, wrap(err)
	}
	return c, revs, nil
}

// DeleteClient implements tokens.Store.
func (s *Store) DeleteClient(ctx context.Context, id string, r tokens.ClientRevocation) (_ []tokens.Revocation, err error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	defer s.timed("delete_client", time.Now(), &err)
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, wrap(err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // no-op after Commit
	var one int
	// Lock the row first, as UpdateClient does, so logins for it wait.
	if err := tx.QueryRow(ctx, `SELECT 1 FROM clients WHERE id = $1 FOR UPDATE`, id).Scan(&one); err != nil {
		return nil, wrap(err)
	}
	revs, err := revokeClient(ctx, tx, id, r)
	if err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM clients WHERE id = $1`, id); err != nil {
		return nil, wrap(err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, wrap(err)
	}
	return revs, nil
}

// sqlRevokeClient revokes every active session of client $7, locking them
// in id order like revoke-all.
const sqlRevokeClient = `
	WITH r AS (
		UPDATE sessions SET revoked_at = $1, revoked_reason = $6
		WHERE id IN (
			SELECT id FROM sessions
			WHERE client_id = $7 AND revoked_at IS NULL AND expires_at > $1::timestamptz - ($2::timestamptz - $1::timestamptz)
			ORDER BY id FOR UPDATE
		) AND revoked_at IS NULL
		RETURNING id, user_id` + sqlRevokeTail

// sqlDenyFamily denylists a client's client_credentials tokens (their sid
// is the family) and starts a new family. The family denied is the one on
// the row this transaction holds locked (not one read before): a concurrent
// change that started a new family cannot leave that family's tokens alive.
const sqlDenyFamily = `
	WITH d AS (
		INSERT INTO revocations (kind, subject, until, created_at)
		SELECT 'session', token_family, $1, $2 FROM clients WHERE id = $3
		ON CONFLICT (kind, subject) DO NOTHING
		RETURNING id, subject, until
	), f AS (
		UPDATE clients SET token_family = $4 WHERE id = $3
	), n AS (
		SELECT pg_notify('` + NotifyChannel + `', '') FROM d
	)
	SELECT d.id, d.subject, d.until, (SELECT count(*) FROM n) FROM d`

// revokeClient applies r inside tx: the client's sessions (if asked) and
// its token family.
func revokeClient(ctx context.Context, tx pgx.Tx, id string, r tokens.ClientRevocation) ([]tokens.Revocation, error) {
	var revs []tokens.Revocation
	scan := func(rows pgx.Rows) error {
		for rows.Next() {
			rev := tokens.Revocation{Kind: tokens.RevokeSession}
			var n int
			if err := rows.Scan(&rev.ID, &rev.Subject, &rev.Until, &n); err != nil {
				return err
			}
			revs = append(revs, rev)
		}
		return rows.Err()
	}
	b := &pgx.Batch{}
	sr := r.Sessions
	if r.EndSessions {
		detail := tokens.NonNilMap(sr.Event.Detail)
		b.Queue(sqlRevokeClient, sr.At, sr.DenyUntil, sr.Event.Kind, sr.Event.IP, detail, sr.Reason, id).Query(scan)
	}
	b.Queue(sqlDenyFamily, sr.DenyUntil, sr.At, id, r.NewFamily).Query(scan)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return revs, nil
		}
		return nil, wrap(err)
	}
	return revs, nil
}
