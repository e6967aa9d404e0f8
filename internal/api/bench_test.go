package api_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rotorauth/rotor/internal/api"
	"github.com/rotorauth/rotor/internal/store/memory"
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
