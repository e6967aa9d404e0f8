package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rotorauth/rotor/internal/tokens"
)

const userColumns = `id, email, password_hash, roles, disabled, created_at`

func scanUser(row pgx.Row) (tokens.User, error) {
	var u tokens.User
	err := row.Scan(&u.ID, &u.Email, &u.PasswordHash, &u.Roles, &u.Disabled, &u.CreatedAt)
	u.Roles = tokens.NonNil(u.Roles)
	return u, wrap(err)
}

// CreateUser implements tokens.Store.
func (s *Store) CreateUser(ctx context.Context, u tokens.User) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	u.Roles = tokens.NonNil(u.Roles)
	_, err := s.pool.Exec(ctx,
		`INSERT INTO users (id, email, password_hash, roles, disabled, created_at, updated_at)
		 VALUES ($1, $2, $3, $4, $5, $6, $6)`,
		u.ID, u.Email, u.PasswordHash, u.Roles, u.Disabled, u.CreatedAt)
	return wrap(err)
}

// UserByEmail implements tokens.Store.
func (s *Store) UserByEmail(ctx context.Context, email string) (_ tokens.User, err error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	defer s.timed("user_by_email", time.Now(), &err)
	return scanUser(s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE email = $1`, email))
}

// UserByID implements tokens.Store.
func (s *Store) UserByID(ctx context.Context, id uuid.UUID) (tokens.User, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	return scanUser(s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id))
}

// UpdateUser implements tokens.Store. The user update and the revocation are
// separate statements of one transaction on purpose: the revocation must
// take its snapshot after the user row is locked, so that a login that
// committed while we waited for that lock is revoked too.
func (s *Store) UpdateUser(ctx context.Context, up tokens.UserUpdate) (_ tokens.User, _ []tokens.Revocation, err error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	defer s.timed("update_user", time.Now(), &err)
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return tokens.User{}, nil, wrap(err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // after Commit this is a no-op
	var roles any
	if up.Roles != nil {
		r := *up.Roles
		r = tokens.NonNil(r)
		roles = r
	}
	// The old roles come from the row this UPDATE locks, so whether a role
	// was lost is decided on the same version the update replaces.
	var before []string
	var u tokens.User
	err = tx.QueryRow(ctx,
		`UPDATE users u SET disabled = coalesce($2, u.disabled), roles = coalesce($3, u.roles),
		        password_hash = coalesce($4, u.password_hash), updated_at = now()
		 FROM (SELECT id, roles FROM users WHERE id = $1 FOR UPDATE) old
		 WHERE u.id = old.id
		 RETURNING old.roles, u.id, u.email, u.password_hash, u.roles, u.disabled, u.created_at`,
		up.ID, up.Disabled, roles, up.PasswordHash).Scan(&before, &u.ID, &u.Email, &u.PasswordHash, &u.Roles, &u.Disabled, &u.CreatedAt)
	if err != nil {
		return tokens.User{}, nil, wrap(err)
	}
	u.Roles = tokens.NonNil(u.Roles)
	if up.Event != nil {
		if err := insertAudit(ctx, tx, *up.Event); err != nil {
			return tokens.User{}, nil, err
		}
	}
	revoke := up.Revoke
	if revoke == nil && up.RevokeOnRoleLoss != nil && tokens.RolesLost(before, u.Roles) {
		revoke = up.RevokeOnRoleLoss
	}
	var revs []tokens.Revocation
	if revoke != nil {
		if revs, err = revokeSessions(ctx, tx, *revoke); err != nil {
			return tokens.User{}, nil, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return tokens.User{}, nil, wrap(err)
	}
	return u, revs, nil
}

// querier is what pool, conn and tx have in common.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func insertAudit(ctx context.Context, q querier, ev tokens.AuditEvent) error {
	detail := tokens.NonNilMap(ev.Detail)
	_, err := q.Exec(ctx,
		`INSERT INTO audit_events (at, kind, user_id, session_id, ip, detail) VALUES ($1, $2, $3, $4, $5, $6)`,
		ev.At, ev.Kind, ev.UserID, ev.SessionID, ev.IP, detail)
	if err != nil {
		return fmt.Errorf("audit: %w", wrap(err))
	}
	return nil
}
