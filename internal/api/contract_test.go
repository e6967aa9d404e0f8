package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rotorauth/rotor/internal/api"
	"github.com/rotorauth/rotor/internal/store/memory"
	"github.com/rotorauth/rotor/internal/store/storetest"
	"github.com/rotorauth/rotor/internal/tokens"
)

// ctSpecPath is openapi.yaml at the repository root, relative to this package.
const ctSpecPath = "../../openapi.yaml"

// ctUntestedStatuses are documented responses the contract test cannot
// provoke, with the reason. Every other documented status must be hit.
var ctUntestedStatuses = map[string]map[int]string{
	"POST /introspect":           {500: "no store call: reachable only through a panic"},
	"GET /me":                    {500: "no store call: reachable only through a panic"},
	"GET /.well-known/jwks.json": {500: "no store call: reachable only through a panic"},
	"GET /.well-known/oauth-authorization-server": {500: "no store call: reachable only through a panic"},
	"GET /healthz": {500: "no store call: reachable only through a panic"},
	"GET /readyz":  {500: "a failed Ping is a 503: reachable only through a panic"},
	"GET /metrics": {500: "no store call: reachable only through a panic"},
}

// TestContractMatchesSource checks openapi.yaml against the source: the
// route table of routes.go and the error codes of errors.go.
func TestContractMatchesSource(t *testing.T) {
	doc := ctLoadSpec(t)

	routes := ctRouteTable(t)
	ops := ctSpecOperations(doc)
	for _, r := range routes {
		if !ops[r] {
			t.Errorf("routes.go serves %s but openapi.yaml does not describe it", r)
		}
	}
	for op := range ops {
		if !slices.Contains(routes, op) {
			t.Errorf("openapi.yaml describes %s but routes.go does not serve it", op)
		}
	}

	codes := ctErrorCodes(t)
	var enum []string
	for _, v := range doc.Components.Schemas["ErrorCode"].Value.Enum {
		enum = append(enum, v.(string))
	}
	sort.Strings(codes)
	sort.Strings(enum)
	if !slices.Equal(codes, enum) {
		t.Errorf("ErrorCode enum in openapi.yaml is %v; errors.go defines %v", enum, codes)
	}
}

// TestContract serves the real handler and validates every request and
// response of a tour of the API against openapi.yaml. The steps run in
// order: later ones use the users and sessions earlier ones made.
func TestContract(t *testing.T) {
	c := newContractTour(t)
	t.Run("discovery and probes", c.stepDiscoveryAndProbes)
	t.Run("sign-up", c.stepSignUp)
	if c.aliceID == "" {
		t.Fatal("sign-up failed; the rest depends on it")
	}
	t.Run("login", c.stepLogin)
	t.Run("refresh", c.stepRefresh)
	t.Run("account", c.stepAccount)
	t.Run("introspection", c.stepIntrospection)
	t.Run("password change", c.stepPasswordChange)
	t.Run("revoke and logout", c.stepRevokeAndLogout)
	t.Run("admin", c.stepAdmin)
	t.Run("clients", c.stepClients)
	t.Run("revocation feed", c.stepRevocationFeed)
	t.Run("store failures", c.stepStoreFailures)
	t.Run("rate limits and sign-up off", c.stepRateLimitsAndSignUpOff)
	t.Run("browser mode", c.stepBrowserMode)
	t.Run("unknown paths and methods", c.stepUnknownPathsAndMethods)
	c.e.checkCoverage(t)
}

// contractTour is the shared state of TestContract's tour: one server on a
// faulty memory store, with an admin, an introspector and the users the
// steps create.
type contractTour struct {
	ctx     context.Context
	e       *contractEnv
	store   *ctFaultyStore
	keys    *tokens.KeySet
	svc     *tokens.Service
	base    string
	admin   ctTokens
	intro   ctTokens
	aliceID string
	aliceA  ctTokens // alice's main session
	bob     ctTokens
	carolID string
	logger  *slog.Logger
}

// Users of the tour.
const (
	ctPW         = "correct horse battery"
	ctAdminEmail = "admin@example.test"
	ctAlice      = "alice@example.test"
)

// newContractTour starts the tour's server; it stops with the test.
func newContractTour(t *testing.T) *contractTour {
	c := &contractTour{}
	c.ctx = context.Background()
	c.e = newContractEnv(t, ctLoadSpec(t))

	c.store = &ctFaultyStore{Store: memory.New()}
	var err error
	c.keys, err = tokens.GenerateKeySet(tokens.AlgEdDSA)
	if err != nil {
		t.Fatal(err)
	}
	cfg := tokens.Config{
		Issuer: "https://rotor.test", Audience: "rotor-test",
		AccessTTL: 15 * time.Minute, RefreshTTL: 336 * time.Hour, SessionMaxLifetime: 720 * time.Hour,
		ReuseGrace: 10 * time.Second, Keys: c.keys, TokenSecret: storetest.TestSecret,
	}
	c.svc, err = tokens.NewService(c.store, storetest.FastPasswords, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.svc.EnsureUser(c.ctx, ctAdminEmail, ctPW, []string{"admin"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.svc.Signup(c.ctx, "introspector@example.test", ctPW, []string{"introspect"}); err != nil {
		t.Fatal(err)
	}
	if err := c.svc.SyncRevocations(c.ctx); err != nil {
		t.Fatal(err)
	}
	c.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := httptest.NewServer(api.NewHandler(c.svc, c.logger, api.Options{SignupEnabled: true, LoginRateLimit: 0}))
	t.Cleanup(srv.Close)
	c.base = srv.URL

	c.admin = c.e.login(t, c.base, ctAdminEmail, ctPW)
	c.intro = c.e.login(t, c.base, "introspector@example.test", ctPW)

	return c
}

// stepDiscoveryAndProbes is the tour's "discovery and probes" step.
func (c *contractTour) stepDiscoveryAndProbes(t *testing.T) {
	c.e.do(t, c.base, ctCall{method: "GET", path: "/healthz", status: 200})
	c.e.do(t, c.base, ctCall{method: "GET", path: "/readyz", status: 200})
	m := c.e.do(t, c.base, ctCall{method: "GET", path: "/metrics", status: 200})
	if !bytes.Contains(m.body, []byte("rotor_http_requests_total")) {
		t.Errorf("/metrics lacks rotor_http_requests_total")
	}
	var jwks struct {
		Keys []map[string]string `json:"keys"`
	}
	c.e.do(t, c.base, ctCall{method: "GET", path: "/.well-known/jwks.json", status: 200}).decode(t, &jwks)
	if len(jwks.Keys) != 1 || jwks.Keys[0]["kid"] != c.keys.SigningKID() {
		t.Errorf("JWKS = %v, want the signing key %s", jwks.Keys, c.keys.SigningKID())
	}
	var meta map[string]any
	c.e.do(t, c.base, ctCall{method: "GET", path: "/.well-known/oauth-authorization-server", status: 200}).decode(t, &meta)
	if meta["token_endpoint"] != "https://rotor.test/token" {
		t.Errorf("token_endpoint = %v", meta["token_endpoint"])
	}
}

// stepSignUp is the tour's "sign-up" step.
func (c *contractTour) stepSignUp(t *testing.T) {
	var u map[string]any
	c.e.do(t, c.base, ctCall{method: "POST", path: "/users", body: ctObj{"email": ctAlice, "password": ctPW}, status: 201}).decode(t, &u)
	c.aliceID, _ = u["id"].(string)
	c.e.do(t, c.base, ctCall{method: "POST", path: "/users", body: ctObj{"email": "ALICE@example.test", "password": ctPW},
		status: 409, code: "conflict"})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/users", body: ctObj{"email": "not-an-email", "password": ctPW},
		status: 400, code: "invalid_request", check: ctSpecInvalid})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/users", body: ctObj{"email": "bob@example.test", "password": "short"},
		status: 400, code: "invalid_request", check: ctSpecInvalid})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/users", body: ctObj{"email": "eve@example.test", "password": ctPW, "roles": []string{"admin"}},
		status: 400, code: "invalid_request", check: ctSpecInvalid})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/users", raw: `{"email": "eve@example.test",`, ctype: "application/json",
		status: 400, code: "invalid_request", check: ctSpecInvalid})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/users", raw: "email=eve@example.test", ctype: "text/plain",
		status: 400, code: "invalid_request", check: ctSpecInvalid})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/users", raw: ctBigJSON(), ctype: "application/json",
		status: 413, code: "request_too_large", check: ctSpecUnchecked})
}

