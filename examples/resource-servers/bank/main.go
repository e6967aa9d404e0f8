// Command bank is an example resource server behind Rotor: it verifies
// access tokens offline with the verify package and refuses revoked ones
// within the revocation feed's poll interval.
//
//	GET /accounts      any signed-in user: their accounts
//	GET /admin/ledger  role admin
//	GET /healthz       the verifier's status (503 until ready, or when stale)
//
// Configuration: see examples/resource-servers/README.md; ADDR (default
// :8081) is where it listens.
package main

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rotorauth/rotor/examples/resource-servers/internal/rs"
	"github.com/rotorauth/rotor/verify"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("app", "bank")
	if err := run(ctx, log); err != nil {
		log.Error(err.Error())
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger) error {
	cfg, err := rs.Config(ctx, log)
	if err != nil {
		return err
	}
	v, err := verify.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer v.Close()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := v.WaitReady(wctx); err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.Handle("GET /accounts", v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := verify.ClaimsFrom(r.Context())
		rs.JSON(w, map[string]any{"app": "bank", "owner": c.Subject, "accounts": []map[string]string{
			{"iban": "DE00 0000 0000 0000 0000 00", "balance": "1234.56 EUR"}}})
	})))
	mux.Handle("GET /admin/ledger", v.RequireRole("admin")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := verify.ClaimsFrom(r.Context())
		rs.JSON(w, map[string]any{"app": "bank", "ledger": "all transfers", "viewer": c.Subject})
	})))
	mux.Handle("GET /healthz", rs.Health(v))
	return rs.Serve(ctx, rs.Env("ADDR", ":8081"), mux, log)
}
