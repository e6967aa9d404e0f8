package verify

// Test harness: the real Rotor binary (built from ../cmd/server, or
// $ROTOR_BINARY), scratch PostgreSQL databases, a password-login token
// source for the feed, and a proxy that counts requests and can be cut.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/oauth2"
)

const (
	adminEmail    = "admin@example.test"
	adminPassword = "admin password 1"
	svcEmail      = "feed@example.test" // holds role introspect, reads the feed
	svcPassword   = "feed password 1"
	tokenSecret   = "a shared token secret of 32+ bytes for the tests"
)

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error
	buildDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// rotorBinary builds Rotor once per test binary (or takes $ROTOR_BINARY).
func rotorBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		if b := os.Getenv("ROTOR_BINARY"); b != "" {
			buildBin = b
			return
		}
		buildDir, buildErr = os.MkdirTemp("", "verify-rotor-")
		if buildErr != nil {
			return
		}
		buildBin = filepath.Join(buildDir, "rotor")
		out, err := exec.Command("go", "build", "-o", buildBin, "../cmd/server").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ../cmd/server: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

// lockedBuffer collects a process's or a logger's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// rotorOpts configure one Rotor process.
type rotorOpts struct {
	keys   string            // JWT_KEYS file; empty: generated per process
	dbURL  string            // DATABASE_URL; empty: in-memory store
	port   int               // 0: a free one
	issuer string            // JWT_ISSUER; empty: the process's own base URL
	env    map[string]string // anything else
}

// rotor is one running Rotor process.
type rotor struct {
	t    testing.TB
	opts rotorOpts
	base string
	cmd  *exec.Cmd
	logs *lockedBuffer
	done chan struct{}
}

// freePort finds a port nothing listens on right now.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startRotor runs Rotor, waits until it answers /healthz, and stops it when
// the test ends.
func startRotor(t testing.TB, o rotorOpts) *rotor {
	t.Helper()
	if o.port == 0 {
		o.port = freePort(t)
	}
	r := &rotor{t: t, opts: o, base: fmt.Sprintf("http://127.0.0.1:%d", o.port)}
	r.launch()
	t.Cleanup(r.stop)
	return r
}

