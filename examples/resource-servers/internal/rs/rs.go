// Package rs is what the two example resource servers share besides the
// verify package: configuration from the environment, the token source of
// their revocation-feed polls, a health endpoint and an HTTP server that
// stops with its context.
package rs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/rotorauth/rotor/verify"
)

// Env returns the variable name, or def when it is unset.
func Env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// Config is verify.Config from the environment:
//
//	ROTOR_ISSUER      Rotor's JWT_ISSUER (default http://localhost:8080)
//	ROTOR_AUDIENCE    Rotor's JWT_AUDIENCE (default rotor)
//	ROTOR_CLIENT_ID, ROTOR_CLIENT_SECRET
//	                  a confidential client with role introspect (client_credentials
//	                  grant, client_secret_basic), or else:
//	ROTOR_SERVICE_EMAIL, ROTOR_SERVICE_PASSWORD
//	                  a user with role introspect, logged in with the password grant
//	ALLOW_MISSING_CLIENT_ID  true: accept tokens without client_id (a Rotor older than
//	                  its client support); default false
//	KEY_REFRESH_INTERVAL, POLL_INTERVAL, STALE_AFTER  Go durations (verify's defaults)
//	FAIL_OPEN         true: accept tokens while revocations are stale
func Config(ctx context.Context, log *slog.Logger) (verify.Config, error) {
	issuer := Env("ROTOR_ISSUER", "http://localhost:8080")
	ts, err := tokenSource(ctx, issuer)
	if err != nil {
		return verify.Config{}, err
	}
	c := verify.Config{Issuer: issuer, Audience: Env("ROTOR_AUDIENCE", "rotor"), TokenSource: ts, Logger: log}
	var bad []error
	boolean := func(name string, def bool) bool {
		b, err := strconv.ParseBool(Env(name, strconv.FormatBool(def)))
		if err != nil {
			bad = append(bad, fmt.Errorf("%s: %w", name, err))
		}
		return b
	}
	duration := func(name string) time.Duration {
		v := os.Getenv(name)
		if v == "" {
			return 0
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			bad = append(bad, fmt.Errorf("%s: %w", name, err))
		}
		return d
	}
	c.AllowMissingClientID = boolean("ALLOW_MISSING_CLIENT_ID", false)
	c.FailOpen = boolean("FAIL_OPEN", false)
	c.KeyRefreshInterval = duration("KEY_REFRESH_INTERVAL")
	c.PollInterval = duration("POLL_INTERVAL")
	c.StaleAfter = duration("STALE_AFTER")
	return c, errors.Join(bad...)
}

// tokenSource picks client credentials when given, else a service user.
func tokenSource(ctx context.Context, issuer string) (oauth2.TokenSource, error) {
	if id := os.Getenv("ROTOR_CLIENT_ID"); id != "" {
		cc := &clientcredentials.Config{ClientID: id, ClientSecret: os.Getenv("ROTOR_CLIENT_SECRET"),
			TokenURL: issuer + "/token", AuthStyle: oauth2.AuthStyleInHeader} // client_secret_basic
		return ccSource{ctx, cc}, nil
	}
	email, password := os.Getenv("ROTOR_SERVICE_EMAIL"), os.Getenv("ROTOR_SERVICE_PASSWORD")
	if email == "" || password == "" {
		return nil, errors.New("set ROTOR_CLIENT_ID and ROTOR_CLIENT_SECRET, or ROTOR_SERVICE_EMAIL and ROTOR_SERVICE_PASSWORD (a user with role introspect)")
	}
	return &loginSource{ctx: ctx, email: email, password: password,
		cfg: oauth2.Config{Endpoint: oauth2.Endpoint{TokenURL: issuer + "/token", AuthStyle: oauth2.AuthStyleInParams}}}, nil
}

// ccSource fetches a new client_credentials token on each call (the
// Verifier caches it, and asks again when Rotor refuses it).
type ccSource struct {
	ctx context.Context
	cfg *clientcredentials.Config
}

func (s ccSource) Token() (*oauth2.Token, error) { return s.cfg.Token(s.ctx) }

// loginSource logs a service user in (RFC 6749 password grant) and
// refreshes its session with the refresh token, logging in again when that
// fails.
type loginSource struct {
	ctx             context.Context
	cfg             oauth2.Config
	email, password string
	mu              sync.Mutex
	last            *oauth2.Token
}

func (s *loginSource) Token() (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	if s.last != nil && s.last.RefreshToken != "" {
		if t, err := s.cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: s.last.RefreshToken}).Token(); err == nil {
			s.last = t
			return t, nil
		}
	}
	t, err := s.cfg.PasswordCredentialsToken(ctx, s.email, s.password)
	if err != nil {
		return nil, err
	}
	s.last = t
	return t, nil
}

// Health answers the Verifier's Status: 200 when ready and current, 503
// otherwise.
func Health(v *verify.Verifier) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := v.Status()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if !st.Ready || (st.Stale && !st.FailOpen) {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(st)
	})
}

// JSON writes v as the answer.
func JSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}

// Serve serves h on addr until ctx ends, then shuts down gracefully.
func Serve(ctx context.Context, addr string, h http.Handler, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	log.Info("listening", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
