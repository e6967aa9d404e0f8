package postgres

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/rotorauth/rotor/internal/tokens"
)

const sessionColumns = `s.id, s.user_id, s.created_at, s.last_used_at, s.expires_at, s.revoked_at,
	coalesce(s.revoked_reason, ''), s.user_agent, s.ip, coalesce(s.client_id, ''),
	s.active_selector, s.active_expires_at, s.prev_selector, s.rotated_at`

func sessionDest(s *tokens.Session, rotatedAt **time.Time) []any {
	return []any{&s.ID, &s.UserID, &s.CreatedAt, &s.LastUsedAt, &s.ExpiresAt, &s.RevokedAt,
		&s.RevokedReason, &s.UserAgent, &s.IP, &s.ClientID,
		&s.Chain.ActiveSelector, &s.Chain.ActiveExpiresAt, &s.Chain.PrevSelector, rotatedAt}
}

func finishSession(s *tokens.Session, rotatedAt *time.Time) {
	if rotatedAt != nil {
		s.Chain.RotatedAt = *rotatedAt
	}
}

// sqlCreateSession is a login in one statement: FOR SHARE on the user row
// (and on the client row, for a client other than the default) holds off a
// concurrent disable, password or role change (its UPDATE waits for us,
// then its revocation sees this session), and one that committed first
// makes the CTE insert nothing or return the new roles: FOR SHARE reads the
// newest version of the row it locks.
const sqlCreateSession = `
	WITH c AS (
		SELECT id FROM clients WHERE id = $12 AND NOT disabled FOR SHARE
	), u AS (
		SELECT id, email, roles, created_at FROM users
		WHERE id = $2 AND NOT disabled AND password_hash = $11
		  AND ($12::text IS NULL OR EXISTS (SELECT 1 FROM c))
		FOR SHARE /* user lock */
	), s AS (
		INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, user_agent, ip,
		                      active_selector, active_expires_at, client_id)
		SELECT $1, u.id, $3, $3, $4, $5, $6, $7, $8, $12 FROM u
		RETURNING id
	), t AS (
		INSERT INTO refresh_tokens (selector, session_id, verifier_hash, created_at, expires_at)
		SELECT $7, s.id, $9, $3, $8 FROM s
	), a AS (
		INSERT INTO audit_events (at, kind, user_id, session_id, ip)
		SELECT $3, $10, $2, s.id, $6 FROM s
	)
	SELECT u.email, u.roles, u.created_at, (SELECT count(*) FROM s) FROM u`

// sqlEvictSessions revokes user $7's active sessions beyond the $9 most
// recently used ones other than the new session $8, if $8 was created. It is
// a second statement of the login's transaction, so its snapshot includes
// the new session; the rows are locked in id order, as revoke-all locks
// them, so the two cannot deadlock.
const sqlEvictSessions = `
	WITH r AS (
		UPDATE sessions SET revoked_at = $1, revoked_reason = $6
		WHERE id IN (
			SELECT id FROM sessions WHERE id IN (
				SELECT id FROM sessions
				WHERE user_id = $7 AND revoked_at IS NULL AND expires_at > $1 AND id <> $8
				ORDER BY last_used_at DESC, id DESC OFFSET $9
			) ORDER BY id FOR UPDATE
		) AND revoked_at IS NULL AND EXISTS (SELECT 1 FROM sessions WHERE id = $8)
		RETURNING id, user_id` + sqlRevokeTail

