// Package pgtest gives a test package its own PostgreSQL database, created
// from TEST_DATABASE_URL and dropped when the package's tests end. Without
// TEST_DATABASE_URL the tests skip with a clear message, unless
// REQUIRE_POSTGRES=1, which makes a missing database a failure.
package pgtest

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Database is a scratch database.
type Database struct {
	URL    string
	name   string
	admin  string
	closed bool
}

// New creates a scratch database, or skips (or fails, under
// REQUIRE_POSTGRES=1) when PostgreSQL is not configured or not reachable.
// Call Drop when the package's tests end (from TestMain).
func New() (*Database, error) {
	admin := os.Getenv("TEST_DATABASE_URL")
	if admin == "" {
		return nil, fmt.Errorf("TEST_DATABASE_URL is not set")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return nil, fmt.Errorf("connect to TEST_DATABASE_URL: %w", err)
	}
	defer conn.Close(ctx)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := fmt.Sprintf("rotor_test_%x", b)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return nil, fmt.Errorf("create database: %w", err)
	}
	u, err := url.Parse(admin)
	if err != nil {
		return nil, fmt.Errorf("TEST_DATABASE_URL must be a URL: %w", err)
	}
	u.Path = "/" + name
	return &Database{URL: u.String(), name: name, admin: admin}, nil
}

// Drop drops the scratch database, disconnecting whoever is still on it.
func (d *Database) Drop() error {
	if d == nil || d.closed {
		return nil
	}
	d.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, d.admin)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+d.name+" WITH (FORCE)")
	return err
}

// Main is a TestMain body: it creates the package's database, runs the tests
// with *db set, and drops it. When PostgreSQL is unavailable *db stays nil
// and tests call Require, which skips or fails.
func Main(m *testing.M, db **Database) {
	d, err := New()
	if err != nil {
		setupErr = err
	}
	*db = d
	code := m.Run()
	if err := d.Drop(); err != nil {
		fmt.Fprintln(os.Stderr, "pgtest: drop database:", err)
	}
	os.Exit(code)
}

var setupErr error

// Require skips t (or fails it under REQUIRE_POSTGRES=1) when the package has
// no database.
func Require(t testing.TB, db *Database) {
	t.Helper()
	if db != nil {
		return
	}
	msg := fmt.Sprintf("PostgreSQL tests need TEST_DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/test): %v", setupErr)
	if os.Getenv("REQUIRE_POSTGRES") == "1" {
		t.Fatal(msg + " (REQUIRE_POSTGRES=1)")
	}
	t.Skip(msg)
}