// stepLogin is the tour's "login" step.
func (c *contractTour) stepLogin(t *testing.T) {
	c.aliceA = c.e.login(t, c.base, ctAlice, ctPW)
	formLogin := c.e.tokens(t, c.base, ctCall{method: "POST", path: "/token",
		form: url.Values{"grant_type": {"password"}, "username": {ctAlice}, "password": {ctPW}, "scope": {"openid"}}, status: 200})
	c.e.tokens(t, c.base, ctCall{method: "POST", path: "/token",
		form: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {formLogin.RefreshToken}}, status: 200})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/token", body: ctObj{"username": ctAlice, "password": "wrong password"},
		status: 400, code: "invalid_grant"})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/token", body: ctObj{"username": "nobody@example.test", "password": ctPW},
		status: 400, code: "invalid_grant"})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/token", body: ctObj{"refresh_token": "rt_unknown"},
		status: 400, code: "invalid_grant"})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/token", body: ctObj{"username": ctAlice},
		status: 400, code: "invalid_request", check: ctSpecInvalid})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/token", form: url.Values{"username": {ctAlice}, "password": {ctPW}},
		status: 400, code: "invalid_request", check: ctSpecInvalid})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/token", form: url.Values{"grant_type": {"authorization_code"}},
		status: 400, code: "unsupported_grant_type", check: ctSpecInvalid})
	// The default client is public: client_credentials is not its grant.
	c.e.do(t, c.base, ctCall{method: "POST", path: "/token", form: url.Values{"grant_type": {"client_credentials"}},
		status: 400, code: "unauthorized_client"})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/token", raw: "grant_type=password&grant_type=password", ctype: "application/x-www-form-urlencoded",
		status: 400, code: "invalid_request", check: ctSpecUnchecked})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/token", raw: ctBigJSON(), ctype: "application/json",
		status: 413, code: "request_too_large", check: ctSpecUnchecked})
}

// stepRefresh is the tour's "refresh" step.
func (c *contractTour) stepRefresh(t *testing.T) {
	s := c.e.login(t, c.base, ctAlice, ctPW)
	r1 := c.e.tokens(t, c.base, ctCall{method: "POST", path: "/refresh", body: ctObj{"refresh_token": s.RefreshToken}, status: 200})
	r2 := c.e.tokens(t, c.base, ctCall{method: "POST", path: "/refresh",
		form: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {r1.RefreshToken}}, status: 200})
	again := c.e.tokens(t, c.base, ctCall{method: "POST", path: "/refresh", body: ctObj{"refresh_token": r1.RefreshToken}, status: 200})
	if again.RefreshToken != r2.RefreshToken {
		t.Errorf("grace-window replay returned a different successor")
	}
	c.e.do(t, c.base, ctCall{method: "POST", path: "/refresh", status: 400, code: "invalid_request"})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/refresh", body: ctObj{"refresh_token": "rt_unknown"},
		status: 400, code: "invalid_grant"})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/refresh", body: ctObj{"grant_type": "password", "refresh_token": r2.RefreshToken},
		status: 400, code: "unsupported_grant_type", check: ctSpecInvalid})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/refresh", body: ctObj{"username": ctAlice, "password": ctPW},
		status: 400, code: "invalid_request", check: ctSpecInvalid})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/refresh", raw: ctBigJSON(), ctype: "application/json",
		status: 413, code: "request_too_large", check: ctSpecUnchecked})

	// Reuse of an older ancestor revokes the session and its access tokens.
	c.e.do(t, c.base, ctCall{method: "POST", path: "/refresh", body: ctObj{"refresh_token": s.RefreshToken},
		status: 400, code: "invalid_grant"})
	c.e.do(t, c.base, ctCall{method: "GET", path: "/me", token: r2.AccessToken, status: 401, code: "invalid_token"})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/refresh", body: ctObj{"refresh_token": r2.RefreshToken},
		status: 400, code: "invalid_grant"})
}

