package api_test

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/rotorauth/rotor/internal/api"
)

// Browser mode's CSRF defence on the endpoints that set the refresh cookie
// (/token, /refresh): JSON only, and an allowed Origin whatever the body.
// A refused request must set no cookie at all.

const evilOrigin = "https://evil.example"

// wantRefused fails unless r is the error status/code and set no cookie at
// all. It never prints the body, which on a wrong success holds a token.
func wantRefused(t *testing.T, what string, r response, status int, code string) {
	t.Helper()
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	_ = json.Unmarshal(r.body, &e)
	if r.status != status || e.Error != code || e.Description == "" {
		t.Fatalf("%s: status %d, error %q (%q); want %d %s", what, r.status, e.Error, e.Description, status, code)
	}
	if sc := r.header.Values("Set-Cookie"); len(sc) > 0 {
		t.Fatalf("%s: a refused request set %d cookie(s)", what, len(sc))
	}
}

// noCookieSet fails if r set any cookie.
func noCookieSet(t *testing.T, r response) {
	t.Helper()
	if sc := r.header.Values("Set-Cookie"); len(sc) > 0 {
		t.Fatalf("%d cookie(s) set in body mode", len(sc))
	}
}

// simpleBodies are the bodies of CORS-"simple" requests, which a cross-site
// page can send without a preflight (an auto-submitted form does).
func simpleBodies(fields url.Values) map[string]req {
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	_ = mw.SetBoundary("b0undary")
	// text/plain as an HTML form sends it: a JSON-looking body is the usual trick.
	var plain []string
	for k, v := range fields {
		_ = mw.WriteField(k, v[0])
		plain = append(plain, `"`+k+`":"`+v[0]+`"`)
	}
	_ = mw.Close()
	return map[string]req{
		"form-urlencoded":           {body: fields.Encode(), contentType: "application/x-www-form-urlencoded"},
		"form-urlencoded;charset":   {body: fields.Encode(), contentType: "application/x-www-form-urlencoded; charset=UTF-8"},
		"multipart/form-data":       {body: mp.String(), contentType: mw.FormDataContentType()},
		"text/plain":                {body: "{" + strings.Join(plain, ",") + "}", contentType: "text/plain"},
		"TEXT/PLAIN;charset=utf-8":  {body: "{" + strings.Join(plain, ",") + "}", contentType: "TEXT/PLAIN; charset=utf-8"},
		"malformed content type":    {body: "{" + strings.Join(plain, ",") + "}", contentType: "application/json;;"},
		"application/json-ish typo": {body: "{" + strings.Join(plain, ",") + "}", contentType: "application/jsonx"},
	}
}

// TestCookieModeTokenRefusesSimpleBodies: a login CSRF is an auto-submitted
// form; in browser mode /token refuses every simple content type with 400
// invalid_request, even from an allowed Origin, and sets nothing. (Today's
// code logged the form in and set the cookie.)
func TestCookieModeTokenRefusesSimpleBodies(t *testing.T) {
	ts := newTestServer(t, browser)
	ts.signup("mallory@example.test", "mallory password 1")
	creds := url.Values{"grant_type": {"password"}, "username": {"mallory@example.test"}, "password": {"mallory password 1"}}
	for name, rq := range simpleBodies(creds) {
		for _, origin := range []string{appOrigin, evilOrigin, ""} {
			t.Run(name+" from "+origin, func(t *testing.T) {
				rq.method, rq.path = "POST", "/token"
				rq.header = map[string]string{}
				if origin != "" {
					rq.header["Origin"] = origin
				}
				wantRefused(t, "POST /token", ts.do(rq), 400, "invalid_request")
			})
		}
	}
}