// CreateSession implements tokens.Store: sqlCreateSession alone, or with
// sqlEvictSessions in one transaction (one round trip, pipelined) when the
// user's sessions are capped.
func (s *Store) CreateSession(ctx context.Context, ns tokens.NewSession) (_ tokens.User, _ []tokens.Revocation, err error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	defer s.timed("create_session", time.Now(), &err)
	ss, t, ev := ns.Session, ns.Token, ns.Event
	u := tokens.User{ID: ss.UserID}
	var n int
	b := &pgx.Batch{}
	capped := ns.MaxSessions > 0
	if capped {
		b.Queue("BEGIN")
	}
	q := sqlCreateSession
	if capped {
		// Logins of one user take turns, so each sees the others' sessions
		// when it counts them for the cap; FOR NO KEY UPDATE still lets
		// rotations (which do not lock the user) run.
		q = strings.Replace(q, "FOR SHARE /* user lock */", "FOR NO KEY UPDATE", 1)
	}
	b.Queue(q, ss.ID, ss.UserID, ss.CreatedAt, ss.ExpiresAt, ss.UserAgent, ss.IP,
		t.Selector, t.ExpiresAt, t.VerifierHash, ev.Kind, ns.PasswordHash, nullIfEmpty(ss.ClientID)).QueryRow(func(row pgx.Row) error {
		err := row.Scan(&u.Email, &u.Roles, &u.CreatedAt, &n)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // n stays 0
		}
		return err
	})
	var revs []tokens.Revocation
	if capped {
		r := ns.Evict
		detail := tokens.NonNilMap(r.Event.Detail)
		b.Queue(sqlEvictSessions, r.At, r.DenyUntil, r.Event.Kind, r.Event.IP, detail, r.Reason, ss.UserID, ss.ID,
			ns.MaxSessions-1).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				rev := tokens.Revocation{Kind: tokens.RevokeSession}
				var notified int
				if err := rows.Scan(&rev.ID, &rev.Subject, &rev.Until, &notified); err != nil {
					return err
				}
				revs = append(revs, rev)
			}
			return rows.Err()
		})
		b.Queue("COMMIT")
	}
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return tokens.User{}, nil, wrap(err)
	}
	if n != 1 {
		return tokens.User{}, nil, tokens.ErrNotFound
	}
	u.Roles = tokens.NonNil(u.Roles)
	return u, revs, nil
}

// sqlRotateActive is the whole common-case rotation in one statement and
// one round trip (autocommit). CTE l finds the token by its selector
// (primary key) and locks its session row only if nobody holds it (SKIP
// LOCKED), checking every rule of the fast path on the newest version of the
// row; the UPDATE then rotates that row, and the token and audit INSERTs
// read its RETURNING, so when any rule fails, or the session is busy, nothing
// at all is written and the caller takes the locked path. Never waiting is
// what makes $3, the clock read just before the statement, a reading taken
// after the session is serialized: a concurrent presentation of the same
// token finds the row locked (or, once the winner committed, no longer
// active) and goes to the locked path, which reads the clock after its lock.
//
// The verifier hash is compared in constant time in SQL: the XOR of the two
// 256-bit strings is computed whole and its set bits counted, with no early
// exit on the first differing byte (bytea "=" would stop there).
const sqlRotateActive = `
	WITH l AS (
		SELECT s.id FROM refresh_tokens t
		JOIN sessions s ON s.id = t.session_id
		JOIN users u ON u.id = s.user_id
		WHERE t.selector = $1
		  AND s.active_selector = $1 AND s.revoked_at IS NULL AND s.expires_at > $3
		  AND coalesce(s.client_id, '') = $9
		  AND t.expires_at > $3 AND NOT u.disabled
		  AND octet_length(t.verifier_hash) = 32 AND octet_length($5::bytea) = 32
		  AND bit_count(('x' || encode(t.verifier_hash, 'hex'))::bit(256)
		              # ('x' || encode($5::bytea, 'hex'))::bit(256)) = 0
		FOR UPDATE OF s SKIP LOCKED
	), s AS (
		UPDATE sessions s
		SET active_selector = $2, active_expires_at = LEAST($4::timestamptz, s.expires_at),
		    prev_selector = $1, rotated_at = $3, last_used_at = $3
		FROM l, users u
		WHERE s.id = l.id AND u.id = s.user_id
		RETURNING s.id, s.user_id, s.created_at AS session_created, s.expires_at, s.active_expires_at, u.email, u.roles, u.created_at AS user_created
	), t AS (
		INSERT INTO refresh_tokens (selector, session_id, verifier_hash, parent_selector, created_at, expires_at)
		SELECT $2, s.id, $6, $1, $3, s.active_expires_at FROM s
	), a AS (
		INSERT INTO audit_events (at, kind, user_id, session_id, ip)
		SELECT $3, $7, s.user_id, s.id, $8 FROM s
	)
	SELECT id, user_id, session_created, expires_at, active_expires_at, email, roles, user_created FROM s`