// stepAccount is the tour's "account" step.
func (c *contractTour) stepAccount(t *testing.T) {
	var me map[string]any
	c.e.do(t, c.base, ctCall{method: "GET", path: "/me", token: c.aliceA.AccessToken, status: 200}).decode(t, &me)
	if me["id"] != c.aliceID || me["session_id"] != c.aliceA.SessionID {
		t.Errorf("/me = %v", me)
	}
	c.e.do(t, c.base, ctCall{method: "GET", path: "/me", status: 401, code: "invalid_token"})
	c.e.do(t, c.base, ctCall{method: "GET", path: "/me", auth: "Basic YWxpY2U6cHc=", status: 401, code: "invalid_token"})
	c.e.do(t, c.base, ctCall{method: "GET", path: "/me", token: "not.a.jwt", status: 401, code: "invalid_token"})

	var list []map[string]any
	c.e.do(t, c.base, ctCall{method: "GET", path: "/sessions", token: c.aliceA.AccessToken, status: 200}).decode(t, &list)
	current := 0
	for _, s := range list {
		if s["current"] == true {
			current++
			if s["id"] != c.aliceA.SessionID {
				t.Errorf("current session is %v, want %s", s["id"], c.aliceA.SessionID)
			}
		}
	}
	if current != 1 || len(list) < 2 {
		t.Errorf("GET /sessions = %d sessions, %d current; want >= 2 and 1", len(list), current)
	}
	c.e.do(t, c.base, ctCall{method: "GET", path: "/sessions", status: 401, code: "invalid_token"})
	// Pages of one session each: the Link header walks all of them,
	// each once.
	seen := map[any]bool{}
	for path := "/sessions?limit=1"; path != ""; {
		res := c.e.do(t, c.base, ctCall{method: "GET", path: path, token: c.aliceA.AccessToken, status: 200})
		var page []map[string]any
		res.decode(t, &page)
		if len(page) != 1 || seen[page[0]["id"]] {
			t.Fatalf("GET %s: %d sessions (or a repeat)", path, len(page))
		}
		seen[page[0]["id"]] = true
		path = ""
		if l := res.header.Get("Link"); l != "" {
			path = strings.TrimSuffix(strings.TrimPrefix(l, "<"), `>; rel="next"`)
		}
	}
	if len(seen) != len(list) {
		t.Errorf("paging by 1 saw %d sessions, one page of all has %d", len(seen), len(list))
	}
	c.e.do(t, c.base, ctCall{method: "GET", path: "/sessions?limit=201", token: c.aliceA.AccessToken, status: 400, code: "invalid_request", check: ctSpecInvalid})
	c.e.do(t, c.base, ctCall{method: "GET", path: "/sessions?cursor=bogus", token: c.aliceA.AccessToken, status: 400, code: "invalid_request", check: ctSpecInvalid})

	other := c.e.login(t, c.base, ctAlice, ctPW)
	c.e.do(t, c.base, ctCall{method: "DELETE", path: "/sessions/" + other.SessionID, token: c.aliceA.AccessToken, status: 204})
	c.e.do(t, c.base, ctCall{method: "GET", path: "/me", token: other.AccessToken, status: 401, code: "invalid_token"})

	c.e.do(t, c.base, ctCall{method: "POST", path: "/users", body: ctObj{"email": "bob@example.test", "password": ctPW}, status: 201})
	c.bob = c.e.login(t, c.base, "bob@example.test", ctPW)
	c.e.do(t, c.base, ctCall{method: "DELETE", path: "/sessions/" + c.bob.SessionID, token: c.aliceA.AccessToken,
		status: 404, code: "not_found"})
	c.e.do(t, c.base, ctCall{method: "DELETE", path: "/sessions/" + uuid.NewString(), token: c.aliceA.AccessToken,
		status: 404, code: "not_found"})
	c.e.do(t, c.base, ctCall{method: "DELETE", path: "/sessions/not-a-uuid", token: c.aliceA.AccessToken,
		status: 400, code: "invalid_request", check: ctSpecInvalid})
	c.e.do(t, c.base, ctCall{method: "DELETE", path: "/sessions/" + c.bob.SessionID, status: 401, code: "invalid_token"})
}

// stepIntrospection is the tour's "introspection" step.
func (c *contractTour) stepIntrospection(t *testing.T) {
	var active map[string]any
	c.e.do(t, c.base, ctCall{method: "POST", path: "/introspect", token: c.admin.AccessToken,
		body: ctObj{"token": c.aliceA.AccessToken}, status: 200}).decode(t, &active)
	if active["active"] != true || active["sid"] != c.aliceA.SessionID {
		t.Errorf("introspection = %v", active)
	}
	var inactive map[string]any
	c.e.do(t, c.base, ctCall{method: "POST", path: "/introspect", token: c.intro.AccessToken,
		form: url.Values{"token": {"garbage"}, "token_type_hint": {"access_token"}}, status: 200}).decode(t, &inactive)
	if len(inactive) != 1 || inactive["active"] != false {
		t.Errorf("introspection of garbage = %v, want only active:false", inactive)
	}
	c.e.do(t, c.base, ctCall{method: "POST", path: "/introspect", token: c.intro.AccessToken,
		body: ctObj{"token": c.aliceA.RefreshToken}, status: 200})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/introspect", token: c.aliceA.AccessToken,
		body: ctObj{"token": c.aliceA.AccessToken}, status: 403, code: "insufficient_scope"})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/introspect", body: ctObj{"token": c.aliceA.AccessToken},
		status: 401, code: "invalid_token"})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/introspect", token: c.admin.AccessToken, body: ctObj{},
		status: 400, code: "invalid_request", check: ctSpecInvalid})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/introspect", token: c.admin.AccessToken, raw: ctBigJSON(), ctype: "application/json",
		status: 413, code: "request_too_large", check: ctSpecUnchecked})
}

// stepPasswordChange is the tour's "password change" step.
func (c *contractTour) stepPasswordChange(t *testing.T) {
	const dora = "dora@example.test"
	c.e.do(t, c.base, ctCall{method: "POST", path: "/users", body: ctObj{"email": dora, "password": ctPW}, status: 201})
	mine := c.e.login(t, c.base, dora, ctPW)
	other := c.e.login(t, c.base, dora, ctPW)
	c.e.do(t, c.base, ctCall{method: "POST", path: "/password", token: mine.AccessToken,
		body:   ctObj{"current_password": "wrong password", "new_password": "another horse battery"},
		status: 400, code: "invalid_grant"})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/password", token: mine.AccessToken,
		body: ctObj{"current_password": ctPW}, status: 400, code: "invalid_request", check: ctSpecInvalid})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/password", body: ctObj{"current_password": ctPW, "new_password": "x"},
		status: 401, code: "invalid_token", check: ctSpecInvalid})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/password", token: mine.AccessToken, raw: ctBigJSON(), ctype: "application/json",
		status: 413, code: "request_too_large", check: ctSpecUnchecked})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/password", token: mine.AccessToken,
		body: ctObj{"current_password": ctPW, "new_password": "another horse battery"}, status: 204})
	c.e.do(t, c.base, ctCall{method: "GET", path: "/me", token: other.AccessToken, status: 401, code: "invalid_token"})
	c.e.do(t, c.base, ctCall{method: "GET", path: "/me", token: mine.AccessToken, status: 200})
}

