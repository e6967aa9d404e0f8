package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rotorauth/rotor/internal/api"
	"github.com/rotorauth/rotor/internal/store/memory"
	"github.com/rotorauth/rotor/internal/store/storetest"
	"github.com/rotorauth/rotor/internal/tokens"
)

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testServer is an API over a memory store, with its log captured.
type testServer struct {
	*httptest.Server
	t     *testing.T
	svc   *tokens.Service
	store tokens.Store
	logs  *syncBuffer
	// secrets collects every token and password the test saw, for the log
	// hygiene check.
	mu      sync.Mutex
	secrets []string
}

const adminEmail, adminPassword = "admin@example.test", "admin password 1"

func newTestServer(t *testing.T, opts api.Options, cfgOpts ...storetest.Option) *testServer {
	return newTestServerOn(t, memory.New(), opts, cfgOpts...)
}

// newService is a Service on store with the fixture's configuration, the
// real clock and a bootstrapped admin.
func newService(tb testing.TB, store tokens.Store, cfgOpts ...storetest.Option) *tokens.Service {
	tb.Helper()
	cfg := storetest.NewFixture(tb, store, cfgOpts...).Cfg
	cfg.Now = time.Now
	svc, err := tokens.NewService(store, storetest.FastPasswords, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := svc.EnsureUser(context.Background(), adminEmail, adminPassword, []string{"admin"}); err != nil {
		tb.Fatal(err)
	}
	return svc
}

func newTestServerOn(t *testing.T, store tokens.Store, opts api.Options, cfgOpts ...storetest.Option) *testServer {
	t.Helper()
	svc := newService(t, store, cfgOpts...)
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := httptest.NewServer(api.NewHandler(svc, log, opts))
	ts := &testServer{Server: srv, t: t, svc: svc, store: store, logs: logs, secrets: []string{adminPassword}}
	t.Cleanup(func() {
		srv.Close()
		ts.checkLogHygiene()
	})
	return ts
}

// checkLogHygiene fails the test if any token or password reached the log.
func (ts *testServer) checkLogHygiene() {
	logs := ts.logs.String()
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for _, s := range ts.secrets {
		if s != "" && strings.Contains(logs, s) {
			ts.t.Errorf("the log contains a secret (%d bytes, starting %q)", len(s), s[:min(6, len(s))])
		}
	}
}

func (ts *testServer) remember(secrets ...string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.secrets = append(ts.secrets, secrets...)
}

type response struct {
	status int
	header http.Header
	body   []byte
	cookie []*http.Cookie
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not a JSON object: %v: %s", err, r.body)
	}
	return m
}

// errorCode asserts the status and the error code of an error response.
func (r response) wantError(t *testing.T, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %s", r.status, status, r.body)
	}
	m := r.json(t)
	if m["error"] != code {
		t.Fatalf("error = %v, want %q; body %s", m["error"], code, r.body)
	}
	if d, ok := m["error_description"].(string); !ok || d == "" {
		t.Fatalf("no error_description in %s", r.body)
	}
}

type req struct {
	method, path string
	body         string
	contentType  string
	bearer       string
	header       map[string]string
	cookies      []*http.Cookie
}

func (ts *testServer) do(rq req) response {
	ts.t.Helper()
	var body io.Reader
	if rq.body != "" {
		body = strings.NewReader(rq.body)
	}
	r, err := http.NewRequest(rq.method, ts.URL+rq.path, body)
	if err != nil {
		ts.t.Fatal(err)
	}
	if rq.contentType != "" {
		r.Header.Set("Content-Type", rq.contentType)
	} else if rq.body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	if rq.bearer != "" {
		r.Header.Set("Authorization", "Bearer "+rq.bearer)
	}
	for k, v := range rq.header {
		r.Header.Set(k, v)
	}
	for _, c := range rq.cookies {
		r.AddCookie(c)
	}
	resp, err := ts.Client().Do(r)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b, cookie: resp.Cookies()}
}

func (ts *testServer) post(path, body, bearer string) response {
	ts.t.Helper()
	return ts.do(req{method: "POST", path: path, body: body, bearer: bearer})
}

func (ts *testServer) get(path, bearer string) response {
	ts.t.Helper()
	return ts.do(req{method: "GET", path: path, bearer: bearer})
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

type tokenPair struct {
	AccessToken      string `json:"access_token"`
	TokenType        string `json:"token_type"`
	ExpiresIn        int64  `json:"expires_in"`
	RefreshToken     string `json:"refresh_token"`
	RefreshExpiresIn int64  `json:"refresh_token_expires_in"`
	SessionID        string `json:"session_id"`
}

func (ts *testServer) tokens(r response) tokenPair {
	ts.t.Helper()
	if r.status != http.StatusOK {
		ts.t.Fatalf("token response status %d: %s", r.status, r.body)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		ts.t.Fatalf("token response Cache-Control = %q, want no-store", cc)
	}
	var p tokenPair
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		ts.t.Fatalf("token response: %v: %s", err, r.body)
	}
	if p.TokenType != "Bearer" || p.AccessToken == "" || p.ExpiresIn <= 0 || p.SessionID == "" {
		ts.t.Fatalf("incomplete token response %s", r.body)
	}
	ts.remember(p.AccessToken, p.RefreshToken)
	return p
}

func (ts *testServer) signup(email, password string) {
	ts.t.Helper()
	ts.remember(password)
	r := ts.post("/users", mustJSON(map[string]string{"email": email, "password": password}), "")
	if r.status != http.StatusCreated {
		ts.t.Fatalf("signup: %d %s", r.status, r.body)
	}
}

func (ts *testServer) login(email, password string) tokenPair {
	ts.t.Helper()
	return ts.tokens(ts.post("/token", mustJSON(map[string]string{"username": email, "password": password}), ""))
}

func (ts *testServer) newUser() (string, tokenPair) {
	ts.t.Helper()
	email := storetest.Email()
	ts.signup(email, "user password 1")
	return email, ts.login(email, "user password 1")
}

func (ts *testServer) adminToken() string {
	ts.t.Helper()
	return ts.login(adminEmail, adminPassword).AccessToken
}