func (r *rotor) launch() {
	t := r.t
	t.Helper()
	env := map[string]string{
		"PATH":                     os.Getenv("PATH"),
		"HOME":                     os.Getenv("HOME"),
		"HTTP_ADDR":                fmt.Sprintf("127.0.0.1:%d", r.opts.port),
		"JWT_ISSUER":               r.base,
		"LOG_FORMAT":               "text",
		"QUIET_ACCESS_LOG":         "true",
		"LOGIN_RATE_LIMIT":         "0",
		"REFRESH_REUSE_GRACE":      "0", // strict: a replayed refresh token is reuse at once
		"BOOTSTRAP_ADMIN_EMAIL":    adminEmail,
		"BOOTSTRAP_ADMIN_PASSWORD": adminPassword,
	}
	if r.opts.issuer != "" {
		env["JWT_ISSUER"] = r.opts.issuer
	}
	if r.opts.keys != "" {
		env["JWT_KEYS"] = r.opts.keys
	}
	if r.opts.dbURL != "" {
		env["DATABASE_URL"] = r.opts.dbURL
		env["TOKEN_SECRET"] = tokenSecret
	}
	for k, v := range r.opts.env {
		env[k] = v
	}
	cmd := exec.Command(rotorBinary(t))
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	r.logs = &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = r.logs, r.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.cmd, r.done = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(r.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-r.done:
			t.Fatalf("rotor exited at start:\n%s", r.logs.String())
		default:
		}
		if resp, err := http.Get(r.base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("rotor did not answer /healthz in 30 s:\n%s", r.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends the process with SIGTERM (SIGKILL after 10 s).
func (r *rotor) stop() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
	r.cmd = nil
	if r.t.Failed() {
		r.t.Logf("rotor %s log:\n%s", r.base, r.logs.String())
	}
}

// restart runs Rotor again on the same port with another JWT_KEYS file.
func (r *rotor) restart(keys string) {
	r.t.Helper()
	r.stop()
	r.opts.keys = keys
	r.launch()
}

// scratchDB creates a database for one test from TEST_DATABASE_URL and
// drops it afterwards; without TEST_DATABASE_URL the test skips (fails
// under REQUIRE_POSTGRES=1).
func scratchDB(t testing.TB) string {
	t.Helper()
	base := os.Getenv("TEST_DATABASE_URL")
	if base == "" {
		if os.Getenv("REQUIRE_POSTGRES") == "1" {
			t.Fatal("REQUIRE_POSTGRES=1 but TEST_DATABASE_URL is not set")
		}
		t.Skip("TEST_DATABASE_URL is not set: skipping a test that runs Rotor on PostgreSQL")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("TEST_DATABASE_URL: %v", err)
	}
	defer conn.Close(ctx)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "rotor_verify_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	q := u.Query()
	q.Set("pool_max_conns", "4")
	u.RawQuery = q.Encode()
	return u.String()
}

// keyFile is one Ed25519 key Rotor signs with (via JWT_KEYS), known to the
// test so it can sign tokens with Rotor's own key.
type keyFile struct {
	priv ed25519.PrivateKey
	pem  []byte
	kid  string // RFC 7638 thumbprint, as Rotor names it
}

// newKey makes a key with `rotor keygen ed25519 --out`.
func newKey(t testing.TB) keyFile {
	t.Helper()
	p := filepath.Join(t.TempDir(), "key.pem")
	if out, err := exec.Command(rotorBinary(t), "keygen", "ed25519", "--out", p).CombinedOutput(); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("keygen wrote no PEM: %q", data)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	priv := k.(ed25519.PrivateKey)
	x := base64.RawURLEncoding.EncodeToString(priv.Public().(ed25519.PublicKey))
	return keyFile{priv: priv, pem: data, kid: thumbprint(map[string]string{"crv": "Ed25519", "kty": "OKP", "x": x})}
}

// writeKeys writes a JWT_KEYS file of keys, the first signing.
func writeKeys(t testing.TB, keys ...keyFile) string {
	t.Helper()
	var all []byte
	for _, k := range keys {
		all = append(all, k.pem...)
	}
	p := filepath.Join(t.TempDir(), "jwt-keys.pem")
	if err := os.WriteFile(p, all, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// tokens is a /token or /refresh answer.
type tokens struct {
	Access    string `json:"access_token"`
	Refresh   string `json:"refresh_token"`
	SessionID string `json:"session_id"`
}

// call sends a JSON request and decodes a JSON answer into out (if any).
func call(method, u, bearer string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil && resp.StatusCode/100 == 2 && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %v: %s", method, u, err, b)
		}
	}
	return resp.StatusCode, nil
}

// must is call that fails the test unless the status is want.
func (r *rotor) must(want int, method, path, bearer string, body, out any) {
	r.t.Helper()
	st, err := call(method, r.base+path, bearer, body, out)
	if err != nil {
		r.t.Fatalf("%s %s: %v", method, path, err)
	}
	if st != want {
		r.t.Fatalf("%s %s: status %d, want %d", method, path, st, want)
	}
}

func (r *rotor) login(email, password string) tokens {
	r.t.Helper()
	var tk tokens
	r.must(200, "POST", "/token", "", map[string]string{"username": email, "password": password}, &tk)
	return tk
}

// user creates a user (as admin) and logs it in.
func (r *rotor) user(email string, roles ...string) tokens {
	r.t.Helper()
	admin := r.login(adminEmail, adminPassword)
	if roles == nil {
		roles = []string{}
	}
	r.must(201, "POST", "/admin/users", admin.Access, map[string]any{"email": email, "password": "user password 1", "roles": roles}, nil)
	return r.login(email, "user password 1")
}

// serviceSource is a feed token source for a user with role introspect
// (svcEmail): it logs in with the RFC 6749 password grant and refreshes with
// the refresh token, logging in again if that fails. The Verifier caches its
// tokens. (TestClientCredentialsFeed covers the production source, Rotor's
// client_credentials grant.)
func (r *rotor) serviceSource() oauth2.TokenSource {
	r.t.Helper()
	admin := r.login(adminEmail, adminPassword)
	st, err := call("POST", r.base+"/admin/users", admin.Access, map[string]any{"email": svcEmail, "password": svcPassword, "roles": []string{"introspect"}}, nil)
	if err != nil || (st != 201 && st != 409) {
		r.t.Fatalf("create the feed's service user: %d %v", st, err)
	}
	return &loginSource{cfg: oauth2.Config{Endpoint: oauth2.Endpoint{TokenURL: r.base + "/token", AuthStyle: oauth2.AuthStyleInParams}},
		user: svcEmail, password: svcPassword}
}

type loginSource struct {
	cfg            oauth2.Config
	user, password string
	mu             sync.Mutex
	last           *oauth2.Token
}

func (s *loginSource) Token() (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if s.last != nil && s.last.RefreshToken != "" {
		t, err := s.cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: s.last.RefreshToken}).Token()
		if err == nil {
			s.last = t
			return t, nil
		}
	}
	t, err := s.cfg.PasswordCredentialsToken(ctx, s.user, s.password)
	if err != nil {
		return nil, err
	}
	s.last = t
	return t, nil
}

