package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rotorauth/rotor/internal/tokens"
)

// Config is every setting of SPEC §6, read from the environment once and
// validated before anything starts.
type Config struct {
	HTTPAddr           string
	MetricsAddr        string
	DatabaseURL        string
	Issuer             string
	Audience           string
	Alg                string
	KeysPath           string
	JWTSecret          []byte
	TokenSecret        []byte
	AccessTTL          time.Duration
	RefreshTTL         time.Duration
	SessionMaxLifetime time.Duration
	ReuseGrace         time.Duration
	AuditRetention     time.Duration
	AuditEveryRefresh  bool
	MaxSessions        int
	DefaultClientID    string
	ClientsFile        string
	SignupEnabled      bool
	RefreshCookie      bool
	CORSAllowedOrigins []string
	LoginRateLimit     int
	RateLimitIPv6Bits  int
	BootstrapEmail     string
	BootstrapPassword  string
	TrustedProxies     []netip.Prefix
	LogFormat          string
	LogLevel           string
	QuietAccessLog     bool
}

// configError lists every bad variable, one line each.
type configError []string

func (e configError) Error() string { return strings.Join(e, "\n") }

// loadConfig reads and validates the configuration. Every problem is one
// line naming its variable.
func loadConfig(getenv func(string) string) (Config, error) {
	var bad configError
	str := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	dur := func(name, def string, min time.Duration) time.Duration {
		v := str(name, def)
		d, err := time.ParseDuration(v)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: %q is not a duration (use Go syntax such as 15m or 336h)", name, v))
			return 0
		}
		if d < min {
			bad = append(bad, fmt.Sprintf("%s: %s is too short (minimum %s)", name, v, min))
		}
		return d
	}
	boolean := func(name string, def bool) bool {
		v := getenv(name)
		if v == "" {
			return def
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: %q is not a boolean (use true or false)", name, v))
		}
		return b
	}
	c := Config{
		HTTPAddr:           str("HTTP_ADDR", ":8080"),
		MetricsAddr:        getenv("METRICS_ADDR"),
		DatabaseURL:        getenv("DATABASE_URL"),
		Issuer:             str("JWT_ISSUER", "http://localhost:8080"),
		Audience:           str("JWT_AUDIENCE", "rotor"),
		Alg:                str("JWT_ALG", tokens.AlgEdDSA),
		KeysPath:           getenv("JWT_KEYS"),
		JWTSecret:          []byte(getenv("JWT_SECRET")),
		TokenSecret:        []byte(getenv("TOKEN_SECRET")),
		AccessTTL:          dur("ACCESS_TOKEN_TTL", "15m", time.Minute),
		RefreshTTL:         dur("REFRESH_TOKEN_TTL", "336h", time.Minute),
		SessionMaxLifetime: dur("SESSION_MAX_LIFETIME", "720h", time.Minute),
		ReuseGrace:         dur("REFRESH_REUSE_GRACE", "10s", 0),
		AuditRetention:     dur("AUDIT_RETENTION", "2160h", time.Hour),
		AuditEveryRefresh:  boolean("AUDIT_EVERY_REFRESH", false),
		DefaultClientID:    str("DEFAULT_CLIENT_ID", tokens.DefaultClientID),
		ClientsFile:        getenv("CLIENTS_FILE"),
		SignupEnabled:      boolean("SIGNUP_ENABLED", true),
		RefreshCookie:      boolean("REFRESH_COOKIE", false),
		BootstrapEmail:     getenv("BOOTSTRAP_ADMIN_EMAIL"),
		BootstrapPassword:  getenv("BOOTSTRAP_ADMIN_PASSWORD"),
		LogFormat:          str("LOG_FORMAT", "json"),
		LogLevel:           str("LOG_LEVEL", "info"),
		QuietAccessLog:     boolean("QUIET_ACCESS_LOG", false),
	}
	if c.ReuseGrace > time.Minute {
		bad = append(bad, "REFRESH_REUSE_GRACE: at most 1m (a long window weakens reuse detection)")
	}
	if c.RefreshTTL > 0 && c.SessionMaxLifetime > 0 && c.RefreshTTL > c.SessionMaxLifetime {
		bad = append(bad, "REFRESH_TOKEN_TTL: longer than SESSION_MAX_LIFETIME; a token never outlives its session")
	}
	switch c.Alg {
	case tokens.AlgEdDSA, tokens.AlgES256:
		if len(c.JWTSecret) > 0 {
			bad = append(bad, "JWT_SECRET: only used with JWT_ALG=HS256; remove it or set JWT_ALG=HS256")
		}
		if c.KeysPath == "" && c.DatabaseURL != "" {
			bad = append(bad, "JWT_KEYS: required with DATABASE_URL (a path to a PEM file of PKCS#8 keys; `server keygen` writes one)")
		}
	case tokens.AlgHS256:
		if c.KeysPath != "" {
			bad = append(bad, "JWT_KEYS: not used with JWT_ALG=HS256 (it takes JWT_SECRET)")
		}
		if len(c.JWTSecret) == 0 && c.DatabaseURL != "" {
			bad = append(bad, "JWT_SECRET: required with JWT_ALG=HS256 and DATABASE_URL (at least 32 bytes)")
		} else if len(c.JWTSecret) > 0 && len(c.JWTSecret) < tokens.MinSecretLen {
			bad = append(bad, fmt.Sprintf("JWT_SECRET: %d bytes, need at least 32", len(c.JWTSecret)))
		}
	default:
		bad = append(bad, fmt.Sprintf("JWT_ALG: %q is not supported (use EdDSA, ES256 or HS256)", c.Alg))
	}
	if len(c.TokenSecret) == 0 && c.DatabaseURL != "" {
		bad = append(bad, "TOKEN_SECRET: required with DATABASE_URL (at least 32 bytes shared by every instance; `server keygen secret` prints one)")
	} else if len(c.TokenSecret) > 0 && len(c.TokenSecret) < tokens.MinSecretLen {
		bad = append(bad, fmt.Sprintf("TOKEN_SECRET: %d bytes, need at least 32", len(c.TokenSecret)))
	}
	if strings.HasSuffix(c.Issuer, "/") {
		bad = append(bad, fmt.Sprintf("JWT_ISSUER: %q ends with '/': give the base URL without it (it is the iss claim and the metadata's issuer, which must match exactly)", c.Issuer))
	}
	if v := getenv("MAX_SESSIONS_PER_USER"); v == "" {
		c.MaxSessions = tokens.DefaultMaxSessions
	} else if n, err := strconv.Atoi(v); err != nil || n < 0 {
		bad = append(bad, fmt.Sprintf("MAX_SESSIONS_PER_USER: %q is not a non-negative integer (0 turns the cap off)", v))
	} else {
		c.MaxSessions = n
	}
	if v := getenv("LOGIN_RATE_LIMIT"); v == "" {
		c.LoginRateLimit = 10
	} else if n, err := strconv.Atoi(v); err != nil || n < 0 {
		bad = append(bad, fmt.Sprintf("LOGIN_RATE_LIMIT: %q is not a non-negative integer (0 turns limiting off)", v))
	} else {
		c.LoginRateLimit = n
	}
	if v := getenv("RATE_LIMIT_IPV6_PREFIX"); v == "" {
		c.RateLimitIPv6Bits = 64
	} else if n, err := strconv.Atoi(strings.TrimPrefix(v, "/")); err != nil || n < 32 || n > 128 {
		bad = append(bad, fmt.Sprintf("RATE_LIMIT_IPV6_PREFIX: %q is not an IPv6 prefix length from 32 to 128 (default 64)", v))
	} else {
		c.RateLimitIPv6Bits = n
	}
	for _, o := range splitList(getenv("CORS_ALLOWED_ORIGINS")) {
		if o == "*" || !(strings.HasPrefix(o, "https://") || strings.HasPrefix(o, "http://")) || strings.Count(o, "/") != 2 {
			bad = append(bad, fmt.Sprintf("CORS_ALLOWED_ORIGINS: %q is not an origin such as https://app.example.com (no path, no wildcard)", o))
			continue
		}
		c.CORSAllowedOrigins = append(c.CORSAllowedOrigins, o)
	}
	if c.RefreshCookie && len(c.CORSAllowedOrigins) == 0 {
		bad = append(bad, "CORS_ALLOWED_ORIGINS: required with REFRESH_COOKIE=true (cookie requests must come from a listed Origin)")
	}
	for _, p := range splitList(getenv("TRUSTED_PROXIES")) {
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			a, aerr := netip.ParseAddr(p)
			if aerr != nil {
				bad = append(bad, fmt.Sprintf("TRUSTED_PROXIES: %q is not an IP address or CIDR prefix", p))
				continue
			}
			pfx = netip.PrefixFrom(a, a.BitLen())
		}
		c.TrustedProxies = append(c.TrustedProxies, pfx.Masked())
	}
	if (c.BootstrapEmail == "") != (c.BootstrapPassword == "") {
		bad = append(bad, "BOOTSTRAP_ADMIN_EMAIL: set it together with BOOTSTRAP_ADMIN_PASSWORD, or neither")
	} else if c.BootstrapEmail != "" {
		if _, err := tokens.NormalizeEmail(c.BootstrapEmail); err != nil {
			bad = append(bad, "BOOTSTRAP_ADMIN_EMAIL: "+err.Error())
		}
		if err := tokens.ValidatePassword(c.BootstrapPassword); err != nil {
			bad = append(bad, "BOOTSTRAP_ADMIN_PASSWORD: "+err.Error())
		}
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		bad = append(bad, fmt.Sprintf("LOG_FORMAT: %q (use json or text)", c.LogFormat))
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		bad = append(bad, "LOG_LEVEL: "+err.Error())
	}
	if len(bad) > 0 {
		return c, bad
	}
	return c, nil
}

