package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/rotorauth/rotor/internal/tokens"
)

// sessionColumns reads a session. Its last use is the last rotation
// (rotated_at), or the login (last_used_at, which v2 rotations leave alone:
// it precedes the login's user agent in the row, and a column written there
// would put the user agent into every rotation's WAL record).
const sessionColumns = `s.id, s.user_id, s.created_at, coalesce(s.rotated_at, s.last_used_at), s.expires_at, s.revoked_at,
	coalesce(s.revoked_reason, ''), s.user_agent, s.ip, coalesce(s.client_id, ''),
	s.active_selector, s.active_expires_at, s.prev_selector, s.rotated_at,
	s.generation, s.verifier_hash, s.refresh_count, coalesce(s.last_ip, s.ip), coalesce(s.last_user_agent, s.user_agent)`

// sessionScan receives sessionColumns.
type sessionScan struct {
	s         *tokens.Session
	rotatedAt *time.Time
	gen       int64
}

func (x *sessionScan) dest() []any {
	s := x.s
	return []any{&s.ID, &s.UserID, &s.CreatedAt, &s.LastUsedAt, &s.ExpiresAt, &s.RevokedAt,
		&s.RevokedReason, &s.UserAgent, &s.IP, &s.ClientID,
		&s.Chain.ActiveSelector, &s.Chain.ActiveExpiresAt, &s.Chain.PrevSelector, &x.rotatedAt,
		&x.gen, &s.Chain.VerifierHash, &s.RefreshCount, &s.LastIP, &s.LastUserAgent}
}

func (x *sessionScan) finish() {
	if x.rotatedAt != nil {
		x.s.Chain.RotatedAt = *x.rotatedAt
	}
	x.s.Chain.Generation = uint64(x.gen) // #nosec G115 -- the column is ≥ 0 (it starts at 0 and only grows)
}

