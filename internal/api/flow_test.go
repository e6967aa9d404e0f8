package api_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rotorauth/rotor/internal/api"
	"github.com/rotorauth/rotor/internal/store/storetest"
)

var defaults = api.Options{SignupEnabled: true}

func TestSignupLoginRefreshMe(t *testing.T) {
	ts := newTestServer(t, defaults)
	ts.signup("Alice@Example.test", "alice password")
	r := ts.post("/users", `{"email":"alice@example.TEST","password":"another password"}`, "")
	r.wantError(t, http.StatusConflict, "conflict")

	p := ts.login("ALICE@example.test", "alice password")
	if !strings.HasPrefix(p.RefreshToken, "rt_") || p.RefreshExpiresIn <= 0 {
		t.Fatalf("refresh token %q expires in %d", p.RefreshToken[:3], p.RefreshExpiresIn)
	}
	me := ts.get("/me", p.AccessToken)
	if me.status != 200 {
		t.Fatalf("/me: %d %s", me.status, me.body)
	}
	m := me.json(t)
	if m["email"] != "alice@example.test" || m["session_id"] != p.SessionID || m["id"] == "" {
		t.Fatalf("/me = %s", me.body)
	}
	if roles, ok := m["roles"].([]any); !ok || len(roles) != 0 {
		t.Fatalf("/me roles = %v, want []", m["roles"])
	}

	// JSON refresh, then the RFC 6749 form grant on /token.
	p2 := ts.tokens(ts.post("/refresh", mustJSON(map[string]string{"refresh_token": p.RefreshToken}), ""))
	if p2.RefreshToken == p.RefreshToken || p2.SessionID != p.SessionID {
		t.Fatal("refresh did not rotate within the session")
	}
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {p2.RefreshToken}}.Encode()
	p3 := ts.tokens(ts.do(req{method: "POST", path: "/token", body: form, contentType: "application/x-www-form-urlencoded"}))
	// Password grant as a form.
	form = url.Values{"grant_type": {"password"}, "username": {"alice@example.test"}, "password": {"alice password"}}.Encode()
	ts.tokens(ts.do(req{method: "POST", path: "/token", body: form, contentType: "application/x-www-form-urlencoded"}))

	if ts.get("/me", p3.AccessToken).status != 200 {
		t.Fatal("access token from the form grant refused")
	}
}

func TestReuseRevokesTheSessionOverHTTP(t *testing.T) {
	ts := newTestServer(t, defaults, storetest.WithGrace(0))
	_, p := ts.newUser()
	p2 := ts.tokens(ts.post("/refresh", mustJSON(map[string]string{"refresh_token": p.RefreshToken}), ""))
	r := ts.post("/refresh", mustJSON(map[string]string{"refresh_token": p.RefreshToken}), "")
	r.wantError(t, http.StatusBadRequest, "invalid_grant")
	me := ts.get("/me", p2.AccessToken)
	me.wantError(t, http.StatusUnauthorized, "invalid_token")
	if got := me.header.Get("WWW-Authenticate"); got != `Bearer error="invalid_token"` {
		t.Fatalf("WWW-Authenticate = %q", got)
	}
	ts.post("/refresh", mustJSON(map[string]string{"refresh_token": p2.RefreshToken}), "").wantError(t, http.StatusBadRequest, "invalid_grant")
}

func TestGraceReplayReturnsTheSameSuccessorOverHTTP(t *testing.T) {
	ts := newTestServer(t, defaults)
	_, p := ts.newUser()
	body := mustJSON(map[string]string{"refresh_token": p.RefreshToken})
	a := ts.tokens(ts.post("/refresh", body, ""))
	b := ts.tokens(ts.post("/refresh", body, ""))
	if a.RefreshToken != b.RefreshToken {
		t.Fatal("a retry inside the grace window got a different refresh token")
	}
}

func TestLoginRefusalsAreIdentical(t *testing.T) {
	ts := newTestServer(t, defaults)
	email, _ := ts.newUser()
	var bodies []string
	for _, creds := range [][2]string{{email, "wrong password"}, {"nobody@example.test", "user password 1"}, {"\u200b" + email, "user password 1"}} {
		r := ts.post("/token", mustJSON(map[string]string{"username": creds[0], "password": creds[1]}), "")
		r.wantError(t, http.StatusBadRequest, "invalid_grant")
		bodies = append(bodies, string(r.body))
	}
	for _, b := range bodies[1:] {
		if b != bodies[0] {
			t.Fatalf("login refusals differ: %s vs %s", bodies[0], b)
		}
	}
}