// stepRevokeAndLogout is the tour's "revoke and logout" step.
func (c *contractTour) stepRevokeAndLogout(t *testing.T) {
	const frank = "frank@example.test"
	c.e.do(t, c.base, ctCall{method: "POST", path: "/users", body: ctObj{"email": frank, "password": ctPW}, status: 201})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/revoke", body: ctObj{"token": "rt_unknown"}, status: 200})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/revoke", body: ctObj{"token": "not-a-token"}, status: 200})

	s := c.e.login(t, c.base, frank, ctPW)
	c.e.do(t, c.base, ctCall{method: "POST", path: "/revoke",
		form: url.Values{"token": {s.RefreshToken}, "token_type_hint": {"refresh_token"}}, status: 200})
	c.e.do(t, c.base, ctCall{method: "GET", path: "/me", token: s.AccessToken, status: 401, code: "invalid_token"})

	s = c.e.login(t, c.base, frank, ctPW)
	c.e.do(t, c.base, ctCall{method: "POST", path: "/revoke", body: ctObj{"token": s.AccessToken, "token_type_hint": "access_token"}, status: 200})
	c.e.do(t, c.base, ctCall{method: "GET", path: "/me", token: s.AccessToken, status: 401, code: "invalid_token"})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/revoke", body: ctObj{}, status: 400, code: "invalid_request", check: ctSpecInvalid})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/revoke", raw: ctBigJSON(), ctype: "application/json",
		status: 413, code: "request_too_large", check: ctSpecUnchecked})

	s = c.e.login(t, c.base, frank, ctPW)
	c.e.do(t, c.base, ctCall{method: "POST", path: "/logout", token: s.AccessToken, status: 204})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/logout", token: s.AccessToken, status: 401, code: "invalid_token"})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/refresh", body: ctObj{"refresh_token": s.RefreshToken},
		status: 400, code: "invalid_grant"})

	s = c.e.login(t, c.base, frank, ctPW)
	c.e.do(t, c.base, ctCall{method: "POST", path: "/logout", body: ctObj{"refresh_token": s.RefreshToken}, status: 204})

	s1 := c.e.login(t, c.base, frank, ctPW)
	s2 := c.e.login(t, c.base, frank, ctPW)
	c.e.do(t, c.base, ctCall{method: "POST", path: "/logout", token: s1.AccessToken, body: ctObj{"scope": "global"}, status: 204})
	c.e.do(t, c.base, ctCall{method: "GET", path: "/me", token: s2.AccessToken, status: 401, code: "invalid_token"})

	c.e.do(t, c.base, ctCall{method: "POST", path: "/logout", status: 401, code: "invalid_token"})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/logout", body: ctObj{"refresh_token": "rt_unknown"},
		status: 400, code: "invalid_grant"})
	s = c.e.login(t, c.base, frank, ctPW)
	c.e.do(t, c.base, ctCall{method: "POST", path: "/logout", token: s.AccessToken, body: ctObj{"refresh_token": c.bob.RefreshToken},
		status: 400, code: "invalid_grant"})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/logout", token: s.AccessToken, body: ctObj{"scope": "everywhere"},
		status: 400, code: "invalid_request", check: ctSpecInvalid})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/logout", token: s.AccessToken, raw: "scope=global", ctype: "application/x-www-form-urlencoded",
		status: 400, code: "invalid_request", check: ctSpecInvalid})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/logout", token: s.AccessToken, raw: ctBigJSON(), ctype: "application/json",
		status: 413, code: "request_too_large", check: ctSpecUnchecked})
}