func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// keySet loads JWT_KEYS or JWT_SECRET; in in-memory mode without them it
// generates a key and says so.
func (c Config) keySet(warn func(string)) (*tokens.KeySet, error) {
	switch {
	case c.Alg == tokens.AlgHS256 && len(c.JWTSecret) > 0:
		return tokens.NewHMACKeySet(c.JWTSecret)
	case c.KeysPath != "":
		pem, err := os.ReadFile(c.KeysPath)
		if err != nil {
			return nil, fmt.Errorf("JWT_KEYS: %w", errors.Unwrap(err))
		}
		ks, err := tokens.ParsePrivateKeys(c.Alg, pem)
		if err != nil {
			return nil, fmt.Errorf("JWT_KEYS: %s: %w", c.KeysPath, err)
		}
		return ks, nil
	}
	warn("no JWT_KEYS/JWT_SECRET: generated a signing key for this process only; access tokens die with it")
	return tokens.GenerateKeySet(c.Alg)
}

// serviceConfig is the domain's configuration.
func (c Config) serviceConfig(keys *tokens.KeySet, secret []byte) tokens.Config {
	return tokens.Config{
		Issuer: c.Issuer, Audience: c.Audience,
		AccessTTL: c.AccessTTL, RefreshTTL: c.RefreshTTL, SessionMaxLifetime: c.SessionMaxLifetime,
		ReuseGrace: c.ReuseGrace, AuditRetention: c.AuditRetention, AuditEveryRefresh: c.AuditEveryRefresh, MaxSessionsPerUser: c.MaxSessions,
		DefaultClientID: c.DefaultClientID, DefaultOrigins: c.CORSAllowedOrigins,
		Keys: keys, TokenSecret: secret,
	}
}
