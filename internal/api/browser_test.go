package api_test

import (
	"net/http"
	"testing"

	"github.com/rotorauth/rotor/internal/api"
)

const appOrigin = "https://app.example.test"

var browser = api.Options{SignupEnabled: true, RefreshCookie: true, CORSAllowedOrigins: []string{appOrigin}}

func refreshCookie(t *testing.T, r response) *http.Cookie {
	t.Helper()
	for _, c := range r.cookie {
		if c.Name == api.RefreshCookieName {
			return c
		}
	}
	t.Fatalf("no %s cookie in %v", api.RefreshCookieName, r.header["Set-Cookie"])
	return nil
}

func TestCookieMode(t *testing.T) {
	ts := newTestServer(t, browser)
	ts.signup("tab@example.test", "tab password 1")
	r := ts.do(req{method: "POST", path: "/token", body: `{"username":"tab@example.test","password":"tab password 1"}`,
		header: map[string]string{"Origin": appOrigin}})
	p := ts.tokens(r)
	if p.RefreshToken != "" {
		t.Fatal("cookie mode put the refresh token in the body")
	}
	c := refreshCookie(t, r)
	ts.remember(c.Value)
	if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Domain != "" {
		t.Fatalf("cookie attributes: %+v", c)
	}
	if r.header.Get("Access-Control-Allow-Origin") != appOrigin || r.header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("CORS headers on the allowed origin: %v", r.header)
	}
	// Refresh from the cookie needs an allowed Origin.
	ts.do(req{method: "POST", path: "/refresh", cookies: []*http.Cookie{c}}).wantError(t, 403, "access_denied")
	ts.do(req{method: "POST", path: "/refresh", cookies: []*http.Cookie{c},
		header: map[string]string{"Origin": "https://evil.example"}}).wantError(t, 403, "access_denied")
	r = ts.do(req{method: "POST", path: "/refresh", cookies: []*http.Cookie{c}, header: map[string]string{"Origin": appOrigin}})
	ts.tokens(r)
	c2 := refreshCookie(t, r)
	ts.remember(c2.Value)
	if c2.Value == c.Value {
		t.Fatal("the cookie did not rotate")
	}
	// Two tabs refreshing with the same cookie inside the window both stay
	// logged in with the same successor.
	r2 := ts.do(req{method: "POST", path: "/refresh", cookies: []*http.Cookie{c}, header: map[string]string{"Origin": appOrigin}})
	ts.tokens(r2)
	if refreshCookie(t, r2).Value != c2.Value {
		t.Fatal("the second tab got a different successor")
	}
	// Logout reads the cookie and clears it.
	r = ts.do(req{method: "POST", path: "/logout", cookies: []*http.Cookie{c2}, header: map[string]string{"Origin": appOrigin}})
	if r.status != 204 || refreshCookie(t, r).MaxAge >= 0 {
		t.Fatalf("logout: %d, cookie %+v", r.status, r.cookie)
	}
	ts.do(req{method: "POST", path: "/refresh", cookies: []*http.Cookie{c2}, header: map[string]string{"Origin": appOrigin}}).wantError(t, 400, "invalid_grant")
}

func TestCORSPreflight(t *testing.T) {
	ts := newTestServer(t, browser)
	pre := func(origin string) response {
		return ts.do(req{method: "OPTIONS", path: "/refresh", header: map[string]string{
			"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}})
	}
	r := pre(appOrigin)
	if r.status != 204 || r.header.Get("Access-Control-Allow-Origin") != appOrigin ||
		r.header.Get("Access-Control-Allow-Credentials") != "true" || r.header.Get("Access-Control-Allow-Methods") == "" {
		t.Fatalf("preflight from the allowed origin: %d %v", r.status, r.header)
	}
	r = pre("https://evil.example")
	if r.status != 403 || r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight from another origin: %d %v", r.status, r.header)
	}
	r = ts.do(req{method: "GET", path: "/healthz", header: map[string]string{"Origin": "https://evil.example"}})
	if r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("a simple request from another origin got CORS headers")
	}
}