// stepAdmin is the tour's "admin" step.
func (c *contractTour) stepAdmin(t *testing.T) {
	const carol = "carol@example.test"
	at := c.admin.AccessToken
	var u map[string]any
	c.e.do(t, c.base, ctCall{method: "POST", path: "/admin/users", token: at,
		body: ctObj{"email": carol, "password": ctPW, "roles": []string{"introspect"}}, status: 201}).decode(t, &u)
	c.carolID, _ = u["id"].(string)
	if u["disabled"] != false {
		t.Errorf("created user = %v", u)
	}
	c.e.do(t, c.base, ctCall{method: "POST", path: "/admin/users", token: at, body: ctObj{"email": carol, "password": ctPW},
		status: 409, code: "conflict"})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/admin/users", token: at,
		body:   ctObj{"email": "gus@example.test", "password": ctPW, "roles": []string{"Not A Role"}},
		status: 400, code: "invalid_request", check: ctSpecInvalid})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/admin/users", token: c.aliceA.AccessToken, body: ctObj{"email": "gus@example.test", "password": ctPW},
		status: 403, code: "insufficient_scope"})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/admin/users", body: ctObj{"email": "gus@example.test", "password": ctPW},
		status: 401, code: "invalid_token"})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/admin/users", token: at, raw: ctBigJSON(), ctype: "application/json",
		status: 413, code: "request_too_large", check: ctSpecUnchecked})

	c.e.do(t, c.base, ctCall{method: "GET", path: "/admin/users?email=" + url.QueryEscape("Carol@Example.test"), token: at, status: 200})
	c.e.do(t, c.base, ctCall{method: "GET", path: "/admin/users?email=nobody%40example.test", token: at, status: 404, code: "not_found"})
	c.e.do(t, c.base, ctCall{method: "GET", path: "/admin/users", token: at, status: 400, code: "invalid_request", check: ctSpecInvalid})
	c.e.do(t, c.base, ctCall{method: "GET", path: "/admin/users?email=" + carol, token: c.aliceA.AccessToken, status: 403, code: "insufficient_scope"})
	c.e.do(t, c.base, ctCall{method: "GET", path: "/admin/users?email=" + carol, status: 401, code: "invalid_token"})

	carolS := c.e.login(t, c.base, carol, ctPW)
	userPath := "/admin/users/" + c.carolID
	c.e.do(t, c.base, ctCall{method: "PATCH", path: userPath, token: at, body: ctObj{"roles": []string{"introspect", "auditor"}}, status: 200})
	c.e.do(t, c.base, ctCall{method: "PATCH", path: userPath, token: at, body: ctObj{}, status: 400, code: "invalid_request", check: ctSpecInvalid})
	c.e.do(t, c.base, ctCall{method: "PATCH", path: userPath, token: at, body: ctObj{"disabled": "yes"},
		status: 400, code: "invalid_request", check: ctSpecInvalid})
	c.e.do(t, c.base, ctCall{method: "PATCH", path: "/admin/users/" + uuid.NewString(), token: at, body: ctObj{"disabled": true},
		status: 404, code: "not_found"})
	c.e.do(t, c.base, ctCall{method: "PATCH", path: "/admin/users/42", token: at, body: ctObj{"disabled": true},
		status: 400, code: "invalid_request", check: ctSpecInvalid})
	c.e.do(t, c.base, ctCall{method: "PATCH", path: userPath, token: c.aliceA.AccessToken, body: ctObj{"disabled": true},
		status: 403, code: "insufficient_scope"})
	c.e.do(t, c.base, ctCall{method: "PATCH", path: userPath, body: ctObj{"disabled": true}, status: 401, code: "invalid_token"})
	c.e.do(t, c.base, ctCall{method: "PATCH", path: userPath, token: at, raw: ctBigJSON(), ctype: "application/json",
		status: 413, code: "request_too_large", check: ctSpecUnchecked})

	var list []map[string]any
	c.e.do(t, c.base, ctCall{method: "GET", path: userPath + "/sessions", token: at, status: 200}).decode(t, &list)
	if len(list) != 1 || list[0]["id"] != carolS.SessionID || list[0]["current"] != false {
		t.Errorf("carol's sessions = %v", list)
	}
	c.e.do(t, c.base, ctCall{method: "GET", path: "/admin/users/" + uuid.NewString() + "/sessions", token: at, status: 404, code: "not_found"})
	c.e.do(t, c.base, ctCall{method: "GET", path: "/admin/users/x/sessions", token: at, status: 400, code: "invalid_request", check: ctSpecInvalid})
	c.e.do(t, c.base, ctCall{method: "GET", path: userPath + "/sessions", token: c.aliceA.AccessToken, status: 403, code: "insufficient_scope"})
	c.e.do(t, c.base, ctCall{method: "GET", path: userPath + "/sessions", status: 401, code: "invalid_token"})

	var n map[string]int
	c.e.do(t, c.base, ctCall{method: "DELETE", path: userPath + "/sessions", token: at, status: 200}).decode(t, &n)
	if n["revoked"] != 1 {
		t.Errorf("revoked = %v, want 1", n)
	}
	c.e.do(t, c.base, ctCall{method: "GET", path: "/me", token: carolS.AccessToken, status: 401, code: "invalid_token"})
	c.e.do(t, c.base, ctCall{method: "DELETE", path: "/admin/users/" + uuid.NewString() + "/sessions", token: at, status: 404, code: "not_found"})
	c.e.do(t, c.base, ctCall{method: "DELETE", path: "/admin/users/x/sessions", token: at, status: 400, code: "invalid_request", check: ctSpecInvalid})
	c.e.do(t, c.base, ctCall{method: "DELETE", path: userPath + "/sessions", token: c.aliceA.AccessToken, status: 403, code: "insufficient_scope"})
	c.e.do(t, c.base, ctCall{method: "DELETE", path: userPath + "/sessions", status: 401, code: "invalid_token"})

	carolS = c.e.login(t, c.base, carol, ctPW)
	c.e.do(t, c.base, ctCall{method: "DELETE", path: "/admin/sessions/" + carolS.SessionID, token: at, status: 204})
	c.e.do(t, c.base, ctCall{method: "GET", path: "/me", token: carolS.AccessToken, status: 401, code: "invalid_token"})
	c.e.do(t, c.base, ctCall{method: "DELETE", path: "/admin/sessions/" + uuid.NewString(), token: at, status: 404, code: "not_found"})
	c.e.do(t, c.base, ctCall{method: "DELETE", path: "/admin/sessions/x", token: at, status: 400, code: "invalid_request", check: ctSpecInvalid})
	c.e.do(t, c.base, ctCall{method: "DELETE", path: "/admin/sessions/" + carolS.SessionID, token: c.aliceA.AccessToken, status: 403, code: "insufficient_scope"})
	c.e.do(t, c.base, ctCall{method: "DELETE", path: "/admin/sessions/" + carolS.SessionID, status: 401, code: "invalid_token"})

	carolS = c.e.login(t, c.base, carol, ctPW)
	var disabled map[string]any
	c.e.do(t, c.base, ctCall{method: "PATCH", path: userPath, token: at, body: ctObj{"disabled": true}, status: 200}).decode(t, &disabled)
	if disabled["disabled"] != true {
		t.Errorf("PATCH disabled = %v", disabled)
	}
	c.e.do(t, c.base, ctCall{method: "GET", path: "/me", token: carolS.AccessToken, status: 401, code: "invalid_token"})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/token", body: ctObj{"username": carol, "password": ctPW}, status: 400, code: "invalid_grant"})

	// A rotation from another user agent than the login's is audited as
	// session_moved; ordinary rotations are not audited.
	const dave = "dave@example.test"
	c.e.do(t, c.base, ctCall{method: "POST", path: "/users", body: ctObj{"email": dave, "password": ctPW}, status: 201})
	daveS := c.e.login(t, c.base, dave, ctPW)
	c.e.do(t, c.base, ctCall{method: "POST", path: "/refresh", body: ctObj{"refresh_token": daveS.RefreshToken},
		header: map[string]string{"User-Agent": "dave's other device"}, status: 200})

	var events []map[string]any
	c.e.do(t, c.base, ctCall{method: "GET", path: "/admin/audit", token: at, status: 200}).decode(t, &events)
	kinds := map[string]bool{}
	for _, ev := range events {
		kinds[ev["kind"].(string)] = true
	}
	for _, k := range []string{"login", "login_failed", "session_moved", "reuse_detected", "logout", "revoked", "password_changed", "user_disabled"} {
		if !kinds[k] {
			t.Errorf("audit has no %q event; kinds seen: %v", k, kinds)
		}
	}
	if kinds["refresh"] {
		t.Errorf("an ordinary refresh was audited (AUDIT_EVERY_REFRESH is off)")
	}
	c.e.do(t, c.base, ctCall{method: "GET", path: "/admin/audit?user_id=" + c.aliceID + "&limit=5", token: at, status: 200}).decode(t, &events)
	if len(events) == 0 || len(events) > 5 {
		t.Errorf("audit of alice, limit 5: %d events", len(events))
	}
	page := c.e.do(t, c.base, ctCall{method: "GET", path: "/admin/audit?limit=2", token: at, status: 200})
	var first, second []map[string]any
	page.decode(t, &first)
	link := page.header.Get("Link")
	if len(first) != 2 || !strings.Contains(link, "before=") {
		t.Fatalf("audit page of 2: %d events, Link %q", len(first), link)
	}
	c.e.do(t, c.base, ctCall{method: "GET", path: strings.TrimSuffix(strings.TrimPrefix(link, "<"), `>; rel="next"`), token: at, status: 200}).decode(t, &second)
	if len(second) == 0 || second[0]["id"].(float64) >= first[1]["id"].(float64) {
		t.Errorf("the next audit page does not continue below the first")
	}
	c.e.do(t, c.base, ctCall{method: "GET", path: "/admin/audit?before=0", token: at, status: 400, code: "invalid_request", check: ctSpecInvalid})
	c.e.do(t, c.base, ctCall{method: "GET", path: "/admin/audit?limit=0", token: at, status: 400, code: "invalid_request", check: ctSpecInvalid})
	c.e.do(t, c.base, ctCall{method: "GET", path: "/admin/audit?user_id=alice", token: at, status: 400, code: "invalid_request", check: ctSpecInvalid})
	c.e.do(t, c.base, ctCall{method: "GET", path: "/admin/audit", token: c.aliceA.AccessToken, status: 403, code: "insufficient_scope"})
	c.e.do(t, c.base, ctCall{method: "GET", path: "/admin/audit", status: 401, code: "invalid_token"})
}

