package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rotorauth/rotor/internal/store/postgres/pgtest"
	"github.com/rotorauth/rotor/internal/tokens"
)

var db *pgtest.Database

func TestMain(m *testing.M) { pgtest.Main(m, &db) }

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestBadConfigurationNamesTheVariable(t *testing.T) {
	cases := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"ACCESS_TOKEN_TTL": "fifteen"}, "ACCESS_TOKEN_TTL:"},
		{map[string]string{"JWT_ALG": "RS256"}, "JWT_ALG:"},
		{map[string]string{"DATABASE_URL": "postgres://x", "TOKEN_SECRET": strings.Repeat("s", 32)}, "JWT_KEYS:"},
		{map[string]string{"DATABASE_URL": "postgres://x", "JWT_KEYS": "/k.pem"}, "TOKEN_SECRET:"},
		{map[string]string{"TOKEN_SECRET": "short"}, "TOKEN_SECRET:"},
		{map[string]string{"JWT_ALG": "HS256", "JWT_SECRET": "short"}, "JWT_SECRET:"},
		{map[string]string{"LOGIN_RATE_LIMIT": "ten"}, "LOGIN_RATE_LIMIT:"},
		{map[string]string{"SIGNUP_ENABLED": "maybe"}, "SIGNUP_ENABLED:"},
		{map[string]string{"REFRESH_COOKIE": "true"}, "CORS_ALLOWED_ORIGINS:"},
		{map[string]string{"CORS_ALLOWED_ORIGINS": "*"}, "CORS_ALLOWED_ORIGINS:"},
		{map[string]string{"TRUSTED_PROXIES": "10.0.0.0/33"}, "TRUSTED_PROXIES:"},
		{map[string]string{"BOOTSTRAP_ADMIN_EMAIL": "a@b.cd"}, "BOOTSTRAP_ADMIN_EMAIL:"},
		{map[string]string{"REFRESH_REUSE_GRACE": "-1s"}, "REFRESH_REUSE_GRACE:"},
		{map[string]string{"REFRESH_TOKEN_TTL": "1000h"}, "REFRESH_TOKEN_TTL:"},
	}
	for _, c := range cases {
		var out bytes.Buffer
		err := run(context.Background(), []string{"server"}, env(c.env), &out, &out)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("env %v: error %v, want a line naming %s", c.env, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "short") && c.env["TOKEN_SECRET"] == "short" && strings.Contains(err.Error(), "short\"") {
			t.Errorf("the error echoes the secret: %v", err)
		}
	}
	// Defaults are valid.
	if _, err := loadConfig(env(nil)); err != nil {
		t.Fatalf("defaults: %v", err)
	}
}

