package api

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Prometheus series of SPEC §8 that the HTTP layer can see.
type metrics struct {
	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	rotations   *prometheus.CounterVec
	reuse       prometheus.Counter
	revocations *prometheus.CounterVec
	loginFailed prometheus.Counter
	rateLimited *prometheus.CounterVec
	series      sync.Map // seriesKey → requestSeries
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rotor_http_requests_total", Help: "HTTP requests by method, route template and status.",
		}, []string{"method", "route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "rotor_http_request_duration_seconds", Help: "HTTP request latency by method and route template.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"method", "route"}),
		rotations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rotor_refresh_total", Help: "Successful refreshes: rotated, or replayed inside the grace window.",
		}, []string{"outcome"}),
		reuse: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rotor_reuse_detections_total", Help: "Refresh-token reuse detections (each revokes a session).",
		}),
		revocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rotor_revocations_total", Help: "Revocation requests carried out, by reason.",
		}, []string{"reason"}),
		loginFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rotor_login_failures_total", Help: "Refused logins.",
		}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rotor_rate_limited_total", Help: "Requests refused by a rate limit, by limit.",
		}, []string{"limit"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.latency, m.rotations, m.reuse, m.revocations, m.loginFailed, m.rateLimited)
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
