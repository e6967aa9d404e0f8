package api

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

type ctxKey struct{}

// requestInfo is what observe learns of a request once and shares with the
// handlers through the context: its id, its client IP (so the proxy rules
// run once a request), and the route template the router matched.
type requestInfo struct {
	id, ip, route string
	addr          netip.Addr // ip parsed; invalid if the peer is no IP address
}

func infoOf(ctx context.Context) *requestInfo {
	info, _ := ctx.Value(ctxKey{}).(*requestInfo)
	return info
}

// setRoute records the matched route template for observe.
func setRoute(r *http.Request, tpl string) {
	if info := infoOf(r.Context()); info != nil {
		info.route = tpl
	}
}

// RequestID returns the request id of ctx, "" if none.
func RequestID(ctx context.Context) string {
	if info := infoOf(ctx); info != nil {
		return info.id
	}
	return ""
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// observe assigns a request id, recovers panics, and logs and measures each
// request by its route template. It never logs bodies, query strings or
// headers, which may carry credentials.
func (s *server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &requestInfo{id: newRequestID(), route: "unmatched"}
		info.addr, info.ip = s.peer(r)
		w.Header().Set("X-Request-Id", info.id)
		ctx := context.WithValue(r.Context(), ctxKey{}, info)
		r = r.WithContext(ctx)
		rec := &statusRecorder{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				s.log.ErrorContext(ctx, "panic", "panic", slog.AnyValue(p).String(), "path", r.URL.Path)
				if rec.status == 0 {
					writeError(rec, r, s.log, &httpError{status: 500, code: codeServerError, msg: "internal error"})
				}
			}
			status := rec.status
			if status == 0 {
				status = http.StatusOK
			}
			elapsed := time.Since(start)
			s.metrics.observeRequest(r.Method, info.route, status, elapsed)
			if !s.quietRoute(info.route) || status >= 400 {
				s.log.LogAttrs(ctx, slog.LevelInfo, "request",
					slog.String("method", r.Method), slog.String("route", info.route),
					slog.Int("status", status), slog.Float64("ms", float64(elapsed.Microseconds())/1000),
					slog.String("ip", info.ip))
			}
		}()
		next.ServeHTTP(rec, r)
	})
}

// quietRoute is a route whose successful requests are not logged one by
// one: probes and the hot token-check path.
func (s *server) quietRoute(route string) bool {
	switch route {
	case "/healthz", "/readyz", "/metrics":
		return true
	}
	return s.opts.QuietAccessLog
}

// idSources are ChaCha8 generators, each seeded from crypto/rand. The pool
// keeps one per P, so an id costs a few nanoseconds, no lock and no system
// call (a generator the GC drops is replaced by a freshly seeded one).
var idSources = sync.Pool{New: func() any {
	var seed [32]byte
	_, _ = crand.Read(seed[:]) // never fails (Go 1.24+)
	return rand.NewChaCha8(seed)
}}

// newRequestID is 64 random bits as 16 hex digits: unpredictable, and
// revealing neither how many requests came before nor which instance
// answered. Uniqueness is probabilistic (a collision in 2^32 ids).
func newRequestID() string {
	g := idSources.Get().(*rand.ChaCha8)
	v := g.Uint64()
	idSources.Put(g)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return hex.EncodeToString(b[:])
}

// securityHeaders sets headers every response should carry.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		next.ServeHTTP(w, r)
	})
}

// cors answers preflights for the configured origins only, and marks
// responses to those origins as readable with credentials.
func (s *server) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Add("Vary", "Origin")
		allowed := s.originAllowed(origin)
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			w.Header().Add("Vary", "Access-Control-Request-Method")
			w.Header().Add("Vary", "Access-Control-Request-Headers")
			if !allowed {
				writeError(w, r, s.log, &httpError{status: http.StatusForbidden, code: codeAccessDenied,
					msg: "origin " + origin + " is not in CORS_ALLOWED_ORIGINS"})
				return
			}
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Credentials", "true")
			h.Set("Access-Control-Allow-Methods", "GET, POST, PATCH, DELETE")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if allowed {
			w.Header().Set("Access-Control-Allow-Origin", origin)
			w.Header().Set("Access-Control-Allow-Credentials", "true")
			w.Header().Set("Access-Control-Expose-Headers", "X-Request-Id, Retry-After, WWW-Authenticate")
		}
		next.ServeHTTP(w, r)
	})
}

// originAllowed reports whether origin may call Rotor with credentials at
// all (CORS): CORS_ALLOWED_ORIGINS, or an origin of any enabled client.
func (s *server) originAllowed(origin string) bool {
	return s.originListed(origin) || s.svc.OriginAllowed(origin)
}

// originListed reports whether origin is in CORS_ALLOWED_ORIGINS.
func (s *server) originListed(origin string) bool {
	return slices.Contains(s.opts.CORSAllowedOrigins, origin)
}

// clientIP is the request's client address, as observe worked it out.
func (s *server) clientIP(r *http.Request) string {
	if info := infoOf(r.Context()); info != nil {
		return info.ip
	}
	_, ip := s.peer(r)
	return ip
}

// peer is the peer address, or, when the peer is a trusted proxy, the
// right-most address in X-Forwarded-For that is not itself a trusted proxy;
// parsed, and as text. Addresses are normalized: IPv4-mapped IPv6 is IPv4,
// and IPv6 zones are dropped (they only name an interface of the host that
// wrote them, and anyone may write any number of them in X-Forwarded-For).
// A peer that is no IP address (a Unix socket) is returned as text with an
// invalid Addr.
func (s *server) peer(r *http.Request) (netip.Addr, string) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, host
	}
	peer = normalAddr(peer)
	if !s.trusted(peer) {
		return peer, peer.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		a = normalAddr(a)
		if !s.trusted(a) {
			return a, a.String()
		}
	}
	return peer, peer.String()
}

func normalAddr(a netip.Addr) netip.Addr { return a.Unmap().WithZone("") }

func (s *server) trusted(a netip.Addr) bool {
	for _, p := range s.opts.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// requestIDHandler adds the request id of the context to every record, so
// every log line of a request, errors included, carries it.
type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(a)}
}

func (h requestIDHandler) WithGroup(n string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(n)}
}
