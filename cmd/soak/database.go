package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rotorauth/rotor/internal/harness"
)

// createScratch creates rotor_soak_<random> through the database at pgURL,
// which must be on this machine.
func createScratch(ctx context.Context, pgURL string) (*harness.ScratchDB, error) {
	u, err := url.Parse(pgURL)
	if err != nil {
		return nil, fmt.Errorf("-db: %q is not a postgres:// URL", pgURL)
	}
	if h := u.Hostname(); h != "" && h != "localhost" && !isLoopback(h) {
		return nil, fmt.Errorf("-db: host %q is not this machine; the soak only talks to 127.0.0.1", h)
	}
	db, err := harness.CreateScratch(ctx, pgURL, "rotor_soak")
	if err != nil {
		return nil, fmt.Errorf("-db: %w", err)
	}
	return db, nil
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// dbSession is what the sessions table says about one session.
type dbSession struct {
	reason    string    // revoked_reason; "" while the session is live
	rotatedAt time.Time // zero if never rotated
	revokedAt time.Time // zero while live
}

// dupParent is a refresh token with more than one successor.
// countMismatch is a session whose generation is not its number of
// rotations: a rotation doubled or lost (a v2 session holds one token hash,
// so a branch would show up here).
type countMismatch struct {
	sessionID             string
	generation, rotations int64
}

// dbFacts is what the checks read from the database after the run.
type dbFacts struct {
	sessions   map[string]dbSession
	mismatches []countMismatch
	rotations  int64
}

// readDatabase reads the facts the invariants need over one connection.
func readDatabase(ctx context.Context, databaseURL string) (dbFacts, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return dbFacts{}, fmt.Errorf("checker connection: %w", err)
	}
	defer conn.Close(context.Background())

	f := dbFacts{sessions: map[string]dbSession{}}
	rows, err := conn.Query(ctx, `SELECT id::text, revoked_reason, rotated_at, revoked_at FROM sessions`)
	if err != nil {
		return f, fmt.Errorf("read sessions: %w", err)
	}
	for rows.Next() {
		var id string
		var reason *string
		var rotated, revoked *time.Time
		if err := rows.Scan(&id, &reason, &rotated, &revoked); err != nil {
			rows.Close()
			return f, fmt.Errorf("read sessions: %w", err)
		}
		var s dbSession
		if reason != nil {
			s.reason = *reason
		}
		if rotated != nil {
			s.rotatedAt = *rotated
		}
		if revoked != nil {
			s.revokedAt = *revoked
			if s.reason == "" {
				s.reason = "(revoked without a reason)"
			}
		}
		f.sessions[id] = s
	}
	if err := rows.Err(); err != nil {
		return f, fmt.Errorf("read sessions: %w", err)
	}

	rows, err = conn.Query(ctx, `SELECT id::text, generation, refresh_count FROM sessions WHERE generation <> refresh_count`)
	if err != nil {
		return f, fmt.Errorf("read session generations: %w", err)
	}
	for rows.Next() {
		var d countMismatch
		if err := rows.Scan(&d.sessionID, &d.generation, &d.rotations); err != nil {
			rows.Close()
			return f, fmt.Errorf("read session generations: %w", err)
		}
		f.mismatches = append(f.mismatches, d)
	}
	if err := rows.Err(); err != nil {
		return f, fmt.Errorf("read session generations: %w", err)
	}
	if err := conn.QueryRow(ctx, `SELECT coalesce(sum(refresh_count), 0) FROM sessions`).Scan(&f.rotations); err != nil {
		return f, fmt.Errorf("count rotations: %w", err)
	}
	return f, nil
}
