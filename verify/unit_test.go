package verify

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

func TestDenylistKeepsLatestUntilAndSweeps(t *testing.T) {
	d := newDenylist()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d.add([]feedEntry{{Sid: "s1", Until: t0.Add(time.Minute)}, {Sid: "s1", Until: t0}}, []feedEntry{{Jti: "j1", Until: t0}})
	d.add([]feedEntry{{Sid: "s1", Until: t0.Add(-time.Hour)}}, nil) // a repeat with an older until
	if what, until, ok := d.check("s1", "x"); !ok || what != "session" || !until.Equal(t0.Add(time.Minute)) {
		t.Fatalf("s1: %s %s %v", what, until, ok)
	}
	if what, _, ok := d.check("x", "j1"); !ok || what != "token" {
		t.Fatalf("j1: %s %v", what, ok)
	}
	if _, _, ok := d.check("x", "y"); ok {
		t.Fatal("an unknown pair is denied")
	}
	if n := d.sweep(t0.Add(30 * time.Second)); n != 1 {
		t.Fatalf("swept %d, want 1 (j1)", n)
	}
	if s, tk := d.size(); s != 1 || tk != 0 {
		t.Fatalf("size %d %d", s, tk)
	}
}

func TestParseJWKS(t *testing.T) {
	raw := func(s string) []json.RawMessage {
		var out struct{ Keys []json.RawMessage }
		if err := json.Unmarshal([]byte(s), &out); err != nil {
			t.Fatal(err)
		}
		return out.Keys
	}
	set, skipped := parseJWKS(raw(`{"keys":[
		{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
		{"kty":"EC","crv":"P-256","kid":"ec","alg":"ES256","use":"sig","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
		{"kty":"RSA","n":"AQAB","e":"AQAB","kid":"rsa"},
		{"kty":"OKP","crv":"Ed25519","kid":"enc","use":"enc","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
		{"kty":"OKP","crv":"Ed25519","kid":"short","x":"AAAA"},
		{"kty":"EC","crv":"P-256","kid":"offcurve","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"y_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
		{"kty":"OKP","crv":"Ed25519","kid":"ec","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
		{"kty":"OKP","crv":"Ed25519","kid":"liar","alg":"ES256","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
	]}`), []string{EdDSA, ES256})
	// RFC 8037 A.3: the thumbprint of its example key.
	if len(set.kids) != 2 || set.kids[0] != "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k" || set.kids[1] != "ec" {
		t.Fatalf("kids %v", set.kids)
	}
	if len(skipped) != 6 {
		t.Fatalf("skipped %d: %v", len(skipped), skipped)
	}
	for i, want := range []string{"not supported", "use \"enc\"", "bytes, want 32", "not a P-256 point", "appears twice", "does not fit"} {
		if !strings.Contains(skipped[i], want) {
			t.Errorf("skipped[%d] = %q, want %q", i, skipped[i], want)
		}
	}
	if set, _ := parseJWKS(raw(`{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`), []string{EdDSA}); len(set.kids) != 0 {
		t.Error("an ES256 key outside the allow-list was kept")
	}
}