func TestKeygen(t *testing.T) {
	for alg, kind := range map[string]string{tokens.AlgEdDSA: "ed25519", tokens.AlgES256: "es256"} {
		var out bytes.Buffer
		if err := run(context.Background(), []string{"server", "keygen", kind}, env(nil), &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		if _, err := tokens.ParsePrivateKeys(alg, out.Bytes()); err != nil {
			t.Fatalf("keygen %s output does not load as JWT_KEYS: %v", kind, err)
		}
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"server", "keygen", "secret"}, env(nil), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if s := strings.TrimSpace(out.String()); len(s) < 32 {
		t.Fatalf("secret %d bytes", len(s))
	}
	if err := run(context.Background(), []string{"server", "keygen", "rsa"}, env(nil), io.Discard, io.Discard); err == nil {
		t.Fatal("keygen rsa succeeded")
	}
}

// instance is run() serving in a goroutine.
type instance struct {
	base string
	done chan error
	stop context.CancelFunc
	logs *lockedBuffer
}

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

var listenRE = regexp.MustCompile(`"msg":"listening","addr":"([^"]+)"`)

// start runs the whole program with vars on 127.0.0.1:0 and waits until it
// listens.
func start(t *testing.T, vars map[string]string) *instance {
	t.Helper()
	vars["HTTP_ADDR"] = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{done: make(chan error, 1), stop: cancel, logs: &lockedBuffer{}}
	go func() { in.done <- run(ctx, []string{"server"}, env(vars), io.Discard, in.logs) }()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if m := listenRE.FindStringSubmatch(in.logs.String()); m != nil {
			in.base = "http://" + m[1]
			break
		}
		select {
		case err := <-in.done:
			t.Fatalf("server exited: %v\n%s", err, in.logs.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if in.base == "" {
		t.Fatalf("server did not start:\n%s", in.logs.String())
	}
	t.Cleanup(func() {
		in.stop()
		select {
		case err := <-in.done:
			if err != nil {
				t.Errorf("run returned %v after shutdown", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("server did not shut down")
		}
	})
	return in
}

// request sends one request with an optional JSON body and bearer token.
func request(method, url, body, bearer string) (int, http.Header, []byte, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b, err
}

// call sends a request and decodes a JSON object answer; transport errors
// fail the test.
func call(t *testing.T, method, url, body, bearer string) (int, map[string]any) {
	t.Helper()
	st, _, b, err := request(method, url, body, bearer)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return st, m
}

// callFull is call that returns the headers and the raw body.
func callFull(t *testing.T, method, url, body, bearer string) (int, http.Header, string) {
	t.Helper()
	st, h, b, err := request(method, url, body, bearer)
	if err != nil {
		t.Fatal(err)
	}
	return st, h, string(b)
}

// tryCall is call without failing the test on a transport error.
func tryCall(method, url, body string) (int, map[string]any, error) {
	st, _, b, err := request(method, url, body, "")
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return st, m, err
}

func TestServeInMemoryAndShutDown(t *testing.T) {
	in := start(t, map[string]string{"BOOTSTRAP_ADMIN_EMAIL": "root@example.test", "BOOTSTRAP_ADMIN_PASSWORD": "root password 1"})
	if st, _ := call(t, "POST", in.base+"/users", `{"email":"u@example.test","password":"user password"}`, ""); st != 201 {
		t.Fatalf("signup %d", st)
	}
	st, tok := call(t, "POST", in.base+"/token", `{"username":"root@example.test","password":"root password 1"}`, "")
	if st != 200 {
		t.Fatalf("bootstrap admin login %d", st)
	}
	if st, me := call(t, "GET", in.base+"/me", "", tok["access_token"].(string)); st != 200 || me["roles"].([]any)[0] != "admin" {
		t.Fatalf("/me %d %v", st, me)
	}
	logs := in.logs.String()
	for _, secret := range []string{"root password 1", "user password", tok["access_token"].(string), tok["refresh_token"].(string)} {
		if strings.Contains(logs, secret) {
			t.Fatal("a secret reached the log")
		}
	}
	if !strings.Contains(logs, "IN-MEMORY") {
		t.Fatal("no loud warning about the in-memory store")
	}
}

// pgEnv is the configuration of an instance on the test database.
func pgEnv(t *testing.T, keys string) map[string]string {
	pgtest.Require(t, db)
	return map[string]string{
		"DATABASE_URL": db.URL, "JWT_KEYS": keys, "TOKEN_SECRET": "an instance-shared secret of 32+ bytes",
		"LOGIN_RATE_LIMIT": "0", "QUIET_ACCESS_LOG": "true",
	}
}

func writeKeys(t *testing.T) string {
	var pemOut bytes.Buffer
	if err := keygen("ed25519", &pemOut); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "keys.pem")
	if err := os.WriteFile(path, pemOut.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTwoInstancesShareRevocationsWithinOneSecond(t *testing.T) {
	pgtest.Require(t, db)
	keys := writeKeys(t)
	a := start(t, pgEnv(t, keys))
	b := start(t, pgEnv(t, keys))
	for round := 0; round < 5; round++ {
		email := "twin" + string(rune('a'+round)) + "@example.test"
		call(t, "POST", a.base+"/users", `{"email":"`+email+`","password":"twin password"}`, "")
		st, tok := call(t, "POST", a.base+"/token", `{"username":"`+email+`","password":"twin password"}`, "")
		if st != 200 {
			t.Fatalf("login %d", st)
		}
		at := tok["access_token"].(string)
		if st, _ := call(t, "GET", b.base+"/me", "", at); st != 200 {
			t.Fatalf("instance b refused a token of instance a: %d", st)
		}
		if st, _ := call(t, "POST", a.base+"/logout", "", at); st != 204 {
			t.Fatalf("logout %d", st)
		}
		began := time.Now()
		for {
			st, _ := call(t, "GET", b.base+"/me", "", at)
			if st == 401 {
				break
			}
			if time.Since(began) > time.Second {
				t.Fatalf("round %d: instance b still accepts a logged-out token after 1s", round)
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Logf("round %d: instance b refused the token %v after logout", round, time.Since(began).Round(time.Millisecond))
	}
	// A third instance started now loads the denylist at start.
	// (Restart durability: nothing still unexpired is forgotten.)
	email := "late@example.test"
	call(t, "POST", a.base+"/users", `{"email":"`+email+`","password":"late password"}`, "")
	_, tok := call(t, "POST", a.base+"/token", `{"username":"`+email+`","password":"late password"}`, "")
	call(t, "POST", a.base+"/logout", "", tok["access_token"].(string))
	c := start(t, pgEnv(t, keys))
	if st, _ := call(t, "GET", c.base+"/me", "", tok["access_token"].(string)); st != 401 {
		t.Fatalf("a freshly started instance accepted a revoked token: %d", st)
	}
}

func TestMigrateCommands(t *testing.T) {
	pgtest.Require(t, db)
	getenv := env(map[string]string{"DATABASE_URL": db.URL})
	var out bytes.Buffer
	for _, dir := range []string{"up", "status", "down", "status", "up"} {
		out.Reset()
		if err := run(context.Background(), []string{"server", "migrate", dir}, getenv, &out, io.Discard); err != nil {
			t.Fatalf("migrate %s: %v", dir, err)
		}
		if dir == "status" && !strings.Contains(out.String(), "00001_init.sql") {
			t.Fatalf("status output %q", out.String())
		}
	}
	if err := run(context.Background(), []string{"server", "migrate", "sideways"}, getenv, io.Discard, io.Discard); err == nil {
		t.Fatal("migrate sideways succeeded")
	}
}

// buildBinary builds the server into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "rotor")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// TestBinary builds the real binary, runs it, and stops it with SIGTERM.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "HTTP_ADDR=127.0.0.1:0", "DATABASE_URL=", "LOG_FORMAT=json")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill() //nolint:errcheck // already exited on the happy path
	sc := bufio.NewScanner(stderr)
	var base string
	for sc.Scan() {
		if m := listenRE.FindStringSubmatch(sc.Text()); m != nil {
			base = "http://" + m[1]
			break
		}
	}
	go io.Copy(io.Discard, stderr) //nolint:errcheck // drain
	if base == "" {
		t.Fatal("the binary never said it was listening")
	}
	if st, _ := call(t, "GET", base+"/healthz", "", ""); st != 200 {
		t.Fatalf("/healthz %d", st)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no graceful exit after SIGTERM")
	}
	// Bad configuration: one clear line and a non-zero exit.
	bad := exec.Command(bin)
	bad.Env = append(os.Environ(), "ACCESS_TOKEN_TTL=soon")
	out, err := bad.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "ACCESS_TOKEN_TTL:") {
		t.Fatalf("bad configuration: err %v, output %q", err, out)
	}
}
