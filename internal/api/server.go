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
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rotorauth/rotor/internal/tokens"
)

// Options are the HTTP-level settings.
type Options struct {
	SignupEnabled      bool
	RefreshCookie      bool     // browser mode: the refresh token travels in a __Host- cookie
	CORSAllowedOrigins []string // exact origins, e.g. https://app.example.com
	// LoginRateLimit (L) is the base of every rate limit (ratelimit.go);
	// 0 turns them all off. Failed logins: L a minute per account and
	// address prefix, 2L a minute per prefix, 2L per account refilled at L
	// per 10 minutes (then one guess per prefix per 10 minutes). Failed
	// refreshes and /revoke calls: 6L a minute per client. Sign-ups: L a
	// minute per IP; password changes: L a minute per user.
	LoginRateLimit int
	// RateLimitIPv6Prefix is the IPv6 prefix length rate limits key a
	// client by (an IPv4 client is keyed by its address); 0 means 64.
	RateLimitIPv6Prefix int
	TrustedProxies      []netip.Prefix
	// QuietAccessLog leaves successful requests out of the log (load tests).
	QuietAccessLog bool
	// Registry receives the metrics and serves /metrics; nil means a new one.
	Registry *prometheus.Registry
}

// RefreshCookieName is the browser-mode cookie. The __Host- prefix makes
// browsers insist on Secure, Path=/ and no Domain.
const RefreshCookieName = "__Host-rotor_refresh"

type server struct {
	svc     *tokens.Service
	log     *slog.Logger
	opts    Options
	metrics *metrics
	// ipLimit (sign-ups per IP) and acctLimit (password changes per user)
	// count attempts.
	ipLimit   *limiter
	acctLimit *limiter
	// loginLimits count failed logins (ratelimit.go).
	loginLimits loginLimits
	// refreshLimit bounds failed refresh attempts per client, so random
	// tokens at volume cannot be tried against the store.
	refreshLimit *limiter
	// revokeLimit bounds /revoke calls per client.
	revokeLimit *limiter
	v6bits      int              // IPv6 prefix length of rate-limit keys
	now         func() time.Time // the rate limits' clock
	issuer      string
	hashSlots   chan struct{}
}

// NewHandler returns Rotor's HTTP handler.
func NewHandler(svc *tokens.Service, log *slog.Logger, opts Options) http.Handler {
	return newServer(svc, log, opts).handler()
}

func newServer(svc *tokens.Service, log *slog.Logger, opts Options) *server {
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	l := opts.LoginRateLimit
	return &server{
		svc: svc, log: slog.New(requestIDHandler{log.Handler()}), opts: opts,
		metrics:      newMetrics(opts.Registry),
		ipLimit:      newLimiter(l),
		acctLimit:    newLimiter(l),
		loginLimits:  newLoginLimits(l),
		refreshLimit: newLimiter(6 * l),
		revokeLimit:  newLimiter(6 * l),
		v6bits:       ipv6Bits(opts),
		now:          time.Now,
		issuer:       strings.TrimRight(svc.Config().Issuer, "/"),
		hashSlots:    make(chan struct{}, 2*runtime.GOMAXPROCS(0)),
	}
}

func (s *server) handler() http.Handler {
	return s.observe(securityHeaders(s.cors(s.routes())))
}