// RotateActive implements tokens.Store with sqlRotateActive.
func (s *Store) RotateActive(ctx context.Context, r tokens.ActiveRotation) (_ tokens.RefreshState, _ bool, err error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	defer s.timed("rotate_active", time.Now(), &err)
	var st tokens.RefreshState
	n := r.Successor
	// The clock is read once a connection is ours: a wait for the pool
	// must not age the instant (the statement itself never waits for the
	// row lock).
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return tokens.RefreshState{}, false, wrap(err)
	}
	defer conn.Release()
	now := r.Now()
	err = conn.QueryRow(ctx, sqlRotateActive, r.Selector, n.Selector, now, now.Add(r.RefreshTTL), r.VerifierHash,
		n.VerifierHash, r.Event.Kind, r.Event.IP, r.ClientID).Scan(&st.Session.ID, &st.Session.UserID, &st.Session.CreatedAt,
		&st.Session.ExpiresAt, &st.Session.Chain.ActiveExpiresAt, &st.User.Email, &st.User.Roles, &st.User.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return tokens.RefreshState{}, false, nil
	}
	if err != nil {
		return tokens.RefreshState{}, false, wrap(err)
	}
	st.User.ID = st.Session.UserID
	st.User.Roles = tokens.NonNil(st.User.Roles)
	st.Session.LastUsedAt, st.Session.ClientID = now, r.ClientID
	st.Session.Chain.ActiveSelector, st.Session.Chain.PrevSelector, st.Session.Chain.RotatedAt = n.Selector, r.Selector, now
	n.SessionID, n.ParentSelector, n.CreatedAt, n.ExpiresAt = st.Session.ID, r.Selector, now, st.Session.Chain.ActiveExpiresAt
	st.Token = n
	return st, true, nil
}

// sqlRefreshState reads the presented token, its session and its user, and
// locks the session row. Token rows never change, so only the session row
// needs the lock; when it was changed by a transaction we waited for,
// PostgreSQL re-reads its newest version (EvalPlanQual).
const sqlRefreshState = `
	SELECT t.session_id, t.verifier_hash, t.parent_selector, t.created_at, t.expires_at,
	       ` + sessionColumns + `,
	       u.email, u.roles, u.disabled, u.created_at
	FROM refresh_tokens t
	JOIN sessions s ON s.id = t.session_id
	JOIN users u ON u.id = s.user_id
	WHERE t.selector = $1
	FOR UPDATE OF s`

// sqlRotate makes the successor the active token. The session UPDATE is
// guarded by the state decide saw; the token and audit INSERTs read from its
// RETURNING, so a guard miss writes nothing at all.
const sqlRotate = `
	WITH s AS (
		UPDATE sessions
		SET active_selector = $2, active_expires_at = $3, prev_selector = $4,
		    rotated_at = $5, last_used_at = $5
		WHERE id = $1 AND active_selector = $4 AND revoked_at IS NULL
		RETURNING id, user_id
	), t AS (
		INSERT INTO refresh_tokens (selector, session_id, verifier_hash, parent_selector, created_at, expires_at)
		SELECT $2, s.id, $6, $4, $5, $3 FROM s
	), a AS (
		INSERT INTO audit_events (at, kind, user_id, session_id, ip)
		SELECT $5, $7, s.user_id, s.id, $8 FROM s
	)
	SELECT count(*) FROM s`

// Refresh implements tokens.Store in two round trips on one connection:
//
//  1. BEGIN and sqlRefreshState, pipelined: the session row is locked and
//     read. decide runs in Go, where the verifier is compared in constant
//     time (SQL equality would not be).
//  2. The outcome's writes and COMMIT, pipelined: sqlRotate (or a
//     revocation) is one statement.
//
// A failure anywhere leaves the transaction uncommitted: the connection is
// then in a transaction or broken, and the pool destroys it on release, which
// rolls the transaction back.
func (s *Store) Refresh(ctx context.Context, selector []byte, decide func(tokens.RefreshState) (tokens.RefreshOutcome, error)) (_ []tokens.Revocation, err error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	defer s.timed("refresh", time.Now(), &err)
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, wrap(err)
	}
	defer conn.Release()

	var st tokens.RefreshState
	var rotatedAt *time.Time
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(sqlRefreshState, selector).QueryRow(func(row pgx.Row) error {
		dest := []any{&st.Token.SessionID, &st.Token.VerifierHash, &st.Token.ParentSelector,
			&st.Token.CreatedAt, &st.Token.ExpiresAt}
		dest = append(dest, sessionDest(&st.Session, &rotatedAt)...)
		dest = append(dest, &st.User.Email, &st.User.Roles, &st.User.Disabled, &st.User.CreatedAt)
		return row.Scan(dest...)
	})
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		_, _ = conn.Exec(context.Background(), "ROLLBACK") // best effort; Release destroys a conn left in a transaction
		return nil, wrap(err)
	}
	st.Token.Selector = selector
	st.User.ID = st.Session.UserID
	st.User.Roles = tokens.NonNil(st.User.Roles)
	finishSession(&st.Session, rotatedAt)

	out, err := decide(st)
	if err != nil {
		_, rbErr := conn.Exec(ctx, "ROLLBACK")
		if rbErr != nil {
			return nil, wrap(rbErr)
		}
		return nil, err
	}

	b = &pgx.Batch{}
	var revs []tokens.Revocation
	switch out.Kind {
	case tokens.OutcomeRotate:
		n := &out.Successor
		b.Queue(sqlRotate, st.Session.ID, n.Selector, n.ExpiresAt, st.Token.Selector, out.Now,
			n.VerifierHash, out.Event.Kind, out.Event.IP).QueryRow(func(row pgx.Row) error {
			var count int
			if err := row.Scan(&count); err != nil {
				return err
			}
			if count != 1 {
				return tokens.ErrConflict // cannot happen under the lock
			}
			return nil
		})
	case tokens.OutcomeRevoke:
		queueRevoke(b, out.Revoke, &revs)
	}
	b.Queue("COMMIT")
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return nil, wrap(err)
	}
	return revs, nil
}

