package postgres_test

import (
	"testing"

	"github.com/rotorauth/rotor/internal/store/storetest"
	"github.com/rotorauth/rotor/internal/tokens"
)

// BenchmarkRotation measures a full rotation through the domain and the
// PostgreSQL store (two round trips, one transaction), one chain per
// goroutine: go test -bench Rotation -benchmem ./internal/store/postgres
func BenchmarkRotation(b *testing.B) {
	s := open(b)
	f := storetest.NewFixture(b, s)
	b.Run("serial", func(b *testing.B) {
		rt := f.MustLogin(f.MustUser()).RefreshToken
		b.ReportAllocs()
		for b.Loop() {
			rt = f.MustRefresh(rt).RefreshToken
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetParallelism(8) // 8 × GOMAXPROCS sessions
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			var rt string
			for pb.Next() {
				if rt == "" {
					rt = f.MustLogin(f.MustUser()).RefreshToken
				}
				p, err := f.Refresh(rt)
				if err != nil {
					b.Error(err)
					return
				}
				rt = p.RefreshToken
			}
		})
	})
}

// BenchmarkLogin measures a login with the test's cheap password hash, so
// the figure is the store's share of a login.
func BenchmarkLogin(b *testing.B) {
	s := open(b)
	f := storetest.NewFixture(b, s)
	u := f.MustUser()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.Svc.Login(b.Context(), u.Email, storetest.Password, tokens.ClientInfo{}); err != nil {
			b.Fatal(err)
		}
	}
}