// stepClients is the tour's "clients" step.
func (c *contractTour) stepClients(t *testing.T) {
	at := c.admin.AccessToken
	basic := func(id, secret string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
	}
	var list []map[string]any
	c.e.do(t, c.base, ctCall{method: "GET", path: "/admin/clients", token: at, status: 200}).decode(t, &list)
	if len(list) == 0 || list[len(list)-1]["default"] != true {
		t.Errorf("client list without the default client: %v", list)
	}
	var rs map[string]any
	c.e.do(t, c.base, ctCall{method: "POST", path: "/admin/clients", token: at, status: 201,
		body: ctObj{"client_id": "ct-rs", "type": "confidential", "roles": []string{"introspect"}}}).decode(t, &rs)
	secret, _ := rs["client_secret"].(string)
	if secret == "" {
		t.Fatalf("a confidential client's creation did not show its secret: %v", rs)
	}
	c.e.do(t, c.base, ctCall{method: "POST", path: "/admin/clients", token: at, status: 409, code: "conflict",
		body: ctObj{"client_id": "ct-rs", "type": "public"}})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/admin/clients", token: at, status: 400, code: "invalid_request",
		body: ctObj{"client_id": "ct-bad", "type": "public", "grant_types": []string{"client_credentials"}}})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/admin/clients", token: at, status: 400, code: "invalid_request", check: ctSpecInvalid,
		body: ctObj{"client_id": "ct-bad"}})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/admin/clients", token: c.intro.AccessToken, status: 403, code: "insufficient_scope",
		body: ctObj{"client_id": "ct-x", "type": "public"}})
	c.e.do(t, c.base, ctCall{method: "GET", path: "/admin/clients", status: 401, code: "invalid_token"})
	var got map[string]any
	c.e.do(t, c.base, ctCall{method: "GET", path: "/admin/clients/ct-rs", token: at, status: 200}).decode(t, &got)
	if _, leaked := got["client_secret"]; leaked {
		t.Error("GET /admin/clients/{id} shows the secret")
	}
	c.e.do(t, c.base, ctCall{method: "GET", path: "/admin/clients/nobody", token: at, status: 404, code: "not_found"})
	c.e.do(t, c.base, ctCall{method: "GET", path: "/admin/clients/ct-rs", token: c.intro.AccessToken, status: 403, code: "insufficient_scope"})
	c.e.do(t, c.base, ctCall{method: "GET", path: "/admin/clients/ct-rs", status: 401, code: "invalid_token"})

	// client_credentials, Basic and post.
	var cc map[string]any
	c.e.do(t, c.base, ctCall{method: "POST", path: "/token", auth: basic("ct-rs", secret), form: url.Values{"grant_type": {"client_credentials"}}, status: 200}).decode(t, &cc)
	ccTok, _ := cc["access_token"].(string)
	if _, ok := cc["refresh_token"]; ok || ccTok == "" {
		t.Fatalf("client_credentials answer: %v", cc)
	}
	c.e.do(t, c.base, ctCall{method: "POST", path: "/token", form: url.Values{"grant_type": {"client_credentials"}, "client_id": {"ct-rs"}, "client_secret": {secret}}, status: 200})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/token", auth: basic("ct-rs", "wrong"), form: url.Values{"grant_type": {"client_credentials"}}, status: 401, code: "invalid_client"})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/token", auth: basic("ct-rs", secret), form: url.Values{"grant_type": {"password"}, "username": {ctAdminEmail}, "password": {ctPW}}, status: 400, code: "unauthorized_client"})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/refresh", body: ctObj{"refresh_token": c.admin.RefreshToken, "client_id": "nobody"}, status: 401, code: "invalid_client"})
	// The client token reads the feed and introspects; client
	// authentication introspects too.
	c.e.do(t, c.base, ctCall{method: "GET", path: "/revocations", token: ccTok, status: 200})
	var in map[string]any
	c.e.do(t, c.base, ctCall{method: "POST", path: "/introspect", auth: basic("ct-rs", secret), form: url.Values{"token": {ccTok}}, status: 200}).decode(t, &in)
	if in["active"] != true || in["sub"] != "ct-rs" || in["client_id"] != "ct-rs" || in["token_type"] != "Bearer" {
		t.Errorf("introspection of a client token: %v", in)
	}
	c.e.do(t, c.base, ctCall{method: "POST", path: "/introspect", auth: basic("ct-rs", "wrong"), form: url.Values{"token": {ccTok}}, status: 401, code: "invalid_client"})
	c.e.do(t, c.base, ctCall{method: "GET", path: "/me", token: ccTok, status: 403, code: "insufficient_scope"})
	// A client revokes its own tokens only.
	c.e.do(t, c.base, ctCall{method: "POST", path: "/revoke", auth: basic("ct-rs", secret), form: url.Values{"token": {c.admin.AccessToken}}, status: 400, code: "unauthorized_client"})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/revoke", auth: basic("ct-rs", "wrong"), form: url.Values{"token": {ccTok}}, status: 401, code: "invalid_client"})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/revoke", auth: basic("ct-rs", secret), form: url.Values{"token": {ccTok}}, status: 200})
	c.e.do(t, c.base, ctCall{method: "GET", path: "/revocations", token: ccTok, status: 401, code: "invalid_token"})

	var upd map[string]any
	c.e.do(t, c.base, ctCall{method: "PATCH", path: "/admin/clients/ct-rs", token: at, status: 200, body: ctObj{"name": "Resource server"}}).decode(t, &upd)
	if upd["name"] != "Resource server" {
		t.Errorf("PATCH answered %v", upd)
	}
	c.e.do(t, c.base, ctCall{method: "PATCH", path: "/admin/clients/ct-rs", token: at, status: 400, code: "invalid_request", body: ctObj{"audience": ""}, check: ctSpecInvalid})
	c.e.do(t, c.base, ctCall{method: "PATCH", path: "/admin/clients/nobody", token: at, status: 404, code: "not_found", body: ctObj{"name": "x"}})
	c.e.do(t, c.base, ctCall{method: "PATCH", path: "/admin/clients/ct-rs", token: c.intro.AccessToken, status: 403, code: "insufficient_scope", body: ctObj{"name": "x"}})
	c.e.do(t, c.base, ctCall{method: "PATCH", path: "/admin/clients/ct-rs", status: 401, code: "invalid_token", body: ctObj{"name": "x"}})
	var rot map[string]string
	c.e.do(t, c.base, ctCall{method: "POST", path: "/admin/clients/ct-rs/secret", token: at, status: 200}).decode(t, &rot)
	if rot["client_secret"] == "" || rot["client_secret"] == secret {
		t.Errorf("rotation answered %v", rot)
	}
	c.e.do(t, c.base, ctCall{method: "POST", path: "/token", auth: basic("ct-rs", secret), form: url.Values{"grant_type": {"client_credentials"}}, status: 401, code: "invalid_client"})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/admin/clients", token: at, status: 201, body: ctObj{"client_id": "ct-spa", "type": "public",
		"allowed_origins": []string{"https://spa.example"}, "audience": "spa-api"}})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/admin/clients/ct-spa/secret", token: at, status: 400, code: "invalid_request"})
	c.e.do(t, c.base, ctCall{method: "GET", path: "/admin/clients", token: c.intro.AccessToken, status: 403, code: "insufficient_scope"})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/admin/clients", status: 401, code: "invalid_token", body: ctObj{"client_id": "ct-x", "type": "public"}})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/admin/clients", token: at, raw: ctBigJSON(), ctype: "application/json", status: 413, code: "request_too_large", check: ctSpecUnchecked})
	c.e.do(t, c.base, ctCall{method: "PATCH", path: "/admin/clients/ct-spa", token: at, raw: ctBigJSON(), ctype: "application/json", status: 413, code: "request_too_large", check: ctSpecUnchecked})
	var cc2 map[string]any
	c.e.do(t, c.base, ctCall{method: "POST", path: "/token", auth: basic("ct-rs", rot["client_secret"]), form: url.Values{"grant_type": {"client_credentials"}}, status: 200}).decode(t, &cc2)
	clientTok, _ := cc2["access_token"].(string)
	// A client's own token acts for no user.
	for _, call := range []ctCall{
		{method: "GET", path: "/sessions"},
		{method: "DELETE", path: "/sessions/" + uuid.NewString()},
		{method: "POST", path: "/password", body: ctObj{"current_password": ctPW, "new_password": ctPW}},
	} {
		call.token, call.status, call.code = clientTok, 403, "insufficient_scope"
		c.e.do(t, c.base, call)
	}
	c.e.do(t, c.base, ctCall{method: "POST", path: "/logout", token: clientTok, status: 403, code: "insufficient_scope"})
	c.e.do(t, c.base, ctCall{method: "GET", path: "/admin/clients/%FF", token: at, status: 404, code: "not_found"})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/admin/clients/nobody/secret", token: at, status: 404, code: "not_found"})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/admin/clients/ct-rs/secret", token: c.intro.AccessToken, status: 403, code: "insufficient_scope"})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/admin/clients/ct-rs/secret", status: 401, code: "invalid_token"})
	c.e.do(t, c.base, ctCall{method: "DELETE", path: "/admin/clients/default", token: at, status: 400, code: "invalid_request"})
	c.e.do(t, c.base, ctCall{method: "DELETE", path: "/admin/clients/ct-rs", token: c.intro.AccessToken, status: 403, code: "insufficient_scope"})
	c.e.do(t, c.base, ctCall{method: "DELETE", path: "/admin/clients/ct-rs", status: 401, code: "invalid_token"})
	c.e.do(t, c.base, ctCall{method: "DELETE", path: "/admin/clients/ct-rs", token: at, status: 204})
	c.e.do(t, c.base, ctCall{method: "DELETE", path: "/admin/clients/ct-rs", token: at, status: 404, code: "not_found"})
	c.e.do(t, c.base, ctCall{method: "POST", path: "/token", auth: basic("ct-rs", rot["client_secret"]), form: url.Values{"grant_type": {"client_credentials"}}, status: 401, code: "invalid_client"})
}

