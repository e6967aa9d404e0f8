// Package harness holds what Rotor's own tools (cmd/bench, cmd/soak) need
// to run the real server beside a scratch database: the server's
// configuration variables, a clean environment, a free port. It is not part
// of the product and the product never imports it.
package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// ServerVariables are every configuration variable cmd/server reads (SPEC
// §6; a test checks the list against cmd/server/config.go). A tool removes
// them all from the environment it inherited before it sets its own, so an
// operator's exported CLIENTS_FILE or DATABASE_URL never leaks into a run.
var ServerVariables = []string{
	"HTTP_ADDR", "METRICS_ADDR", "DATABASE_URL",
	"JWT_ISSUER", "JWT_AUDIENCE", "JWT_ALG", "JWT_KEYS", "JWT_SECRET", "TOKEN_SECRET",
	"ACCESS_TOKEN_TTL", "REFRESH_TOKEN_TTL", "SESSION_MAX_LIFETIME", "REFRESH_REUSE_GRACE",
	"AUDIT_RETENTION", "AUDIT_EVERY_REFRESH", "MAX_SESSIONS_PER_USER", "DEFAULT_CLIENT_ID", "CLIENTS_FILE",
	"SIGNUP_ENABLED", "REFRESH_COOKIE", "CORS_ALLOWED_ORIGINS", "LOGIN_RATE_LIMIT", "RATE_LIMIT_IPV6_PREFIX", "TRUSTED_PROXIES",
	"BOOTSTRAP_ADMIN_EMAIL", "BOOTSTRAP_ADMIN_PASSWORD", "LOG_FORMAT", "LOG_LEVEL", "QUIET_ACCESS_LOG",
}

// EnvironWithout is os.Environ() minus the named variables.
func EnvironWithout(names []string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !slices.Contains(names, k) {
			out = append(out, kv)
		}
	}
	return out
}

// FreePort returns 127.0.0.1:<a port that was free a moment ago>.
func FreePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// ScratchDB is a database a tool created and drops at the end.
type ScratchDB struct {
	Admin string // URL of the database it was created from
	Name  string
	URL   string // URL of the scratch database
}

// CreateScratch creates <prefix>_<random> through the database at pgURL.
func CreateScratch(ctx context.Context, pgURL, prefix string) (*ScratchDB, error) {
	u, err := url.Parse(pgURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, fmt.Errorf("%q is not a postgres:// URL", pgURL)
	}
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	name := prefix + "_" + hex.EncodeToString(b)
	conn, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return nil, fmt.Errorf("create scratch database: %w", err)
	}
	u.Path = "/" + name
	return &ScratchDB{Admin: pgURL, Name: name, URL: u.String()}, nil
}

// Drop removes the scratch database, disconnecting whoever still uses it.
func (s *ScratchDB) Drop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.Admin)
	if err != nil {
		return fmt.Errorf("drop database %s: %w", s.Name, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+s.Name+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", s.Name, err)
	}
	return nil
}