// rotorEmitsClientID reports whether Rotor's access tokens carry client_id
// (RFC 9068 §2.2). A Rotor from before its client support does not: the
// tests then verify with AllowMissingClientID; against one that does they
// use the default (client_id required). TestClientIDRequirement checks both
// sides.
func rotorEmitsClientID(t testing.TB, accessToken string) bool {
	t.Helper()
	var claims map[string]any
	decodeSegment(t, accessToken, 1, &claims)
	_, ok := claims["client_id"]
	return ok
}

func decodeSegment(t testing.TB, jwt string, i int, out any) {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %q", jwt)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
}

// testLogger collects a Verifier's log.
func testLogger() (*slog.Logger, *lockedBuffer) {
	buf := &lockedBuffer{}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// newVerifier makes a Verifier for r with the defaults except what edit
// changes, waits until it is ready, and closes it when the test ends.
func newVerifier(t testing.TB, r *rotor, ts oauth2.TokenSource, edit func(*Config)) (*Verifier, *lockedBuffer) {
	t.Helper()
	log, buf := testLogger()
	admin := r.login(adminEmail, adminPassword)
	cfg := Config{
		Issuer: r.base, Audience: "rotor", TokenSource: ts, Logger: log,
		AllowMissingClientID: !rotorEmitsClientID(t, admin.Access),
	}
	if edit != nil {
		edit(&cfg)
	}
	v, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		v.Close()
		if t.Failed() {
			t.Logf("verifier log:\n%s", buf.String())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := v.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return v, buf
}

// eventually retries cond every 25 ms for up to d and says how long it took.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(25 * time.Millisecond)
	}
	return time.Since(start)
}

// proxy is an HTTP reverse proxy in front of Rotor that counts requests by
// path, records feed queries, and can be cut (every request then has its
// connection closed without an answer).
type proxy struct {
	*httptest.Server
	mu      sync.Mutex
	cut     bool
	counts  map[string]int
	queries []url.Values // of /revocations
}

func newProxy(t testing.TB, target string) *proxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = nil
	p := &proxy{counts: map[string]int{}}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		cut := p.cut
		if !cut {
			p.counts[r.URL.Path]++
			if r.URL.Path == "/revocations" {
				p.queries = append(p.queries, r.URL.Query())
			}
		}
		p.mu.Unlock()
		if cut {
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *proxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		p.CloseClientConnections()
	}
}

func (p *proxy) count(path string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[path]
}

func (p *proxy) feedQueries() []url.Values {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]url.Values(nil), p.queries...)
}

// isRefused reports whether err refuses the token (not "cannot decide").
func isRefused(err error) bool { return err != nil && errors.Is(err, ErrInvalidToken) }