// stepRevocationFeed is the tour's "revocation feed" step.
func (c *contractTour) stepRevocationFeed(t *testing.T) {
	var feed struct {
		Cursor   string              `json:"cursor"`
		Sessions []map[string]string `json:"sessions"`
		Tokens   []map[string]string `json:"tokens"`
	}
	c.e.do(t, c.base, ctCall{method: "GET", path: "/revocations", token: c.intro.AccessToken, status: 200}).decode(t, &feed)
	if len(feed.Sessions) == 0 || len(feed.Tokens) == 0 {
		t.Errorf("revocation feed has %d sessions and %d tokens; want some of each", len(feed.Sessions), len(feed.Tokens))
	}
	var next struct {
		Cursor   string `json:"cursor"`
		Sessions []any  `json:"sessions"`
		Tokens   []any  `json:"tokens"`
	}
	c.e.do(t, c.base, ctCall{method: "GET", path: "/revocations?since=" + feed.Cursor, token: c.admin.AccessToken, status: 200}).decode(t, &next)
	// The feed may repeat entries below the cursor (they are idempotent),
	// but its cursor never goes back.
	if c0, c1 := ctAtoi(feed.Cursor), ctAtoi(next.Cursor); c1 < c0 || c0 < 1 {
		t.Errorf("cursor went from %s to %s", feed.Cursor, next.Cursor)
	}
	// Pages of one entry: has_more until the last, every entry once.
	total := len(feed.Sessions) + len(feed.Tokens)
	got, cursor := 0, "0"
	for i := 0; ; i++ {
		var p struct {
			Cursor   string `json:"cursor"`
			HasMore  bool   `json:"has_more"`
			Sessions []any  `json:"sessions"`
			Tokens   []any  `json:"tokens"`
		}
		c.e.do(t, c.base, ctCall{method: "GET", path: "/revocations?limit=1&since=" + cursor, token: c.intro.AccessToken, status: 200}).decode(t, &p)
		got += len(p.Sessions) + len(p.Tokens)
		cursor = p.Cursor
		if !p.HasMore || i > total+1 {
			break
		}
	}
	if got < total {
		t.Errorf("paging the feed by 1 gave %d entries, one page gives %d", got, total)
	}
	c.e.do(t, c.base, ctCall{method: "GET", path: "/revocations?limit=10001", token: c.intro.AccessToken, status: 400, code: "invalid_request", check: ctSpecInvalid})
	c.e.do(t, c.base, ctCall{method: "GET", path: "/revocations?since=1.2", token: c.intro.AccessToken, status: 400, code: "invalid_request", check: ctSpecInvalid})
	c.e.do(t, c.base, ctCall{method: "GET", path: "/revocations?since=-1", token: c.intro.AccessToken, status: 400, code: "invalid_request", check: ctSpecInvalid})
	c.e.do(t, c.base, ctCall{method: "GET", path: "/revocations", token: c.aliceA.AccessToken, status: 403, code: "insufficient_scope"})
	c.e.do(t, c.base, ctCall{method: "GET", path: "/revocations", status: 401, code: "invalid_token"})
}

// stepStoreFailures is the tour's "store failures" step.
func (c *contractTour) stepStoreFailures(t *testing.T) {
	fresh := c.e.login(t, c.base, ctAlice, ctPW)
	grace := c.e.login(t, c.base, ctAlice, ctPW)
	at := c.admin.AccessToken
	requests := []ctCall{
		{method: "POST", path: "/users", body: ctObj{"email": "henry@example.test", "password": ctPW}},
		{method: "POST", path: "/token", body: ctObj{"username": ctAlice, "password": ctPW}},
		{method: "POST", path: "/refresh", body: ctObj{"refresh_token": fresh.RefreshToken}},
		{method: "POST", path: "/logout", token: grace.AccessToken},
		{method: "POST", path: "/revoke", body: ctObj{"token": grace.AccessToken}},
		{method: "GET", path: "/sessions", token: grace.AccessToken},
		{method: "DELETE", path: "/sessions/" + grace.SessionID, token: grace.AccessToken},
		{method: "POST", path: "/password", token: grace.AccessToken, body: ctObj{"current_password": ctPW, "new_password": ctPW}},
		{method: "POST", path: "/admin/users", token: at, body: ctObj{"email": "henry@example.test", "password": ctPW}},
		{method: "GET", path: "/admin/users?email=" + ctAlice, token: at},
		{method: "PATCH", path: "/admin/users/" + c.aliceID, token: at, body: ctObj{"roles": []string{}}},
		{method: "GET", path: "/admin/users/" + c.aliceID + "/sessions", token: at},
		{method: "DELETE", path: "/admin/users/" + c.aliceID + "/sessions", token: at},
		{method: "DELETE", path: "/admin/sessions/" + grace.SessionID, token: at},
		{method: "GET", path: "/admin/audit", token: at},
		{method: "GET", path: "/revocations", token: at},
		{method: "GET", path: "/admin/clients", token: at},
		{method: "POST", path: "/admin/clients", token: at, body: ctObj{"client_id": "ct-new", "type": "public"}},
		{method: "GET", path: "/admin/clients/ct-spa", token: at},
		{method: "PATCH", path: "/admin/clients/ct-spa", token: at, body: ctObj{"name": "SPA"}},
		{method: "POST", path: "/admin/clients/ct-spa/secret", token: at},
		{method: "DELETE", path: "/admin/clients/ct-spa", token: at},
	}
	for _, fault := range []struct {
		err    error
		status int
		code   string
	}{
		{fmt.Errorf("connection refused: %w", tokens.ErrUnavailable), 503, "temporarily_unavailable"},
		{errors.New("unexpected store failure"), 500, "server_error"},
	} {
		c.store.setFault(fault.err)
		for _, call := range requests {
			call.status, call.code = fault.status, fault.code
			c.e.do(t, c.base, call)
		}
		c.store.setFault(nil)
	}
	c.store.setFault(fmt.Errorf("connection refused: %w", tokens.ErrUnavailable))
	c.e.do(t, c.base, ctCall{method: "GET", path: "/readyz", status: 503, code: "temporarily_unavailable"})
	c.store.setFault(nil)
	c.e.do(t, c.base, ctCall{method: "GET", path: "/readyz", status: 200})
	c.e.do(t, c.base, ctCall{method: "GET", path: "/me", token: fresh.AccessToken, status: 200})
}