// Revocation statements. Sessions that expired less than an access-token
// lifetime ago ($1 - ($2 - $1)) are revoked too: an access token issued just
// before the session's end still lives. The UPDATE takes the session row locks (the same
// lock a rotation takes) in id order, so revoke-all cannot deadlock with
// another revoke-all; the denylist and audit INSERTs read its RETURNING;
// pg_notify is delivered at COMMIT to every instance's listener.
const sqlRevokeTail = `
	), d AS (
		INSERT INTO revocations (kind, subject, until, created_at)
		SELECT 'session', r.id, $2, $1 FROM r
		RETURNING id, subject, until
	), a AS (
		INSERT INTO audit_events (at, kind, user_id, session_id, ip, detail)
		SELECT $1, $3, r.user_id, r.id, $4, $5 FROM r
	), n AS (
		SELECT pg_notify('` + NotifyChannel + `', '') FROM d LIMIT 1
	)
	SELECT d.id, d.subject, d.until, (SELECT count(*) FROM n) FROM d ORDER BY d.id`

// sqlRevokeOne revokes one session, of user $8 unless $8 is the nil UUID.
const sqlRevokeOne = `
	WITH r AS (
		UPDATE sessions SET revoked_at = $1, revoked_reason = $6
		WHERE id = $7 AND revoked_at IS NULL AND expires_at > $1::timestamptz - ($2::timestamptz - $1::timestamptz)
		  AND ($8 = '00000000-0000-0000-0000-000000000000'::uuid OR user_id = $8)
		RETURNING id, user_id` + sqlRevokeTail

// sqlRevokeUser revokes every active session of user $7 but $8.
const sqlRevokeUser = `
	WITH r AS (
		UPDATE sessions SET revoked_at = $1, revoked_reason = $6
		WHERE id IN (
			SELECT id FROM sessions
			WHERE user_id = $7 AND revoked_at IS NULL AND expires_at > $1::timestamptz - ($2::timestamptz - $1::timestamptz) AND id <> $8
			ORDER BY id FOR UPDATE
		) AND revoked_at IS NULL
		RETURNING id, user_id` + sqlRevokeTail

func queueRevoke(b *pgx.Batch, r tokens.SessionRevocation, out *[]tokens.Revocation) {
	detail := tokens.NonNilMap(r.Event.Detail)
	q, a, bArg := sqlRevokeUser, r.UserID, r.Except
	if r.SessionID != uuid.Nil {
		q, a, bArg = sqlRevokeOne, r.SessionID, r.UserID
	}
	b.Queue(q, r.At, r.DenyUntil, r.Event.Kind, r.Event.IP, detail, r.Reason, a, bArg).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			rev := tokens.Revocation{Kind: tokens.RevokeSession}
			var n int
			if err := rows.Scan(&rev.ID, &rev.Subject, &rev.Until, &n); err != nil {
				return err
			}
			*out = append(*out, rev)
		}
		return rows.Err()
	})
}

func revokeSessions(ctx context.Context, tx pgx.Tx, r tokens.SessionRevocation) ([]tokens.Revocation, error) {
	var revs []tokens.Revocation
	b := &pgx.Batch{}
	queueRevoke(b, r, &revs)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, wrap(err)
	}
	return revs, nil
}

// RevokeSessions implements tokens.Store: one statement, its own
// transaction.
func (s *Store) RevokeSessions(ctx context.Context, r tokens.SessionRevocation) (_ []tokens.Revocation, err error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	defer s.timed("revoke_sessions", time.Now(), &err)
	var revs []tokens.Revocation
	b := &pgx.Batch{}
	queueRevoke(b, r, &revs)
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, wrap(err)
	}
	return revs, nil
}

