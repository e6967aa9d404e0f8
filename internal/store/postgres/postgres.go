// Package postgres is the PostgreSQL tokens.Store: a pgx/v5 pool, the goose
// migrations of package migrations, and LISTEN/NOTIFY for revocations. SQL
// lives next to the method that runs it.
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/rotorauth/rotor/internal/tokens"
	"github.com/rotorauth/rotor/migrations"
)

// Store is a tokens.Store on PostgreSQL.
type Store struct {
	pool    *pgxpool.Pool
	url     string
	observe func(op string, d time.Duration, err error)
	// current is set once the schema is known to be at the latest embedded
	// migration; readiness probes then only ping. Migrations only move
	// forward under a running server, so it never needs to be unset.
	current atomic.Bool
	// opTimeout bounds every store call (OpTimeout unless SetOpTimeout).
	opTimeout time.Duration
	// legacyGone is set once refresh_tokens is known to be dropped (by
	// `server legacy-tokens drop`, here or on another instance): v1 tokens
	// are then refused without a query (HasLegacyTokens).
	legacyGone atomic.Bool
}

// HasLegacyTokens implements tokens.LegacyStore: false once refresh_tokens
// is known to be gone, so that a v1-shaped token costs no transaction.
func (s *Store) HasLegacyTokens() bool { return !s.legacyGone.Load() }

// OpTimeout is the default deadline of one store call, pool wait included. A
// connection that freezes without closing (a dead peer, a silent network
// partition) would otherwise hold the caller for as long as TCP keeps
// retrying: minutes. pgx closes a connection whose deadline passed.
const OpTimeout = 3 * time.Second

// PingTimeout bounds the liveness ping the pool sends on a connection that
// sat idle for over a second before handing it out; a frozen one is
// discarded and another tried.
const PingTimeout = 500 * time.Millisecond

// ConnectTimeout bounds each new connection of the pool, handshake
// included. The pool builds connections in the background, detached from
// the caller's deadline, so without it a handshake with a frozen peer would
// hold a pool slot forever and the pool would not recover when the network
// does. A connect_timeout in the URL takes precedence.
const ConnectTimeout = 3 * time.Second

// SetOpTimeout changes the deadline of each store call. Call it before use.
func (s *Store) SetOpTimeout(d time.Duration) { s.opTimeout = d }

// bound gives a store call its deadline, unless the caller's is sooner.
func (s *Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.opTimeout)
}

// SetObserver makes the store report each operation's duration and error
// (for the store-latency metric). Call it before use.
func (s *Store) SetObserver(fn func(op string, d time.Duration, err error)) { s.observe = fn }

// timed reports an operation started at start; use as
// defer s.timed("op", time.Now(), &err).
func (s *Store) timed(op string, start time.Time, err *error) {
	if s.observe != nil {
		s.observe(op, time.Since(start), *err)
	}
}

var (
	_ tokens.Store       = (*Store)(nil)
	_ tokens.FastRotator = (*Store)(nil)
)

// DefaultMaxConns is the pool size when the URL sets no pool_max_conns.
const DefaultMaxConns = 16

// Open connects a pool to databaseURL. It does not migrate.
func Open(ctx context.Context, databaseURL string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("parse DATABASE_URL: %s", redact(err))
	}
	if !strings.Contains(databaseURL, "pool_max_conns") {
		cfg.MaxConns = DefaultMaxConns
	}
	cfg.PingTimeout = PingTimeout
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = ConnectTimeout
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "rotor"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open pool: %s", redact(err))
	}
	return &Store{pool: pool, url: databaseURL, opTimeout: OpTimeout}, nil
}

// Close closes the pool.
func (s *Store) Close() { s.pool.Close() }

// Pool returns the underlying pool, for tests and benchmarks.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// provider returns a goose provider over the embedded migrations, holding a
// PostgreSQL advisory lock so that instances starting together migrate once.
func (s *Store) provider() (*goose.Provider, *sql.DB, error) {
	db := stdlib.OpenDBFromPool(s.pool)
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return nil, nil, err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS, goose.WithSessionLocker(locker))
	if err != nil {
		_ = db.Close()
		return nil, nil, err
	}
	return p, db, nil
}

