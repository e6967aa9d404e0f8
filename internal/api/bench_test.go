package api_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rotorauth/rotor/internal/api"
	"github.com/rotorauth/rotor/internal/harness"
	"github.com/rotorauth/rotor/internal/store/memory"
	"github.com/rotorauth/rotor/internal/store/postgres"
	"github.com/rotorauth/rotor/internal/tokens"
)

// benchHandler is the API over a memory store with an admin logged in.
func benchHandler(b *testing.B) (http.Handler, string) {
	b.Helper()
	svc := newService(b, memory.New())
	p, err := svc.Login(context.Background(), adminEmail, adminPassword, tokens.ClientInfo{})
	if err != nil {
		b.Fatal(err)
	}
	h := api.NewHandler(svc, slog.New(slog.NewJSONHandler(io.Discard, nil)), api.Options{QuietAccessLog: true})
	return h, p.AccessToken
}

// BenchmarkMe and BenchmarkIntrospect measure the token-check endpoints in
// process (no network): go test -run '^$' -bench 'Me|Introspect' -benchmem ./internal/api
func BenchmarkMe(b *testing.B) {
	h, at := benchHandler(b)
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest("GET", "/me", nil)
		r.Header.Set("Authorization", "Bearer "+at)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}

func BenchmarkIntrospect(b *testing.B) {
	h, at := benchHandler(b)
	body := `{"token":"` + at + `"}`
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest("POST", "/introspect", strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+at)
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}

// BenchmarkRefresh measures POST /refresh through the whole handler
// (middleware, decoding, rotation, signing, encoding) in process: on the
// memory store, and on PostgreSQL when TEST_DATABASE_URL is set. Each
// iteration presents the token the previous one returned.
//
//	go test -run '^$' -bench Refresh -benchmem -cpuprofile cpu.out ./internal/api
func BenchmarkRefresh(b *testing.B) {
	b.Run("memory", func(b *testing.B) { benchRefresh(b, memory.New()) })
	b.Run("postgres", func(b *testing.B) {
		admin := os.Getenv("TEST_DATABASE_URL")
		if admin == "" {
			b.Skip("TEST_DATABASE_URL is not set")
		}
		ctx := context.Background()
		db, err := harness.CreateScratch(ctx, admin, "rotor_apibench")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = db.Drop() })
		st, err := postgres.Open(ctx, db.URL)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(st.Close)
		if err := st.Migrate(ctx, "up", nil); err != nil {
			b.Fatal(err)
		}
		benchRefresh(b, st)
	})
}

func benchRefresh(b *testing.B, store tokens.Store) {
	svc := newService(b, store)
	h := api.NewHandler(svc, slog.New(slog.NewJSONHandler(io.Discard, nil)), api.Options{QuietAccessLog: true})
	p, err := svc.Login(context.Background(), adminEmail, adminPassword, tokens.ClientInfo{UserAgent: "bench", IP: "192.0.2.1"})
	if err != nil {
		b.Fatal(err)
	}
	rt := p.RefreshToken
	b.ReportAllocs()
	cpu0 := processCPU()
	for b.Loop() {
		r := httptest.NewRequest("POST", "/refresh", strings.NewReader(`{"refresh_token":"`+rt+`"}`))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("User-Agent", "bench")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatal(w.Code, w.Body.String())
		}
		body := w.Body.Bytes()
		const key = `"refresh_token":"`
		i := bytes.Index(body, []byte(key))
		j := bytes.IndexByte(body[i+len(key):], '"')
		rt = string(body[i+len(key) : i+len(key)+j])
	}
	// The process's CPU per refresh (what cmd/bench reports as the
	// server's), apart from PostgreSQL's.
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