func TestBadRequests(t *testing.T) {
	ts := newTestServer(t, defaults)
	nested := strings.Repeat("[", 100) + strings.Repeat("]", 100)
	cases := []struct {
		name   string
		rq     req
		status int
		code   string
	}{
		{"wrong content type", req{method: "POST", path: "/token", body: "username=a", contentType: "text/plain"}, 400, "invalid_request"},
		{"no content type", req{method: "POST", path: "/users", body: `{"email":"a@b.c"}`, contentType: " "}, 400, "invalid_request"},
		{"malformed JSON", req{method: "POST", path: "/token", body: `{"username":`}, 400, "invalid_request"},
		{"trailing data", req{method: "POST", path: "/token", body: `{"username":"a@b.cd","password":"x"} {}`}, 400, "invalid_request"},
		{"unknown field", req{method: "POST", path: "/users", body: `{"email":"a@b.cd","password":"long enough","admin":true}`}, 400, "invalid_request"},
		{"byte-order mark", req{method: "POST", path: "/token", body: "\xef\xbb\xbf{}"}, 400, "invalid_request"},
		{"invalid UTF-8", req{method: "POST", path: "/token", body: "{\"username\":\"\xff\"}"}, 400, "invalid_request"},
		{"deeply nested", req{method: "POST", path: "/token", body: `{"username":` + nested + `}`}, 400, "invalid_request"},
		{"wrong type", req{method: "POST", path: "/token", body: `{"username":1,"password":"x"}`}, 400, "invalid_request"},
		{"JSON array", req{method: "POST", path: "/token", body: `[]`}, 400, "invalid_request"},
		{"missing password", req{method: "POST", path: "/token", body: `{"username":"a@b.cd"}`}, 400, "invalid_request"},
		{"unknown grant", req{method: "POST", path: "/token", body: "grant_type=authorization_code", contentType: "application/x-www-form-urlencoded"}, 400, "unsupported_grant_type"},
		{"client_credentials for the public default client", req{method: "POST", path: "/token", body: "grant_type=client_credentials", contentType: "application/x-www-form-urlencoded"}, 400, "unauthorized_client"},
		{"form without grant", req{method: "POST", path: "/token", body: "username=a", contentType: "application/x-www-form-urlencoded"}, 400, "invalid_request"},
		{"repeated form parameter", req{method: "POST", path: "/token", body: "grant_type=password&grant_type=password", contentType: "application/x-www-form-urlencoded"}, 400, "invalid_request"},
		{"refresh without token", req{method: "POST", path: "/refresh", body: `{}`}, 400, "invalid_request"},
		{"refresh with garbage", req{method: "POST", path: "/refresh", body: `{"refresh_token":"nope"}`}, 400, "invalid_grant"},
		{"access token sent to refresh", req{method: "POST", path: "/refresh", body: `{"refresh_token":"eyJhbGciOiJFZERTQSJ9.e30.c2ln"}`}, 400, "invalid_grant"},
		{"short password", req{method: "POST", path: "/users", body: `{"email":"a@b.cd","password":"short"}`}, 400, "invalid_request"},
		{"1 KiB+ password", req{method: "POST", path: "/users", body: `{"email":"a@b.cd","password":"` + strings.Repeat("x", 1025) + `"}`}, 400, "invalid_request"},
		{"body over 64 KiB", req{method: "POST", path: "/token", body: `{"username":"` + strings.Repeat("x", 70<<10) + `"}`}, 413, "request_too_large"},
		{"unknown path", req{method: "GET", path: "/nope"}, 404, "not_found"},
		{"wrong method", req{method: "GET", path: "/token"}, 405, "method_not_allowed"},
		{"no bearer", req{method: "GET", path: "/me"}, 401, "invalid_token"},
		{"basic auth", req{method: "GET", path: "/me", header: map[string]string{"Authorization": "Basic YTpi"}}, 401, "invalid_token"},
		{"refresh token as bearer", req{method: "GET", path: "/me", bearer: "rt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}, 401, "invalid_token"},
		{"bad session id", req{method: "DELETE", path: "/sessions/not-a-uuid", bearer: "x"}, 401, "invalid_token"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := ts.do(c.rq)
			r.wantError(t, c.status, c.code)
			if c.status == 405 && r.header.Get("Allow") != "POST" {
				t.Fatalf("Allow = %q, want POST", r.header.Get("Allow"))
			}
		})
	}
}

func TestTokenInURLIsIgnored(t *testing.T) {
	ts := newTestServer(t, defaults)
	_, p := ts.newUser()
	ts.get("/me?access_token="+p.AccessToken, "").wantError(t, http.StatusUnauthorized, "invalid_token")
	r := ts.do(req{method: "POST", path: "/refresh?refresh_token=" + p.RefreshToken, body: `{}`})
	r.wantError(t, http.StatusBadRequest, "invalid_request")
}

func TestSignupDisabled(t *testing.T) {
	ts := newTestServer(t, api.Options{SignupEnabled: false})
	ts.post("/users", `{"email":"a@example.test","password":"long enough"}`, "").wantError(t, http.StatusForbidden, "access_denied")
}

func TestLoginRateLimit(t *testing.T) {
	ts := newTestServer(t, api.Options{SignupEnabled: true, LoginRateLimit: 3})
	email, _ := ts.newUser() // a success: not counted
	for i := 0; i < 3; i++ {
		ts.post("/token", mustJSON(map[string]string{"username": email, "password": "wrong password"}), "").wantError(t, 400, "invalid_grant")
	}
	// Three failures for this account from this address: refused, even
	// with the right password, before the password is checked.
	r := ts.post("/token", mustJSON(map[string]string{"username": email, "password": "user password 1"}), "")
	r.wantError(t, http.StatusTooManyRequests, "too_many_requests")
	if ra := r.header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Fatalf("Retry-After = %q", ra)
	}
	// A spoofed X-Forwarded-For from an untrusted peer changes nothing: the
	// address's failures, whatever the account, reach its cap (2 x 3).
	spoofed := func() response {
		return ts.do(req{method: "POST", path: "/token", body: mustJSON(map[string]string{"username": "other@example.test", "password": "whatever!"}),
			header: map[string]string{"X-Forwarded-For": "203.0.113.9"}})
	}
	for i := 0; i < 3; i++ {
		spoofed().wantError(t, 400, "invalid_grant")
	}
	spoofed().wantError(t, http.StatusTooManyRequests, "too_many_requests")
}