// TestCookieModeTokenNeedsAllowedOrigin: a JSON login in browser mode sets
// the cookie only with an Origin from CORS_ALLOWED_ORIGINS (today's code
// needed none).
func TestCookieModeTokenNeedsAllowedOrigin(t *testing.T) {
	ts := newTestServer(t, browser)
	ts.signup("ada@example.test", "ada password 1")
	body := `{"username":"ada@example.test","password":"ada password 1"}`
	for _, origin := range []string{"", evilOrigin, "null", appOrigin + "/", "http://app.example.test"} {
		h := map[string]string{}
		if origin != "" {
			h["Origin"] = origin
		}
		wantRefused(t, "login, Origin "+origin, ts.do(req{method: "POST", path: "/token", body: body, header: h}), 403, "access_denied")
	}
	r := ts.do(req{method: "POST", path: "/token", body: body, header: map[string]string{"Origin": appOrigin}})
	if p := ts.tokens(r); p.RefreshToken != "" {
		t.Fatal("cookie mode put the refresh token in the body")
	}
	c := refreshCookie(t, r)
	ts.remember(c.Value)
	if c.Value == "" || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode {
		t.Fatalf("cookie attributes: HttpOnly=%v Secure=%v SameSite=%v", c.HttpOnly, c.Secure, c.SameSite)
	}

	// The refresh grant at /token takes its token from the body, but sets the
	// cookie all the same: it needs the Origin too.
	rb := mustJSON(map[string]string{"grant_type": "refresh_token", "refresh_token": c.Value})
	for _, origin := range []string{"", evilOrigin} {
		h := map[string]string{}
		if origin != "" {
			h["Origin"] = origin
		}
		wantRefused(t, "refresh grant, Origin "+origin, ts.do(req{method: "POST", path: "/token", body: rb, header: h}), 403, "access_denied")
	}
	r = ts.do(req{method: "POST", path: "/token", body: rb, header: map[string]string{"Origin": appOrigin}})
	ts.tokens(r)
	ts.remember(refreshCookie(t, r).Value)
}

// TestCookieModeRefreshNeedsAllowedOrigin: /refresh in browser mode needs an
// allowed Origin whether the token comes from the cookie or from the body,
// and refuses simple content types. Today's code rotated a body token
// without any Origin and took form bodies.
func TestCookieModeRefreshNeedsAllowedOrigin(t *testing.T) {
	ts := newTestServer(t, browser)
	ts.signup("grace@example.test", "grace password 1")
	r := ts.do(req{method: "POST", path: "/token", body: `{"username":"grace@example.test","password":"grace password 1"}`,
		header: map[string]string{"Origin": appOrigin}})
	ts.tokens(r)
	c := refreshCookie(t, r)
	ts.remember(c.Value)

	jsonBody := mustJSON(map[string]string{"refresh_token": c.Value})
	for _, origin := range []string{"", evilOrigin, "null"} {
		h := map[string]string{}
		if origin != "" {
			h["Origin"] = origin
		}
		for name, rq := range map[string]req{
			"JSON body":      {body: jsonBody},
			"cookie":         {cookies: []*http.Cookie{c}},
			"cookie + JSON":  {body: `{}`, cookies: []*http.Cookie{c}},
			"body + cookie":  {body: jsonBody, cookies: []*http.Cookie{c}},
			"empty JSON obj": {body: `{}`},
		} {
			rq.method, rq.path, rq.header = "POST", "/refresh", h
			wantRefused(t, name+", Origin "+origin, ts.do(rq), 403, "access_denied")
		}
	}
	for name, rq := range simpleBodies(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {c.Value}}) {
		for _, origin := range []string{appOrigin, evilOrigin} {
			rq.method, rq.path = "POST", "/refresh"
			rq.header = map[string]string{"Origin": origin}
			rq.cookies = []*http.Cookie{c}
			wantRefused(t, name+", Origin "+origin, ts.do(rq), 400, "invalid_request")
		}
	}
	// An empty body with a simple Content-Type is still a simple request.
	wantRefused(t, "empty text/plain", ts.do(req{method: "POST", path: "/refresh", contentType: "text/plain",
		cookies: []*http.Cookie{c}, header: map[string]string{"Origin": appOrigin}}), 400, "invalid_request")

	// Nothing above rotated the token: from the allowed Origin, the body
	// token rotates once, and the cookie (the same token, inside the grace
	// window) gets the very same successor.
	r = ts.do(req{method: "POST", path: "/refresh", body: jsonBody, header: map[string]string{"Origin": appOrigin}})
	if p := ts.tokens(r); p.RefreshToken != "" {
		t.Fatal("cookie mode put the refresh token in the body")
	}
	next := refreshCookie(t, r)
	ts.remember(next.Value)
	if next.Value == c.Value {
		t.Fatal("the token did not rotate")
	}
	r = ts.do(req{method: "POST", path: "/refresh", cookies: []*http.Cookie{c}, header: map[string]string{"Origin": appOrigin}})
	ts.tokens(r)
	if refreshCookie(t, r).Value != next.Value {
		t.Fatal("the grace replay got a different successor: a refused request had rotated the token")
	}
	// The preflighted form the SPA uses: no body, no Content-Type.
	r = ts.do(req{method: "POST", path: "/refresh", cookies: []*http.Cookie{next}, header: map[string]string{"Origin": appOrigin}})
	ts.tokens(r)
	ts.remember(refreshCookie(t, r).Value)
}