// sqlCreateSession is a login in one statement: FOR SHARE on the user row
// (and on the client row, for a client other than the default) holds off a
// concurrent disable, password or role change (its UPDATE waits for us,
// then its revocation sees this session), and one that committed first
// makes the CTE insert nothing or return the new roles: FOR SHARE reads the
// newest version of the row it locks.
const sqlCreateSession = `
	WITH c AS (
		SELECT id FROM clients WHERE id = $11 AND NOT disabled FOR SHARE
	), u AS (
		SELECT id, email, roles, created_at FROM users
		WHERE id = $2 AND NOT disabled AND password_hash = $10
		  AND ($11::text IS NULL OR EXISTS (SELECT 1 FROM c))
		FOR SHARE /* user lock */
	), s AS (
		INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, user_agent, ip,
		                      active_expires_at, client_id, rotated_at, generation, verifier_hash,
		                      last_ip, last_user_agent)
		SELECT $1, u.id, $3, $3, $4, $5, $6, $7, $11, $3, 0, $8, $6, $5 FROM u
		RETURNING id
	), a AS (
		INSERT INTO audit_events (at, kind, user_id, session_id, ip)
		SELECT $3, $9, $2, s.id, $6 FROM s
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
				ORDER BY coalesce(rotated_at, last_used_at) DESC, id DESC OFFSET $9
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
	ss, ev := ns.Session, ns.Event
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
		ss.Chain.ActiveExpiresAt, ss.Chain.VerifierHash, ev.Kind, ns.PasswordHash, nullIfEmpty(ss.ClientID)).QueryRow(func(row pgx.Row) error {
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

// sqlRotateActive is the whole common-case rotation: one statement on the
// session row, found by primary key, in one round trip (autocommit). CTE l
// locks the row only if nobody holds it (SKIP LOCKED), checking every rule
// of the fast path on its newest version, and reads the user by primary
// key; the UPDATE then rotates that row in place (no indexed column
// changes, so it is a HOT update) and nothing is inserted, unless the
// caller moved (or every refresh is audited): then CTE a writes the event.
// When any rule fails, or the session is busy, nothing at all is written
// and the caller takes the locked path. Never waiting is what makes $3,
// the clock read just before the statement, a reading taken after the
// session is serialized: a concurrent presentation of the same token finds
// the row locked (or, once the winner committed, at another generation) and
// goes to the locked path, which reads the clock after its lock; and a row
// whose last rotation is later than $3 (another instance's clock ahead, or
// a rotation committed between the reading and the lock) is left to the
// locked path too.
//
// The verifier hash is compared in constant time in SQL: the XOR of the two
// 256-bit strings is computed whole and its set bits counted, with no early
// exit on the first differing byte (bytea "=" would stop there).
const sqlRotateActive = `
	WITH l AS (
		SELECT s.id, s.user_id, s.created_at, s.expires_at,
		       coalesce(s.last_ip, s.ip) AS prev_ip, coalesce(s.last_user_agent, s.user_agent) AS prev_ua,
		       u.email, u.roles, u.created_at AS user_created
		FROM sessions s JOIN users u ON u.id = s.user_id
		WHERE s.id = $1 AND s.generation = $2 AND s.revoked_at IS NULL
		  AND s.expires_at > $3 AND s.active_expires_at > $3 AND s.rotated_at <= $3
		  AND s.rotated_at = $13
		  AND (coalesce(s.client_id, '') = $7 OR ($7 = '' AND s.client_id = $14)) AND NOT u.disabled
		  AND octet_length(s.verifier_hash) = 32 AND octet_length($5::bytea) = 32
		  AND bit_count(('x' || encode(s.verifier_hash, 'hex'))::bit(256)
		              # ('x' || encode($5::bytea, 'hex'))::bit(256)) = 0
		FOR UPDATE OF s SKIP LOCKED
	), r AS (
		UPDATE sessions s
		SET active_expires_at = LEAST($4::timestamptz, s.expires_at), prev_selector = NULL, rotated_at = $3,
		    generation = s.generation + 1, verifier_hash = $6, refresh_count = s.refresh_count + 1,
		    last_ip = $8, last_user_agent = $9
		FROM l WHERE s.id = l.id
		RETURNING s.active_expires_at, s.generation, s.refresh_count
	), a AS (
		INSERT INTO audit_events (at, kind, user_id, session_id, ip, detail)
		SELECT $3, $11, l.user_id, l.id, $8, '{}'::jsonb FROM r, l WHERE $10
		UNION ALL
		SELECT $3, $12, l.user_id, l.id, $8,
		       jsonb_build_object('previous_ip', l.prev_ip, 'previous_user_agent', l.prev_ua, 'user_agent', $9::text)
		FROM r, l WHERE l.prev_ip <> $8 OR l.prev_ua <> $9
	)
	SELECT l.user_id, l.created_at, l.expires_at, r.active_expires_at, r.generation, r.refresh_count,
	       l.email, l.roles, l.user_created
	FROM r, l`

// RotateActive implements tokens.FastRotator with sqlRotateActive.
func (s *Store) RotateActive(ctx context.Context, r tokens.ActiveRotation) (_ tokens.RefreshState, _ bool, err error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	defer s.timed("rotate_active", time.Now(), &err)
	if r.Generation >= math.MaxInt64 {
		return tokens.RefreshState{}, false, nil
	}
	// The clock is read once a connection is ours: a wait for the pool
	// must not age the instant (the statement itself never waits for the
	// row lock).
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return tokens.RefreshState{}, false, wrap(err)
	}
	defer conn.Release()
	now := r.Now()
	var st tokens.RefreshState
	sess := &st.Session
	var gen int64
	// pgtype.UUID encodes in binary directly (uuid.UUID goes through
	// driver.Valuer and a text round trip).
	err = conn.QueryRow(ctx, sqlRotateActive, pgUUID(r.SessionID), int64(r.Generation), now, now.Add(r.RefreshTTL),
		r.VerifierHash, r.SuccessorHash, r.ClientID, r.Client.IP, r.Client.UserAgent, r.EveryRefresh,
		tokens.EventRefresh, tokens.EventSessionMoved, r.IssuedAt, r.DefaultClientID).Scan(&sess.UserID, &sess.CreatedAt, &sess.ExpiresAt,
		&sess.Chain.ActiveExpiresAt, &gen, &sess.RefreshCount, &st.User.Email, &st.User.Roles, &st.User.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return tokens.RefreshState{}, false, nil
	}
	if err != nil {
		return tokens.RefreshState{}, false, wrap(err)
	}
	sess.ID, sess.LastUsedAt = r.SessionID, now
	sess.LastIP, sess.LastUserAgent = r.Client.IP, r.Client.UserAgent
	sess.Chain.Generation, sess.Chain.VerifierHash, sess.Chain.RotatedAt = uint64(gen), r.SuccessorHash, now // #nosec G115 -- the column is ≥ 0
	st.User.ID = sess.UserID
	st.User.Roles = tokens.NonNil(st.User.Roles)
	return st, true, nil
}

// sqlRefreshState reads a session and its user, and locks the session row;
// when it was changed by a transaction we waited for, PostgreSQL re-reads
// its newest version (EvalPlanQual).
const sqlRefreshState = `
	SELECT ` + sessionColumns + `, u.email, u.roles, u.disabled, u.created_at
	FROM sessions s JOIN users u ON u.id = s.user_id
	WHERE s.id = $1
	FOR UPDATE OF s`

// sqlLegacyRefreshState is sqlRefreshState for a v1 token, found by its
// selector with its refresh_tokens row (which never changes).
const sqlLegacyRefreshState = `
	SELECT t.session_id, t.verifier_hash, t.parent_selector, t.created_at, t.expires_at,
	       ` + sessionColumns + `, u.email, u.roles, u.disabled, u.created_at
	FROM refresh_tokens t
	JOIN sessions s ON s.id = t.session_id
	JOIN users u ON u.id = s.user_id
	WHERE t.selector = $1
	FOR UPDATE OF s`

// sqlRotate replaces the session's chain, guarded by the generation decide
// saw; the audit INSERT (the events, as one JSON array) reads its
// RETURNING, so a guard miss writes nothing at all.
const sqlRotate = `
	WITH r AS (
		UPDATE sessions
		SET active_selector = NULL, active_expires_at = $3, prev_selector = $4, rotated_at = $5,
		    generation = $6, verifier_hash = $7, refresh_count = refresh_count + 1,
		    last_ip = $8, last_user_agent = $9
		WHERE id = $1 AND generation = $2 AND revoked_at IS NULL
		RETURNING id, user_id
	), a AS (
		INSERT INTO audit_events (at, kind, user_id, session_id, ip, detail)
		SELECT (e->>'at')::timestamptz, e->>'kind', r.user_id, r.id, e->>'ip', e->'detail'
		FROM r, jsonb_array_elements($10::jsonb) e
	)
	SELECT count(*) FROM r`

// auditJSON is an event as sqlRotate reads it.
type auditJSON struct {
	At     time.Time         `json:"at"`
	Kind   tokens.EventKind  `json:"kind"`
	IP     string            `json:"ip"`
	Detail map[string]string `json:"detail"`
}

// Refresh implements tokens.Store in two round trips on one connection:
//
//  1. BEGIN and sqlRefreshState (or its v1 form), pipelined: the session
//     row is locked and read. decide runs in Go, where secrets are compared
//     in constant time (SQL equality would not be).
//  2. The outcome's writes and COMMIT, pipelined: sqlRotate (or a
//     revocation) is one statement.
//
// A failure anywhere leaves the transaction uncommitted: the connection is
// then in a transaction or broken, and the pool destroys it on release, which
// rolls the transaction back.
func (s *Store) Refresh(ctx context.Context, ref tokens.TokenRef, decide func(tokens.RefreshState) (tokens.RefreshOutcome, error)) (_ []tokens.Revocation, err error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	defer s.timed("refresh", time.Now(), &err)
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, wrap(err)
	}
	defer conn.Release()

	var st tokens.RefreshState
	sc := sessionScan{s: &st.Session}
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	if ref.LegacySelector != nil {
		b.Queue(sqlLegacyRefreshState, ref.LegacySelector).QueryRow(func(row pgx.Row) error {
			t := &st.Legacy
			dest := append([]any{&t.SessionID, &t.VerifierHash, &t.ParentSelector, &t.CreatedAt, &t.ExpiresAt}, sc.dest()...)
			return row.Scan(append(dest, &st.User.Email, &st.User.Roles, &st.User.Disabled, &st.User.CreatedAt)...)
		})
		st.Legacy.Selector = ref.LegacySelector
	} else {
		b.Queue(sqlRefreshState, pgUUID(ref.SessionID)).QueryRow(func(row pgx.Row) error {
			return row.Scan(append(sc.dest(), &st.User.Email, &st.User.Roles, &st.User.Disabled, &st.User.CreatedAt)...)
		})
	}
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		_, _ = conn.Exec(context.Background(), "ROLLBACK") // best effort; Release destroys a conn left in a transaction
		if legacyTableGone(err) {
			s.legacyGone.Store(true)
			return nil, tokens.ErrNotFound
		}
		return nil, wrap(err)
	}
	st.User.ID = st.Session.UserID
	st.User.Roles = tokens.NonNil(st.User.Roles)
	sc.finish()

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
		c := out.Chain
		evs := make([]auditJSON, len(out.Events))
		for i, ev := range out.Events {
			evs[i] = auditJSON{At: ev.At, Kind: ev.Kind, IP: ev.IP, Detail: tokens.NonNilMap(ev.Detail)}
		}
		evJSON, err := json.Marshal(evs)
		if err != nil {
			return nil, err
		}
		// Generations come from the bigint column (≥ 0) plus one: they fit.
		oldGen, newGen := int64(st.Session.Chain.Generation), int64(c.Generation) // #nosec G115 -- see above
		b.Queue(sqlRotate, st.Session.ID, oldGen, c.ActiveExpiresAt, c.PrevSelector, c.RotatedAt,
			newGen, c.VerifierHash, out.Client.IP, out.Client.UserAgent, string(evJSON)).QueryRow(func(row pgx.Row) error {
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

// Session implements tokens.Store.
func (s *Store) Session(ctx context.Context, id uuid.UUID) (tokens.Session, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var sess tokens.Session
	sc := sessionScan{s: &sess}
	err := s.pool.QueryRow(ctx, `SELECT `+sessionColumns+` FROM sessions s WHERE s.id = $1`, id).Scan(sc.dest()...)
	if err != nil {
		return tokens.Session{}, wrap(err)
	}
	sc.finish()
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
		sc := sessionScan{s: &sess}
		if err := rows.Scan(sc.dest()...); err != nil {
			return nil, wrap(err)
		}
		sc.finish()
		out = append(out, sess)
	}
	return out, wrap(rows.Err())
}

// pgUUID is id as pgx encodes it without reflection.
func pgUUID(id uuid.UUID) pgtype.UUID { return pgtype.UUID{Bytes: id, Valid: true} }

// nullIfEmpty stores "" as NULL (the default client's sessions).
func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