func TestHealthAndMetadata(t *testing.T) {
	ts := newTestServer(t, defaults)
	if r := ts.get("/healthz", ""); r.status != 200 {
		t.Fatalf("/healthz %d", r.status)
	}
	if r := ts.get("/readyz", ""); r.status != 200 {
		t.Fatalf("/readyz %d", r.status)
	}
	jwks := ts.get("/.well-known/jwks.json", "").json(t)
	keys, _ := jwks["keys"].([]any)
	if len(keys) != 1 || keys[0].(map[string]any)["kty"] != "OKP" || keys[0].(map[string]any)["d"] != nil {
		t.Fatalf("jwks = %v", jwks)
	}
	md := ts.get("/.well-known/oauth-authorization-server", "").json(t)
	if md["issuer"] != "https://rotor.test" || md["token_endpoint"] != "https://rotor.test/token" || md["jwks_uri"] == nil {
		t.Fatalf("metadata = %v", md)
	}
	m := ts.get("/metrics", "")
	if m.status != 200 || !strings.Contains(string(m.body), "rotor_http_requests_total") {
		t.Fatalf("/metrics: %d", m.status)
	}
	if !strings.Contains(string(m.body), `route="/.well-known/jwks.json"`) {
		t.Fatal("metrics do not carry the route template")
	}
}

func TestRequestIDInErrorLogs(t *testing.T) {
	ts := newTestServer(t, defaults)
	r := ts.get("/me", "")
	id := r.header.Get("X-Request-Id")
	if len(id) != 16 {
		t.Fatalf("X-Request-Id = %q", id)
	}
	deadline := time.Now().Add(time.Second)
	for !strings.Contains(ts.logs.String(), id) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(ts.logs.String(), id) {
		t.Fatal("the request id is not in the log")
	}
}

// Random refresh tokens at volume from one IP are rate limited.
func TestRandomRefreshTokensAreRateLimited(t *testing.T) {
	ts := newTestServer(t, api.Options{SignupEnabled: true, LoginRateLimit: 1}) // 6 failed refreshes a minute
	var last response
	for i := 0; i < 8; i++ {
		last = ts.post("/refresh", `{"refresh_token":"rt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}`, "")
	}
	last.wantError(t, http.StatusTooManyRequests, "too_many_requests")
	if last.header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
}

// Attack tokens over HTTP: 401 from /me, {active:false} from /introspect.
func TestAttackTokensOverHTTP(t *testing.T) {
	ts := newTestServer(t, defaults)
	admin := ts.adminToken()
	_, p := ts.newUser()
	parts := strings.Split(p.AccessToken, ".")
	attacks := map[string]string{
		"alg none":           "eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0." + parts[1] + ".",
		"signature stripped": parts[0] + "." + parts[1] + ".",
		"payload swapped":    parts[0] + "." + strings.Split(admin, ".")[1] + "." + parts[2],
		"four segments":      p.AccessToken + ".x",
		"padded":             parts[0] + "=." + parts[1] + "." + parts[2],
		"refresh as bearer":  p.RefreshToken,
	}
	for name, tok := range attacks {
		ts.get("/me", tok).wantError(t, http.StatusUnauthorized, "invalid_token")
		r := ts.post("/introspect", mustJSON(map[string]string{"token": tok}), admin)
		if m := r.json(t); r.status != 200 || len(m) != 1 || m["active"] != false {
			t.Errorf("%s: introspect %d %s", name, r.status, r.body)
		}
	}
}