// DenyToken implements tokens.Store. ON CONFLICT makes a repeated denial
// write nothing, and so does a denied session: the audit and notify CTEs
// read the INSERT's RETURNING, which is empty then.
func (s *Store) DenyToken(ctx context.Context, jti uuid.UUID, until time.Time, ev tokens.AuditEvent) (_ tokens.Revocation, err error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	defer s.timed("deny_token", time.Now(), &err)
	detail := tokens.NonNilMap(ev.Detail)
	rev := tokens.Revocation{Kind: tokens.RevokeToken, Subject: jti, Until: until}
	var n int
	err = s.pool.QueryRow(ctx, `
		WITH d AS (
			INSERT INTO revocations (kind, subject, until, created_at)
			SELECT 'token', $1, $2, $3
			WHERE NOT EXISTS (SELECT 1 FROM revocations WHERE kind = 'session' AND subject = $6)
			ON CONFLICT (kind, subject) DO NOTHING RETURNING id
		), a AS (
			INSERT INTO audit_events (at, kind, user_id, session_id, ip, detail)
			SELECT $3, $4, $5, $6, $7, $8 FROM d
		), n AS (
			SELECT pg_notify('`+NotifyChannel+`', '') FROM d
		)
		SELECT d.id, (SELECT count(*) FROM n) FROM d`,
		jti, until, ev.At, ev.Kind, ev.UserID, ev.SessionID, ev.IP, detail).Scan(&rev.ID, &n)
	if errors.Is(err, pgx.ErrNoRows) {
		return tokens.Revocation{}, tokens.ErrConflict
	}
	return rev, wrap(err)
}

// SessionBySelector implements tokens.Store.
func (s *Store) SessionBySelector(ctx context.Context, selector []byte) (tokens.Session, tokens.RefreshRecord, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var sess tokens.Session
	var rec tokens.RefreshRecord
	var rotatedAt *time.Time
	dest := append([]any{&rec.SessionID, &rec.VerifierHash, &rec.ParentSelector, &rec.CreatedAt, &rec.ExpiresAt},
		sessionDest(&sess, &rotatedAt)...)
	err := s.pool.QueryRow(ctx, `
		SELECT t.session_id, t.verifier_hash, t.parent_selector, t.created_at, t.expires_at, `+sessionColumns+`
		FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
		WHERE t.selector = $1`, selector).Scan(dest...)
	if err != nil {
		return tokens.Session{}, tokens.RefreshRecord{}, wrap(err)
	}
	rec.Selector = selector
	finishSession(&sess, rotatedAt)
	return sess, rec, nil
}

// Session implements tokens.Store.
func (s *Store) Session(ctx context.Context, id uuid.UUID) (tokens.Session, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var sess tokens.Session
	var rotatedAt *time.Time
	err := s.pool.QueryRow(ctx, `SELECT `+sessionColumns+` FROM sessions s WHERE s.id = $1`, id).
		Scan(sessionDest(&sess, &rotatedAt)...)
	if err != nil {
		return tokens.Session{}, wrap(err)
	}
	finishSession(&sess, rotatedAt)
	return sess, nil
}

// ActiveSessions implements tokens.Store. Keyset pagination on
// (created_at DESC, id): a page never repeats or skips a session because
// others were created or revoked meanwhile.
func (s *Store) ActiveSessions(ctx context.Context, userID uuid.UUID, now time.Time, after *tokens.SessionCursor, limit int) ([]tokens.Session, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var afterAt *time.Time
	afterID := uuid.Nil
	if after != nil {
		afterAt, afterID = &after.CreatedAt, after.ID
	}
	rows, err := s.pool.Query(ctx, `
		SELECT `+sessionColumns+` FROM sessions s
		WHERE s.user_id = $1 AND s.revoked_at IS NULL AND s.expires_at > $2
		  AND ($3::timestamptz IS NULL OR s.created_at < $3 OR (s.created_at = $3 AND s.id > $4))
		ORDER BY s.created_at DESC, s.id LIMIT $5`, userID, now, afterAt, afterID, limit)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	out := []tokens.Session{}
	for rows.Next() {
		var sess tokens.Session
		var rotatedAt *time.Time
		if err := rows.Scan(sessionDest(&sess, &rotatedAt)...); err != nil {
			return nil, wrap(err)
		}
		finishSession(&sess, rotatedAt)
		out = append(out, sess)
	}
	return out, wrap(rows.Err())
}

// nullIfEmpty stores "" as NULL (the default client's sessions).
func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