func TestConfigRefusals(t *testing.T) {
	ts := oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "x"})
	secret := []byte(strings.Repeat("s", 32))
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Audience: "a", TokenSource: ts}, "Config.Issuer"},
		{Config{Issuer: "auth.example.com", Audience: "a", TokenSource: ts}, "Config.Issuer"},
		{Config{Issuer: "https://a.example", TokenSource: ts}, "Config.Audience"},
		{Config{Issuer: "https://a.example", Audience: "a"}, "Config.TokenSource"},
		{Config{Issuer: "https://a.example", Audience: "a", TokenSource: ts, Algorithms: []string{"none"}}, `"none" is not supported`},
		{Config{Issuer: "https://a.example", Audience: "a", TokenSource: ts, Algorithms: []string{HS256}}, "HS256 needs HMACSecret"},
		{Config{Issuer: "https://a.example", Audience: "a", TokenSource: ts, HMACSecret: secret, Algorithms: []string{EdDSA}}, "HS256 alone"},
		{Config{Issuer: "https://a.example", Audience: "a", TokenSource: ts, HMACSecret: secret[:31]}, "31 bytes"},
		{Config{Issuer: "https://a.example", Audience: "a", TokenSource: ts, PollInterval: 5 * time.Second}, "StaleAfter"},
		{Config{Issuer: "https://a.example", Audience: "a", TokenSource: ts, PageLimit: 10001}, "PageLimit"},
	} {
		if _, err := New(context.Background(), c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
}

func TestBearerParsing(t *testing.T) {
	for in, want := range map[string]string{
		"Bearer abc": "abc", "bearer   abc ": "abc", "BEARER abc": "abc",
		"Basic abc": "", "Bearer": "", "Bearer ": "", "abc": "",
	} {
		got, ok := bearer([]string{in})
		if got != want || ok != (want != "") {
			t.Errorf("%q: %q %v", in, got, ok)
		}
	}
	if s := quoteSafe("a\"b\\c\nd\x7fé", 100); s != "a?b?c?d???" {
		t.Errorf("quoteSafe: %q", s)
	}
}

// TestBearerTransportDropsRefusedToken: after a 401 the next request asks
// the source again; a source that gives the refused token again is an
// error saying so.
func TestBearerTransportDropsRefusedToken(t *testing.T) {
	var refuse atomic.Value
	refuse.Store("t1")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "Bearer "+refuse.Load().(string) {
			w.WriteHeader(401)
		}
	}))
	defer srv.Close()
	n := 0
	src := tokenSourceFunc(func() (*oauth2.Token, error) {
		n++
		return &oauth2.Token{AccessToken: []string{"t1", "t2", "t2"}[min(n-1, 2)], Expiry: time.Now().Add(time.Hour)}, nil
	})
	c := &http.Client{Transport: &bearerTransport{src: src, base: http.DefaultTransport, now: time.Now}}
	status := func() int {
		resp, err := c.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := status(); st != 401 {
		t.Fatalf("first: %d", st)
	}
	if st := status(); st != 200 || n != 2 {
		t.Fatalf("after a 401: %d, source asked %d times", st, n)
	}
	if st := status(); st != 200 || n != 2 {
		t.Fatalf("cached: %d, source asked %d times", st, n)
	}
	refuse.Store("t2")
	if st := status(); st != 401 {
		t.Fatal(st)
	}
	if _, err := c.Get(srv.URL); !errors.Is(err, errSameRefusedToken) {
		t.Fatalf("a caching source: %v", err)
	}
}

type tokenSourceFunc func() (*oauth2.Token, error)

func (f tokenSourceFunc) Token() (*oauth2.Token, error) { return f() }

// TestMiddlewareTrustsOnlyItsOwnClaims: claims put in the context by
// NewContext (or another Verifier) do not stand in for verification.
func TestMiddlewareTrustsOnlyItsOwnClaims(t *testing.T) {
	v := &Verifier{}
	v.closed.Store(true) // Verify answers 503 without touching anything else
	reached := false
	h := v.RequireRole("admin")(v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached = true })))
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Authorization", "Bearer a.b.c")
	req = req.WithContext(NewContext(req.Context(), &Claims{Subject: "mallory", Roles: []string{"admin"}}))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if reached || w.Code != http.StatusServiceUnavailable {
		t.Fatalf("claims from NewContext let the request through: %d %v", w.Code, reached)
	}
	if c, ok := ClaimsFrom(NewContext(context.Background(), &Claims{Subject: "ada"})); !ok || c.Subject != "ada" {
		t.Fatal("ClaimsFrom(NewContext)")
	}
}

// TestFeedTokenNeverFollowsARedirect: the feed's client adds its token to
// every request it sends, so it must not follow a redirect to another
// origin with it.
func TestFeedTokenNeverFollowsARedirect(t *testing.T) {
	var leaked atomic.Bool
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			leaked.Store(true)
		}
	}))
	defer other.Close()
	issuer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer issuer.Close()
	src := tokenSourceFunc(func() (*oauth2.Token, error) {
		return &oauth2.Token{AccessToken: "svc", Expiry: time.Now().Add(time.Hour)}, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v, err := New(ctx, Config{Issuer: issuer.URL, Audience: "rotor", TokenSource: src,
		JWKSURL: issuer.URL + "/jwks", RevocationsURL: issuer.URL + "/revocations"})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	resp, err := v.authed.Get(issuer.URL + "/revocations")
	if err == nil {
		resp.Body.Close()
		t.Fatalf("a redirect was followed: %d", resp.StatusCode)
	}
	time.Sleep(50 * time.Millisecond) // the background poller tries too
	if leaked.Load() {
		t.Fatal("the feed's token reached another origin through a redirect")
	}
}
