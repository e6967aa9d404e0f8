// Package api is Rotor's HTTP interface: routes, handlers, middleware, and
// the one mapping of domain errors to HTTP (errors.go). It depends on
// internal/tokens and never on a store.
package api

import (
	"log/slog"
	"net/http"
	"net/netip"
	"runtime"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rotorauth/rotor/internal/tokens"
)

// Options are the HTTP-level settings.
type Options struct {
	SignupEnabled      bool
	RefreshCookie      bool     // browser mode: the refresh token travels in a __Host- cookie
	CORSAllowedOrigins []string // exact origins, e.g. https://app.example.com
	LoginRateLimit     int      // attempts a minute per account and per IP; 0 is off
	TrustedProxies     []netip.Prefix
	// QuietAccessLog leaves successful requests out of the log (load tests).
	QuietAccessLog bool
	// Registry receives the metrics and serves /metrics; nil means a new one.
	Registry *prometheus.Registry
}

// RefreshCookieName is the browser-mode cookie. The __Host- prefix makes
// browsers insist on Secure, Path=/ and no Domain.
const RefreshCookieName = "__Host-rotor_refresh"

type server struct {
	svc       *tokens.Service
	log       *slog.Logger
	opts      Options
	metrics   *metrics
	ipLimit   *limiter
	acctLimit *limiter
	// refreshLimit bounds failed refresh attempts per IP, so random tokens
	// at volume cannot be tried against the store.
	refreshLimit *limiter
	issuer       string
	hashSlots    chan struct{}
}

// NewHandler returns Rotor's HTTP handler.
func NewHandler(svc *tokens.Service, log *slog.Logger, opts Options) http.Handler {
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	s := &server{
		svc: svc, log: slog.New(requestIDHandler{log.Handler()}), opts: opts,
		metrics:   newMetrics(opts.Registry),
		ipLimit:   newLimiter(opts.LoginRateLimit),
		acctLimit: newLimiter(opts.LoginRateLimit),
		issuer:    strings.TrimRight(svc.Config().Issuer, "/"),
		hashSlots: make(chan struct{}, 2*runtime.GOMAXPROCS(0)),
	}
	if opts.LoginRateLimit > 0 {
		s.refreshLimit = newLimiter(opts.LoginRateLimit * 6)
	}
	return s.observe(securityHeaders(s.cors(s.routes())))
}