// stepRateLimitsAndSignUpOff is the tour's "rate limits and sign-up off" step.
func (c *contractTour) stepRateLimitsAndSignUpOff(t *testing.T) {
	rl := httptest.NewServer(api.NewHandler(c.svc, c.logger, api.Options{SignupEnabled: false, LoginRateLimit: 1}))
	defer rl.Close()
	c.e.do(t, rl.URL, ctCall{method: "POST", path: "/users", body: ctObj{"email": "ivan@example.test", "password": ctPW},
		status: 403, code: "access_denied"})
	// Failed logins are limited, not successes: after one failure
	// (LOGIN_RATE_LIMIT=1) the next attempt is refused, right password or not.
	c.e.tokens(t, rl.URL, ctCall{method: "POST", path: "/token", body: ctObj{"username": "bob@example.test", "password": ctPW}, status: 200})
	c.e.do(t, rl.URL, ctCall{method: "POST", path: "/token", body: ctObj{"username": "bob@example.test", "password": "wrong password"},
		status: 400, code: "invalid_grant"})
	r := c.e.do(t, rl.URL, ctCall{method: "POST", path: "/token", body: ctObj{"username": "bob@example.test", "password": ctPW},
		status: 429, code: "too_many_requests"})
	if n, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || n < 1 || n > 60 {
		t.Errorf("Retry-After = %q", r.header.Get("Retry-After"))
	}
	// Failed refreshes are limited per IP at six times LOGIN_RATE_LIMIT.
	bogus := "rt_" + strings.Repeat("A", 64)
	for range 6 {
		c.e.do(t, rl.URL, ctCall{method: "POST", path: "/refresh", body: ctObj{"refresh_token": bogus}, status: 400, code: "invalid_grant"})
	}
	c.e.do(t, rl.URL, ctCall{method: "POST", path: "/refresh", body: ctObj{"refresh_token": bogus}, status: 429, code: "too_many_requests"})
	c.e.do(t, rl.URL, ctCall{method: "POST", path: "/token", form: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {bogus}},
		status: 429, code: "too_many_requests"})
	// /revoke: six times LOGIN_RATE_LIMIT calls a minute per client.
	for range 6 {
		c.e.do(t, rl.URL, ctCall{method: "POST", path: "/revoke", body: ctObj{"token": bogus}, status: 200})
	}
	r = c.e.do(t, rl.URL, ctCall{method: "POST", path: "/revoke", body: ctObj{"token": bogus}, status: 429, code: "too_many_requests"})
	if n, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || n < 1 || n > 60 {
		t.Errorf("/revoke Retry-After = %q", r.header.Get("Retry-After"))
	}
}

// stepBrowserMode is the tour's "browser mode" step.
func (c *contractTour) stepBrowserMode(t *testing.T) {
	const origin = "https://app.example.test"
	bm := httptest.NewServer(api.NewHandler(c.svc, c.logger, api.Options{
		SignupEnabled: true, RefreshCookie: true, CORSAllowedOrigins: []string{origin},
	}))
	defer bm.Close()
	// Every success sets the cookie, so /token needs the Origin too, and
	// takes no form (CSRF defence).
	c.e.do(t, bm.URL, ctCall{method: "POST", path: "/token", body: ctObj{"username": ctAlice, "password": ctPW},
		status: 403, code: "access_denied"})
	c.e.do(t, bm.URL, ctCall{method: "POST", path: "/token", form: url.Values{"grant_type": {"password"}, "username": {ctAlice}, "password": {ctPW}},
		header: map[string]string{"Origin": origin}, status: 400, code: "invalid_request"})
	login := c.e.do(t, bm.URL, ctCall{method: "POST", path: "/token", body: ctObj{"username": ctAlice, "password": ctPW},
		header: map[string]string{"Origin": origin}, status: 200})
	var body map[string]any
	login.decode(t, &body)
	if _, ok := body["refresh_token"]; ok {
		t.Errorf("browser-mode token response has a refresh_token in the body")
	}
	cookie := ctRefreshCookie(t, login.header)
	withCookie := func(v string, withOrigin bool) map[string]string {
		h := map[string]string{"Cookie": api.RefreshCookieName + "=" + v}
		if withOrigin {
			h["Origin"] = origin
		}
		return h
	}
	rotated := c.e.do(t, bm.URL, ctCall{method: "POST", path: "/refresh", header: withCookie(cookie, true), status: 200})
	next := ctRefreshCookie(t, rotated.header)
	if next == cookie {
		t.Errorf("the refresh cookie did not rotate")
	}
	c.e.do(t, bm.URL, ctCall{method: "POST", path: "/refresh", header: withCookie(next, false), status: 403, code: "access_denied"})
	c.e.do(t, bm.URL, ctCall{method: "POST", path: "/logout", header: withCookie(next, false), status: 403, code: "access_denied"})
	out := c.e.do(t, bm.URL, ctCall{method: "POST", path: "/logout", header: withCookie(next, true), status: 204})
	if sc := out.header.Get("Set-Cookie"); !strings.Contains(sc, "Max-Age=0") {
		t.Errorf("logout did not clear the cookie: Set-Cookie %q", sc)
	}
	c.e.do(t, bm.URL, ctCall{method: "POST", path: "/refresh", header: withCookie(next, true), status: 400, code: "invalid_grant"})
}

// stepUnknownPathsAndMethods is the tour's "unknown paths and methods" step.
func (c *contractTour) stepUnknownPathsAndMethods(t *testing.T) {
	c.e.checkUnrouted(t, c.base, "GET", "/nope", 404, "not_found", "")
	for _, path := range ctSpecPaths(c.e.doc) {
		concrete := strings.ReplaceAll(path, "{id}", uuid.NewString())
		c.e.checkUnrouted(t, c.base, "PUT", concrete, 405, "method_not_allowed", c.e.allowFor(path))
	}
	req, _ := http.NewRequest("HEAD", c.base+"/healthz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(b) != 0 {
		t.Errorf("HEAD /healthz = %d with %d body bytes", resp.StatusCode, len(b))
	}
}

// call is one request of the tour and what it must produce.