// TestCookieModeLogoutRefusesSimpleBodies verifies that /logout, which reads
// the cookie in browser mode, already refuses simple content types (it
// takes JSON only) and a missing or foreign Origin, and that the refused
// requests leave the session alive. (A regression guard: today's code
// passes it.)
func TestCookieModeLogoutRefusesSimpleBodies(t *testing.T) {
	ts := newTestServer(t, browser)
	ts.signup("lin@example.test", "lin password 1")
	r := ts.do(req{method: "POST", path: "/token", body: `{"username":"lin@example.test","password":"lin password 1"}`,
		header: map[string]string{"Origin": appOrigin}})
	ts.tokens(r)
	c := refreshCookie(t, r)
	ts.remember(c.Value)
	for name, rq := range simpleBodies(url.Values{"scope": {"global"}}) {
		rq.method, rq.path = "POST", "/logout"
		rq.header = map[string]string{"Origin": appOrigin}
		rq.cookies = []*http.Cookie{c}
		wantRefused(t, "logout "+name, ts.do(rq), 400, "invalid_request")
	}
	for _, origin := range []string{"", evilOrigin} {
		h := map[string]string{}
		if origin != "" {
			h["Origin"] = origin
		}
		wantRefused(t, "logout, Origin "+origin, ts.do(req{method: "POST", path: "/logout", cookies: []*http.Cookie{c}, header: h}),
			403, "access_denied")
	}
	r = ts.do(req{method: "POST", path: "/refresh", cookies: []*http.Cookie{c}, header: map[string]string{"Origin": appOrigin}})
	ts.tokens(r)
	ts.remember(refreshCookie(t, r).Value)
}

// TestBodyModeFormGrantSetsNoCookie: with REFRESH_COOKIE=false nothing
// changes for non-browser clients: the RFC 6749 form grant and JSON work
// without any Origin, the refresh token is in the body and no cookie is set.
// (A regression guard for the fix: today's code passes it.)
func TestBodyModeFormGrantSetsNoCookie(t *testing.T) {
	body := newTestServer(t, api.Options{SignupEnabled: true})
	body.signup("cli@example.test", "cli password 1")
	form := "application/x-www-form-urlencoded"
	check := func(r response) tokenPair {
		t.Helper()
		p := body.tokens(r)
		if p.RefreshToken == "" {
			t.Fatal("body mode: no refresh_token in the body")
		}
		noCookieSet(t, r)
		return p
	}
	p := check(body.do(req{method: "POST", path: "/token", contentType: form,
		body: url.Values{"grant_type": {"password"}, "username": {"cli@example.test"}, "password": {"cli password 1"}}.Encode()}))
	p = check(body.do(req{method: "POST", path: "/token", contentType: form,
		body: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {p.RefreshToken}}.Encode()}))
	p = check(body.do(req{method: "POST", path: "/refresh", contentType: form,
		body: url.Values{"refresh_token": {p.RefreshToken}}.Encode()}))
	p = check(body.do(req{method: "POST", path: "/refresh", body: mustJSON(map[string]string{"refresh_token": p.RefreshToken})}))
	check(body.do(req{method: "POST", path: "/token", body: `{"username":"cli@example.test","password":"cli password 1"}`}))
	// A foreign Origin does not matter without cookies: there is nothing to forge.
	check(body.do(req{method: "POST", path: "/refresh", body: mustJSON(map[string]string{"refresh_token": p.RefreshToken}),
		header: map[string]string{"Origin": evilOrigin}}))
}
