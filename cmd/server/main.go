// Command server runs Rotor: `server` (or `server serve`) serves HTTP,
// `server migrate up|down|status` manages the schema, and
// `server keygen [ed25519|es256|secret]` prints a fresh key.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rotorauth/rotor/internal/api"
	"github.com/rotorauth/rotor/internal/password"
	"github.com/rotorauth/rotor/internal/store/memory"
	"github.com/rotorauth/rotor/internal/store/postgres"
	"github.com/rotorauth/rotor/internal/tokens"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

const usage = `usage:
  server [serve]                       run the HTTP server (configuration from the environment)
  server migrate up|down|status        manage the database schema (DATABASE_URL)
  server keygen [ed25519|es256|secret] print a fresh PKCS#8 key for JWT_KEYS, or a secret for TOKEN_SECRET/JWT_SECRET
  server keygen [kind] --out FILE      write it to FILE (mode 0600) unless FILE exists
  server healthcheck                   exit 0 if GET /readyz on HTTP_ADDR answers 200 (for container healthchecks)
  server clients list|create|update|rotate-secret|delete|apply   manage OAuth clients (DATABASE_URL)
  server legacy-tokens status|drop     v1 refresh tokens (from before rotation v2) still live; drop their table once none is (DATABASE_URL)`

// run is the whole program; main only wires the process to it.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := ""
	if len(args) > 1 {
		cmd = args[1]
	}
	switch cmd {
	case "", "serve":
		return serve(ctx, getenv, stdout, stderr)
	case "migrate":
		if len(args) != 3 {
			return errors.New(usage)
		}
		return migrate(ctx, getenv, args[2], stdout)
	case "keygen":
		kind, out := "ed25519", ""
		rest := args[2:]
		if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
			kind, rest = rest[0], rest[1:]
		}
		if len(rest) == 2 && rest[0] == "--out" {
			out = rest[1]
		} else if len(rest) != 0 {
			return errors.New(usage)
		}
		if out != "" {
			return keygenFile(kind, out, stdout)
		}
		return keygen(kind, stdout)
	case "healthcheck":
		return healthcheck(ctx, getenv)
	case "clients":
		return clientsCommand(ctx, getenv, args[2:], stdout)
	case "legacy-tokens":
		if len(args) != 3 || (args[2] != "status" && args[2] != "drop") {
			return errors.New(usage)
		}
		return legacyTokens(ctx, getenv, args[2], stdout)
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	return fmt.Errorf("unknown command %q\n%s", cmd, usage)
}

func keygen(kind string, w io.Writer) error {
	alg := map[string]string{"ed25519": tokens.AlgEdDSA, "es256": tokens.AlgES256}[strings.ToLower(kind)]
	if kind == "secret" {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return err
		}
		_, err := fmt.Fprintln(w, base64.RawURLEncoding.EncodeToString(b))
		return err
	}
	if alg == "" {
		return fmt.Errorf("keygen: unknown kind %q (use ed25519, es256 or secret)", kind)
	}
	der, err := tokens.GeneratePrivateKeyDER(alg)
	if err != nil {
		return err
	}
	return pem.Encode(w, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// keygenFile writes a fresh key to path unless a file is already there, so
// a container can run it on every start.
func keygenFile(kind, path string, stdout io.Writer) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600) // #nosec G304 -- the operator names the file
	if errors.Is(err, os.ErrExist) {
		fmt.Fprintf(stdout, "keygen: %s exists; keeping it\n", path)
		return nil
	}
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	if err := keygen(kind, f); err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return err
	}
	fmt.Fprintf(stdout, "keygen: wrote %s\n", path)
	return f.Close()
}

// healthcheck asks this machine's server for /readyz; distroless images have
// no curl, so the binary checks itself.
func healthcheck(ctx context.Context, getenv func(string) string) error {
	addr := getenv("HTTP_ADDR")
	if addr == "" {
		addr = ":8080"
	}
	if strings.HasPrefix(addr, ":") {
		addr = "127.0.0.1" + addr
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: /readyz answered %d", resp.StatusCode)
	}
	return nil
}

