// Command retirement is the retirement portal, a second example resource
// server behind the same Rotor as the bank: one login works at both, and a
// revocation at Rotor is refused by both.
//
//	GET /plan              any signed-in user: their pension plan
//	GET /advisor/clients   role advisor or admin
//	GET /healthz           the verifier's status (503 until ready, or when stale)
//
// Configuration: see examples/resource-servers/README.md; ADDR (default
// :8082) is where it listens.
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
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("app", "retirement")
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
	mux.Handle("GET /plan", v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := verify.ClaimsFrom(r.Context())
		rs.JSON(w, map[string]any{"app": "retirement", "owner": c.Subject, "plan": "balanced", "retire_at": 67})
	})))
	mux.Handle("GET /advisor/clients", v.RequireRole("advisor", "admin")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rs.JSON(w, map[string]any{"app": "retirement", "clients": []string{}})
	})))
	mux.Handle("GET /healthz", rs.Health(v))
	return rs.Serve(ctx, rs.Env("ADDR", ":8082"), mux, log)
}
