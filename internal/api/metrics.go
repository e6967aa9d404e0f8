package api

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rotorauth/rotor/internal/tokens"
)

// metrics are the Prometheus series the HTTP layer itself counts: requests
// and their latency, and rate-limit refusals. Domain events (rotations,
// revocations, failed logins) are counted by DomainMetrics, inside the
// domain functions that carry them out.
type metrics struct {
	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	rateLimited *prometheus.CounterVec
	series      sync.Map // seriesKey → requestSeries
}

// DomainMetrics is a tokens.Observer that counts the domain's events as
// Prometheus series. Give it to the Service (tokens.Config.Observer).
type DomainMetrics struct {
	refreshes *prometheus.CounterVec
	// refreshed caches refreshes' two series, resolved on first use (so
	// neither is exported before it happens): rotated, replayed.
	refreshed   [2]atomic.Pointer[prometheus.Counter]
	reuse       prometheus.Counter
	revocations *prometheus.CounterVec
	denied      *prometheus.CounterVec
	loginFailed prometheus.Counter
}

var _ tokens.Observer = (*DomainMetrics)(nil)

// NewDomainMetrics registers the domain's series on reg:
//
//   - rotor_refresh_total{outcome="rotated"|"replayed"}: successful
//     refreshes, a rotation or a grace-window replay;
//   - rotor_reuse_detections_total: used tokens presented again (each
//     revoked its session);
//   - rotor_revocations_total{reason}: sessions revoked, one per session,
//     by reason (logout, logout_all, reuse_detected, admin, …);
//   - rotor_tokens_denied_total{reason}: access tokens denylisted by jti;
//   - rotor_login_failures_total: logins refused for bad credentials or a
//     disabled user.
func NewDomainMetrics(reg prometheus.Registerer) *DomainMetrics {
	m := &DomainMetrics{
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rotor_refresh_total", Help: "Successful refreshes: rotated, or replayed inside the grace window.",
		}, []string{"outcome"}),
		reuse: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rotor_reuse_detections_total", Help: "Refresh-token reuse detections (each revokes a session).",
		}),
		revocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rotor_revocations_total", Help: "Sessions revoked, one per session, by reason.",
		}, []string{"reason"}),
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rotor_tokens_denied_total", Help: "Access tokens denylisted by jti, by reason.",
		}, []string{"reason"}),
		loginFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rotor_login_failures_total", Help: "Logins refused for bad credentials or a disabled user.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.refreshes, m.reuse, m.revocations, m.denied, m.loginFailed)
	}
	return m
}

// Refreshed implements tokens.Observer.
func (m *DomainMetrics) Refreshed(replay bool) {
	i, outcome := 0, "rotated"
	if replay {
		i, outcome = 1, "replayed"
	}
	c := m.refreshed[i].Load()
	if c == nil {
		series := m.refreshes.WithLabelValues(outcome)
		c = &series
		m.refreshed[i].Store(c)
	}
	(*c).Inc()
}

// ReuseDetected implements tokens.Observer.
func (m *DomainMetrics) ReuseDetected() { m.reuse.Inc() }

// SessionsRevoked implements tokens.Observer.
func (m *DomainMetrics) SessionsRevoked(reason tokens.Reason, n int) {
	m.revocations.WithLabelValues(string(reason)).Add(float64(n))
}

// TokenDenied implements tokens.Observer.
func (m *DomainMetrics) TokenDenied(reason tokens.Reason) {
	m.denied.WithLabelValues(string(reason)).Inc()
}

// LoginFailed implements tokens.Observer.
func (m *DomainMetrics) LoginFailed() { m.loginFailed.Inc() }

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rotor_http_requests_total", Help: "HTTP requests by method, route template and status.",
		}, []string{"method", "route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "rotor_http_request_duration_seconds", Help: "HTTP request latency by method and route template.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"method", "route"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rotor_rate_limited_total", Help: "Requests refused by a rate limit, by limit.",
		}, []string{"limit"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.latency, m.rateLimited)
	}
	return m
}

// requestSeries are the resolved series of one method, route and status,
// cached so the hot path does not hash label values on every request.
type requestSeries struct {
	count   prometheus.Counter
	latency prometheus.Observer
}

type seriesKey struct {
	method, route string
	status        int
}

func (m *metrics) observeRequest(method, route string, status int, d time.Duration) {
	switch method { // clients choose methods: keep the label set bounded
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS":
	default:
		method = "OTHER"
	}
	k := seriesKey{method, route, status}
	v, ok := m.series.Load(k)
	if !ok {
		v, _ = m.series.LoadOrStore(k, requestSeries{
			count:   m.requests.WithLabelValues(method, route, strconv.Itoa(status)),
			latency: m.latency.WithLabelValues(method, route),
		})
	}
	s := v.(requestSeries)
	s.count.Inc()
	s.latency.Observe(d.Seconds())
}