func migrate(ctx context.Context, getenv func(string) string, dir string, stdout io.Writer) error {
	url := getenv("DATABASE_URL")
	if url == "" {
		return errors.New("DATABASE_URL: required for migrate")
	}
	st, err := postgres.Open(ctx, url)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Migrate(ctx, dir, func(line string) { fmt.Fprintln(stdout, line) }); err != nil {
		return fmt.Errorf("migrate %s: %w", dir, err)
	}
	if dir != "status" {
		fmt.Fprintf(stdout, "migrate %s: done\n", dir)
	}
	return nil
}

// legacyTokens reports on v1 refresh tokens, or drops their table once none
// is live (docs/operations.md, "Upgrading to rotation v2").
func legacyTokens(ctx context.Context, getenv func(string) string, what string, stdout io.Writer) error {
	url := getenv("DATABASE_URL")
	if url == "" {
		return errors.New("DATABASE_URL: required for legacy-tokens")
	}
	st, err := postgres.Open(ctx, url)
	if err != nil {
		return err
	}
	defer st.Close()
	now := time.Now().UTC()
	if what == "drop" {
		if err := st.DropLegacyTokens(ctx, now); err != nil {
			return fmt.Errorf("legacy-tokens drop: %w", err)
		}
		fmt.Fprintln(stdout, "legacy-tokens drop: refresh_tokens is gone")
		return nil
	}
	s, err := st.LegacyTokens(ctx, now)
	switch {
	case err != nil:
		return fmt.Errorf("legacy-tokens status: %w", err)
	case !s.Present:
		fmt.Fprintln(stdout, "refresh_tokens: dropped; no v1 token is known")
	case s.Live == 0:
		fmt.Fprintf(stdout, "refresh_tokens: %d rows, no live v1 token: `server legacy-tokens drop` may run\n", s.Rows)
	default:
		fmt.Fprintf(stdout, "refresh_tokens: %d rows, %d live v1 tokens, the last expiring at %s\n",
			s.Rows, s.Live, s.LastExpiry.UTC().Format(time.RFC3339))
	}
	return nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(s))
	return l, err
}