// Migrate applies the embedded migrations: "up", "down" (one step) or
// "status", writing a line per migration for status.
func (s *Store) Migrate(ctx context.Context, direction string, report func(string)) error {
	p, db, err := s.provider()
	if err != nil {
		return err
	}
	defer db.Close()
	switch direction {
	case "up":
		if _, err = p.Up(ctx); err == nil {
			s.current.Store(true)
		}
	case "down":
		s.current.Store(false)
		_, err = p.Down(ctx)
	case "status":
		var st []*goose.MigrationStatus
		st, err = p.Status(ctx)
		for _, m := range st {
			applied := "pending"
			if m.State == goose.StateApplied {
				applied = "applied " + m.AppliedAt.UTC().Format("2006-01-02 15:04:05Z")
			}
			report(fmt.Sprintf("%05d %-30s %s", m.Source.Version, m.Source.Path, applied))
		}
	default:
		return fmt.Errorf("unknown migrate direction %q (want up, down or status)", direction)
	}
	return wrap(err)
}

// Ping implements tokens.Store: the database answers and no migration is
// pending (checked against goose's table until it is once true).
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if err := s.pool.Ping(ctx); err != nil {
		return wrap(err)
	}
	if s.current.Load() {
		return nil
	}
	p, db, err := s.provider()
	if err != nil {
		return err
	}
	defer db.Close()
	pending, err := p.HasPending(ctx)
	if err != nil {
		return wrap(err)
	}
	if pending {
		return fmt.Errorf("%w: migrations pending", tokens.ErrUnavailable)
	}
	s.current.Store(true)
	return nil
}

// wrap classifies a pgx error: connection trouble, timeouts, shutdowns and
// serialization failures become tokens.ErrUnavailable (the client may
// retry); unique violations become tokens.ErrConflict. Messages never carry
// the connection string.
func wrap(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, tokens.ErrNotFound) || errors.Is(err, tokens.ErrConflict) || errors.Is(err, tokens.ErrUnavailable) {
		return err
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == pgerrcode.UniqueViolation:
			return tokens.ErrConflict
		case pgerrcode.IsConnectionException(pgErr.Code), pgerrcode.IsInsufficientResources(pgErr.Code),
			pgerrcode.IsOperatorIntervention(pgErr.Code), pgerrcode.IsInvalidTransactionState(pgErr.Code),
			pgErr.Code == pgerrcode.SerializationFailure, pgErr.Code == pgerrcode.DeadlockDetected,
			pgErr.Code == pgerrcode.LockNotAvailable:
			return fmt.Errorf("%w: database: %s", tokens.ErrUnavailable, pgErr.Code)
		}
		return fmt.Errorf("database error %s: %s", pgErr.Code, pgErr.Message)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return tokens.ErrNotFound
	}
	// Network errors, closed pools, cancelled or timed-out contexts.
	return fmt.Errorf("%w: database: %s", tokens.ErrUnavailable, redact(err))
}

// redact keeps a password in a connection string out of an error message.
func redact(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "postgres"); i >= 0 {
		if u, perr := url.Parse(msg[i:]); perr == nil && u.User != nil {
			msg = strings.ReplaceAll(msg, u.User.String(), u.User.Username()+":xxxxx")
		}
	}
	if i := strings.Index(msg, "password="); i >= 0 {
		end := strings.IndexByte(msg[i:], ' ')
		if end < 0 {
			end = len(msg) - i
		}
		msg = msg[:i] + "password=xxxxx" + msg[i+end:]
	}
	return msg
}

// legacyTableGone reports an error from a statement on refresh_tokens after
// `server legacy-tokens drop` removed it: no v1 token is then known.
func legacyTableGone(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == pgerrcode.UndefinedTable
}
