package postgres_test

import (
	"context"
	"testing"

	"github.com/rotorauth/rotor/internal/store/postgres"
	"github.com/rotorauth/rotor/internal/store/postgres/pgtest"
	"github.com/rotorauth/rotor/internal/store/storetest"
	"github.com/rotorauth/rotor/internal/tokens"
)

var db *pgtest.Database

func TestMain(m *testing.M) { pgtest.Main(m, &db) }

// open returns a migrated store on the package's database.
func open(t testing.TB) *postgres.Store {
	t.Helper()
	pgtest.Require(t, db)
	s, err := postgres.Open(context.Background(), db.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if err := s.Migrate(context.Background(), "up", nil); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	s := open(t)
	storetest.Run(t, func(*testing.T) tokens.Store { return s })
}