func newLogger(cfg Config, w io.Writer) *slog.Logger {
	level, _ := parseLevel(cfg.LogLevel)
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if cfg.LogFormat == "text" {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(h)
}

// defaultGCPercent is the server's GOGC unless the environment sets one.
// Rotor's live heap is a few MiB, so at Go's default of 100 the collector
// ran at its 4 MiB minimum target, about once every 120 refreshes, and took
// some 20 µs of CPU per refresh (mark, assists, sweep); at 400 it runs a
// fifth as often for about 8 µs, for a heap target of five times the live
// heap. Under a login flood the live heap is larger (each argon2id hash
// holds 19 MiB, two per CPU at once), and five times that could pass a
// container's memory limit; so with this default the server also sets a
// soft memory limit (defaultMemoryLimit) unless GOMEMLIMIT is set: near it
// the collector runs as often as it must, whatever GOGC says.
const defaultGCPercent = 400

// defaultMemoryLimit is the soft memory limit that goes with
// defaultGCPercent.
const defaultMemoryLimit = 512 << 20

func serve(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
		if getenv("GOMEMLIMIT") == "" {
			debug.SetMemoryLimit(defaultMemoryLimit)
		}
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return fmt.Errorf("bad configuration:\n%w", err)
	}
	log := newLogger(cfg, stderr)
	warn := func(msg string) { log.Warn(msg) }

	var store tokens.Store
	var pg *postgres.Store
	if cfg.DatabaseURL == "" {
		log.Warn("DATABASE_URL is not set: using the IN-MEMORY store; every user and session is lost when the process exits")
		store = memory.New()
	} else {
		if pg, err = postgres.Open(ctx, cfg.DatabaseURL); err != nil {
			return fmt.Errorf("DATABASE_URL: %w", err)
		}
		defer pg.Close()
		if err := pg.Migrate(ctx, "up", nil); err != nil {
			return fmt.Errorf("migrate up: %w", err)
		}
		store = pg
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if pg != nil {
		storeLatency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "rotor_store_duration_seconds", Help: "PostgreSQL store operation latency by operation and outcome.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}, []string{"op", "outcome"})
		reg.MustRegister(storeLatency)
		var series sync.Map // [2]string{op, outcome} → prometheus.Observer, resolved once (every store call passes here)
		pg.SetObserver(func(op string, d time.Duration, err error) {
			outcome := "ok"
			if err != nil {
				outcome = "error"
			}
			k := [2]string{op, outcome}
			o, ok := series.Load(k)
			if !ok {
				o, _ = series.LoadOrStore(k, storeLatency.WithLabelValues(op, outcome))
			}
			o.(prometheus.Observer).Observe(d.Seconds())
		})
	}
	keys, err := cfg.keySet(warn)
	if err != nil {
		return err
	}
	secret := cfg.TokenSecret
	if len(secret) == 0 {
		warn("no TOKEN_SECRET: generated one for this process only; refresh tokens die with it")
		secret = make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return err
		}
	}
	svcCfg := cfg.serviceConfig(keys, secret)
	svcCfg.Observer = api.NewDomainMetrics(reg) // counted in the domain, where each event happens
	svc, err := tokens.NewService(store, password.Argon2id{Params: password.OWASP}, svcCfg)
	if err != nil {
		return err
	}
	if err := setUpClients(ctx, svc, cfg, getenv, log); err != nil {
		return err
	}
	if cfg.BootstrapEmail != "" {
		created, err := svc.EnsureUser(ctx, cfg.BootstrapEmail, cfg.BootstrapPassword, []string{"admin"})
		if err != nil {
			return fmt.Errorf("BOOTSTRAP_ADMIN_EMAIL: %w", err)
		}
		if created {
			log.Info("bootstrap admin created")
		}
	}
	// Revocations: loaded now, then kept current. With PostgreSQL other
	// instances revoke too, so this one refuses access-token checks (503)
	// while its latest completed sync started over tokens.MaxRevocationLag
	// ago: an incremental sync every revocationSyncEvery and at once on each
	// notice, each bounded, keeps it well inside that when the database
	// answers; a frozen pool or listener cannot keep it accepting tokens.
	const (
		revocationSyncEvery   = 250 * time.Millisecond
		revocationSyncTimeout = 500 * time.Millisecond
		fullSyncEvery         = 30 * time.Second
		fullSyncTimeout       = 5 * time.Second
	)
	loadCtx, cancelLoad := context.WithTimeout(ctx, fullSyncTimeout)
	err = svc.FullSyncRevocations(loadCtx)
	cancelLoad()
	if err != nil {
		return fmt.Errorf("load revocations: %w", err)
	}

	bg, stopBG := context.WithCancel(ctx)
	defer stopBG()
	if pg != nil {
		svc.RequireFreshRevocations(tokens.MaxRevocationLag)
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "rotor_revocation_lag_seconds",
			Help: "Time since the start of the latest completed revocation sync; access-token checks fail closed above 1.",
		}, func() float64 {
			lag, _ := svc.RevocationLag()
			return lag.Seconds()
		}))
		notices := make(chan struct{}, 1)
		listenerDown := false // both callbacks run on the listener's goroutine
		go pg.Listen(bg, func() {
			if listenerDown {
				listenerDown = false
				log.Info("revocation listener reconnected")
			}
			select {
			case notices <- struct{}{}:
			default: // a sync is already due
			}
		}, func(err error) {
			if !listenerDown {
				listenerDown = true
				log.Warn("revocation listener lost its connection; reconnecting", "err", err.Error())
				return
			}
			log.Debug("revocation listener still cannot connect", "err", err.Error())
		})
		go func() {
			tick := time.NewTicker(revocationSyncEvery)
			defer tick.Stop()
			var lastErr error
			stale, staleSince := false, time.Time{}
			for {
				select {
				case <-bg.Done():
					return
				case <-tick.C:
				case <-notices:
				}
				sctx, cancel := context.WithTimeout(bg, revocationSyncTimeout)
				err := svc.SyncRevocations(sctx)
				cancel()
				if bg.Err() != nil {
					return
				}
				if err != nil && lastErr == nil {
					log.Warn("revocation sync failed", "err", err.Error())
				}
				// Log transitions only: requests never log the staleness.
				nowStale := svc.RevocationsStale()
				switch {
				case nowStale && !stale:
					staleSince = time.Now()
					if at, ok := svc.RevocationsSyncedAt(); ok {
						staleSince = at.Add(tokens.MaxRevocationLag)
					}
					lag, _ := svc.RevocationLag()
					why := "no revocation sync completed in time"
					if err != nil {
						why = err.Error()
					} else if lastErr != nil {
						why = lastErr.Error()
					}
					log.Error("revocations may be missing: access-token checks fail closed (503) until a revocation sync succeeds",
						"lag", lag.Round(time.Millisecond).String(), "max_lag", tokens.MaxRevocationLag.String(), "err", why)
				case !nowStale && stale:
					log.Info("revocations current again: access-token checks resume",
						"fail_closed_for", time.Since(staleSince).Round(time.Millisecond).String())
				case err == nil && lastErr != nil:
					log.Info("revocation sync recovered")
				}
				stale, lastErr = nowStale, err
			}
		}()
	}
	go every(bg, fullSyncEvery, func() {
		sctx, cancel := context.WithTimeout(bg, fullSyncTimeout)
		defer cancel()
		if err := svc.FullSyncRevocations(sctx); err != nil && bg.Err() == nil {
			log.Warn("periodic revocation resync failed", "err", err.Error())
		}
	})
	go every(bg, tokens.ClientRefreshInterval, func() {
		cctx, cancel := context.WithTimeout(bg, fullSyncTimeout)
		defer cancel()
		if err := svc.RefreshClients(cctx); err != nil && bg.Err() == nil {
			log.Warn("client list reload failed", "err", err.Error())
		}
	})
	go every(bg, 5*time.Minute, func() {
		if n, err := svc.Purge(bg, 100); err != nil && bg.Err() == nil {
			log.Warn("purge failed", "err", err.Error())
		} else if n > 0 {
			log.Info("purged expired rows", "rows", n)
		}
	})

	handler := api.NewHandler(svc, log, api.Options{
		SignupEnabled: cfg.SignupEnabled, RefreshCookie: cfg.RefreshCookie,
		CORSAllowedOrigins: cfg.CORSAllowedOrigins, LoginRateLimit: cfg.LoginRateLimit,
		RateLimitIPv6Prefix: cfg.RateLimitIPv6Bits,
		TrustedProxies:      cfg.TrustedProxies, QuietAccessLog: cfg.QuietAccessLog, Registry: reg,
	})
	srv := newHTTPServer(handler, log)
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("HTTP_ADDR: %w", err)
	}
	if cfg.MetricsAddr != "" {
		mln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("METRICS_ADDR: %w", err)
		}
		msrv := newHTTPServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), log)
		go msrv.Serve(mln) //nolint:errcheck // closed on shutdown below
		defer msrv.Close()
	}
	store_ := "memory"
	if pg != nil {
		store_ = "postgres"
	}
	log.Info("listening", "addr", ln.Addr().String(), "store", store_, "alg", keys.Alg(), "kid", keys.SigningKID())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// newHTTPServer sets every timeout, so slow clients cannot hold
// connections, and a header limit, so header floods get 431.
func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// every runs fn every d until ctx ends.
func every(ctx context.Context, d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}
