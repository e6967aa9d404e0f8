package verify

// Scenarios against the real Rotor binary.

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// resourceServer is a tiny resource server behind v: GET /whoami answers
// the token's subject, GET /admin needs role admin.
func resourceServer(t testing.TB, name string, v *Verifier) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("GET /whoami", v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := ClaimsFrom(r.Context())
		fmt.Fprintf(w, "%s: %s", name, c.Subject)
	})))
	mux.Handle("GET /admin", v.RequireRole("admin")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, name+": admin")
	})))
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// get calls a resource server with token; it returns the status and the
// WWW-Authenticate header.
func get(t testing.TB, u, token string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate"), string(b)
}

// refusedByBoth waits until both resource servers answer 401 for token and
// returns how long that took after the revocation.
func refusedByBoth(t testing.TB, what string, token string, servers ...*httptest.Server) time.Duration {
	t.Helper()
	start := time.Now()
	var worst time.Duration
	for _, s := range servers {
		eventually(t, 5*time.Second, what+" refused by "+s.URL, func() bool {
			st, _, _ := get(t, s.URL+"/whoami", token)
			return st == 401
		})
		worst = time.Since(start)
	}
	return worst
}

// TestTwoResourceServers is the example's scenario in-process: the bank and
// the retirement portal verify tokens of one Rotor with default settings
// (1 s poll). One login works at both; a logout, an admin revocation of a
// session and a detected refresh-token reuse are each refused by both within
// about one poll interval.
func TestTwoResourceServers(t *testing.T) {
	r := startRotor(t, rotorOpts{})
	ts := r.serviceSource()
	bankV, _ := newVerifier(t, r, ts, nil)
	retireV, _ := newVerifier(t, r, ts, nil)
	bank := resourceServer(t, "bank", bankV)
	retire := resourceServer(t, "retirement", retireV)
	const bound = 3 * time.Second // poll interval 1 s, plus the race detector's slowness

	ada := r.user("ada@example.test")
	for _, s := range []*httptest.Server{bank, retire} {
		if st, _, body := get(t, s.URL+"/whoami", ada.Access); st != 200 {
			t.Fatalf("%s refused a fresh login's token: %d %s", s.URL, st, body)
		}
	}

	// Logout.
	r.must(204, "POST", "/logout", ada.Access, nil, nil)
	if d := refusedByBoth(t, "a logged-out token", ada.Access, bank, retire); d > bound {
		t.Errorf("logout took %s to reach both", d)
	} else {
		t.Logf("logout refused by both after %s", d.Round(time.Millisecond))
	}

	// Admin revocation of one session.
	bob := r.user("bob@example.test")
	if st, _, _ := get(t, bank.URL+"/whoami", bob.Access); st != 200 {
		t.Fatalf("bob refused before revocation: %d", st)
	}
	admin := r.login(adminEmail, adminPassword)
	r.must(204, "DELETE", "/admin/sessions/"+bob.SessionID, admin.Access, nil, nil)
	if d := refusedByBoth(t, "a token of an admin-revoked session", bob.Access, bank, retire); d > bound {
		t.Errorf("admin revocation took %s to reach both", d)
	} else {
		t.Logf("admin revocation refused by both after %s", d.Round(time.Millisecond))
	}

	// Reuse: rotate, then present the old refresh token again (strict mode).
	cy := r.user("cy@example.test")
	var next tokens
	r.must(200, "POST", "/refresh", "", map[string]string{"refresh_token": cy.Refresh}, &next)
	for _, s := range []*httptest.Server{bank, retire} {
		if st, _, _ := get(t, s.URL+"/whoami", next.Access); st != 200 {
			t.Fatalf("the rotated token refused: %d", st)
		}
	}
	r.must(400, "POST", "/refresh", "", map[string]string{"refresh_token": cy.Refresh}, nil) // reuse detected
	if d := refusedByBoth(t, "the newest token after reuse", next.Access, bank, retire); d > bound {
		t.Errorf("reuse revocation took %s to reach both", d)
	} else {
		t.Logf("reuse refused by both after %s", d.Round(time.Millisecond))
	}
	_, c, _ := get(t, retire.URL+"/whoami", next.Access)
	if !strings.Contains(c, `error="invalid_token"`) || !strings.Contains(c, "revoked") {
		t.Errorf("WWW-Authenticate of a revoked token: %q", c)
	}

	// Someone else is untouched.
	dee := r.user("dee@example.test")
	for _, s := range []*httptest.Server{bank, retire} {
		if st, _, _ := get(t, s.URL+"/whoami", dee.Access); st != 200 {
			t.Fatalf("an unrelated token refused: %d", st)
		}
	}
}

// TestMiddlewareAnswers checks the HTTP answers of Middleware and
// RequireRole: RFC 6750 headers, Rotor's error body, and ClaimsFrom.
func TestMiddlewareAnswers(t *testing.T) {
	r := startRotor(t, rotorOpts{})
	v, _ := newVerifier(t, r, r.serviceSource(), nil)
	s := resourceServer(t, "bank", v)
	user := r.user("eve@example.test")
	admin := r.login(adminEmail, adminPassword)

	st, hdr, body := get(t, s.URL+"/whoami", "")
	if st != 401 || hdr != "Bearer" {
		t.Errorf("no token: %d %q (RFC 6750 §3.1: a bare challenge)", st, hdr)
	}
	var eb errorBody
	if json.Unmarshal([]byte(body), &eb) != nil || eb.Error != "invalid_token" || eb.Description == "" {
		t.Errorf("no token: body %q", body)
	}
	st, hdr, _ = get(t, s.URL+"/whoami", "not.a.jwt")
	if st != 401 || !strings.HasPrefix(hdr, `Bearer error="invalid_token", error_description="malformed token`) {
		t.Errorf("garbage: %d %q", st, hdr)
	}
	st, hdr, body = get(t, s.URL+"/admin", user.Access)
	if st != 403 || hdr != `Bearer error="insufficient_scope", error_description="this needs role admin"` {
		t.Errorf("user at /admin: %d %q %s", st, hdr, body)
	}
	if st, _, body = get(t, s.URL+"/admin", admin.Access); st != 200 || body != "bank: admin" {
		t.Errorf("admin at /admin: %d %s", st, body)
	}
	var me map[string]any
	decodeSegment(t, user.Access, 1, &me)
	if st, _, body = get(t, s.URL+"/whoami", user.Access); st != 200 || body != "bank: "+me["sub"].(string) {
		t.Errorf("ClaimsFrom: %d %q", st, body)
	}
	req, _ := http.NewRequest("GET", s.URL+"/whoami", nil)
	req.Header.Add("Authorization", "Bearer "+user.Access)
	req.Header.Add("Authorization", "Bearer "+admin.Access)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("two Authorization headers: %d", resp.StatusCode)
	}
	req, _ = http.NewRequest("GET", s.URL+"/whoami", nil)
	req.Header.Set("Authorization", "bearer   "+user.Access)
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("lower-case scheme, extra spaces: %d", resp.StatusCode)
	}
	c, err := v.Verify(context.Background(), user.Access)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != me["sub"] || c.SessionID != user.SessionID || c.ID != me["jti"] || c.Issuer != r.base ||
		!slices.Equal(c.Audience, []string{"rotor"}) || len(c.Roles) != 0 ||
		c.ExpiresAt.Unix() != int64(me["exp"].(float64)) || c.IssuedAt.Unix() != int64(me["iat"].(float64)) ||
		c.NotBefore.Unix() != int64(me["nbf"].(float64)) {
		t.Errorf("claims %+v do not match the token's %v", c, me)
	}
}

// signed makes a compact JWS over header and claims with sign (nil: no
// signature, for alg none).
func signed(t testing.TB, header, claims map[string]any, sign func(input []byte) []byte) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	input := enc(header) + "." + enc(claims)
	sig := []byte{}
	if sign != nil {
		sig = sign([]byte(input))
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func ed25519Signer(k ed25519.PrivateKey) func([]byte) []byte {
	return func(in []byte) []byte { return ed25519.Sign(k, in) }
}

// TestRefusesForgedAndMisdirectedTokens: Rotor signs with a key file the
// test holds, so besides forgeries it can sign exactly one defect at a time
// with Rotor's real key. Every case but the controls is refused, with an
// error that names the defect.
func TestRefusesForgedAndMisdirectedTokens(t *testing.T) {
	key := newKey(t)
	keys := writeKeys(t, key)
	r := startRotor(t, rotorOpts{keys: keys})
	v, _ := newVerifier(t, r, r.serviceSource(), nil)
	genuine := r.user("fay@example.test")

	// Another Rotor with the same key and issuer but another audience.
	other := startRotor(t, rotorOpts{keys: keys, issuer: r.base, env: map[string]string{"JWT_AUDIENCE": "elsewhere"}})
	misdirected := other.login(adminEmail, adminPassword)

	var header, claims map[string]any
	decodeSegment(t, genuine.Access, 0, &header)
	decodeSegment(t, genuine.Access, 1, &claims)
	with := func(m map[string]any, kv ...any) map[string]any {
		out := maps.Clone(m)
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(out, kv[i].(string))
			} else {
				out[kv[i].(string)] = kv[i+1]
			}
		}
		return out
	}
	now := time.Now().Unix()
	_, attacker, _ := ed25519.GenerateKey(rand.Reader)
	attackerX := base64.RawURLEncoding.EncodeToString(attacker.Public().(ed25519.PublicKey))
	attackerKid := thumbprint(map[string]string{"crv": "Ed25519", "kty": "OKP", "x": attackerX})
	real := ed25519Signer(key.priv)
	pub := key.priv.Public().(ed25519.PublicKey)
	hs := func(secret []byte) func([]byte) []byte {
		return func(in []byte) []byte { m := hmac.New(sha256.New, secret); m.Write(in); return m.Sum(nil) }
	}
	jwkJSON, _ := json.Marshal(map[string]string{"crv": "Ed25519", "kty": "OKP", "x": base64.RawURLEncoding.EncodeToString(pub), "kid": key.kid, "alg": "EdDSA", "use": "sig"})
	parts := strings.Split(genuine.Access, ".")
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(mustJSON(t, with(claims, "roles", []string{"admin"}))) + "." + parts[2]

	cases := []struct {
		name  string
		token string
		want  string // "" accepted; else a piece of the error
	}{
		{"control: Rotor's own token", genuine.Access, ""},
		{"control: re-signed with Rotor's key", signed(t, header, claims, real), ""},
		{"control: typ application/at+jwt", signed(t, with(header, "typ", "application/AT+JWT"), claims, real), ""},
		{"control: expired within the leeway", signed(t, header, with(claims, "exp", now-10), real), ""},
		{"signed by another key under Rotor's kid", signed(t, header, claims, ed25519Signer(attacker)), "signature is invalid"},
		{"signed by another key under its own kid", signed(t, with(header, "kid", attackerKid), claims, ed25519Signer(attacker)), "is not in the issuer's key set"},
		{"its own key in a jwk header", signed(t, with(header, "kid", attackerKid, "jwk", map[string]string{"kty": "OKP", "crv": "Ed25519", "x": attackerX}), claims, ed25519Signer(attacker)), "header jwk is refused"},
		{"jku header, real key", signed(t, with(header, "jku", "https://evil.example/jwks"), claims, real), "header jku is refused"},
		{"x5u header, real key", signed(t, with(header, "x5u", "https://evil.example/cert"), claims, real), "header x5u is refused"},
		{"x5c header, real key", signed(t, with(header, "x5c", []string{"MIIB"}), claims, real), "header x5c is refused"},
		{"crit header, real key", signed(t, with(header, "crit", []string{"exp"}), claims, real), "header crit is refused"},
		{"alg none", signed(t, with(header, "alg", "none"), claims, nil), `alg "none" is not allowed`},
		{"alg none, with a signature", signed(t, with(header, "alg", "none"), claims, real), `alg "none" is not allowed`},
		{"HS256 keyed with the public key", signed(t, with(header, "alg", "HS256"), claims, hs(pub)), `alg "HS256" is not allowed`},
		{"HS256 keyed with the JWK", signed(t, with(header, "alg", "HS256"), claims, hs(jwkJSON)), `alg "HS256" is not allowed`},
		{"ES256 under an Ed25519 kid", signed(t, with(header, "alg", "ES256"), claims, real), "is an EdDSA key, the token says alg ES256"},
		{"wrong audience, from a Rotor with another JWT_AUDIENCE", misdirected.Access, `aud [elsewhere] does not include "rotor"`},
		{"wrong audience, real key", signed(t, header, with(claims, "aud", []string{"bank-internal"}), real), "does not include"},
		{"wrong issuer, real key", signed(t, header, with(claims, "iss", "https://evil.example"), real), `iss is "https://evil.example"`},
		{"typ JWT, real key", signed(t, with(header, "typ", "JWT"), claims, real), `typ is "JWT"`},
		{"no typ, real key", signed(t, with(header, "typ", nil), claims, real), `typ is ""`},
		{"no kid, real key", signed(t, with(header, "kid", nil), claims, real), "no kid header"},
		{"expired past the leeway, real key", signed(t, header, with(claims, "exp", now-60), real), "token expired at"},
		{"nbf in the future, real key", signed(t, header, with(claims, "nbf", now+120), real), "not valid before"},
		{"iat in the future, real key", signed(t, header, with(claims, "iat", now+120), real), "in the future"},
		{"no exp, real key", signed(t, header, with(claims, "exp", nil), real), "no exp claim"},
		{"no iat, real key", signed(t, header, with(claims, "iat", nil), real), "no iat claim"},
		{"no sub, real key", signed(t, header, with(claims, "sub", nil), real), "no sub claim"},
		{"no sid, real key", signed(t, header, with(claims, "sid", nil), real), "no sid claim"},
		{"no jti, real key", signed(t, header, with(claims, "jti", nil), real), "no jti claim"},
		{"roles tampered", tampered, "signature is invalid"},
		{"two segments", parts[0] + "." + parts[1], "malformed token"},
		{"empty", "", "empty token"},
		{"huge", strings.Repeat("a", 10000), "more than"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := v.Verify(context.Background(), c.token)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want == "" && got.Subject != claims["sub"]:
				t.Fatalf("claims %+v", got)
			case c.want != "" && err == nil:
				t.Fatalf("accepted: %+v", got)
			case c.want != "" && !isRefused(err):
				t.Fatalf("not ErrInvalidToken: %v", err)
			case c.want != "" && !strings.Contains(err.Error(), c.want):
				t.Fatalf("error %q does not say %q", err, c.want)
			}
		})
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestClientIDRequirement: by default a token without client_id is refused
// (RFC 9068 §2.2); AllowMissingClientID accepts it; a token that carries it
// passes either way and ClaimsFrom shows it. A Rotor from before its client
// support emits no client_id, and its tokens are refused by default; one
// that does has them accepted. The test logs which it met.
func TestClientIDRequirement(t *testing.T) {
	key := newKey(t)
	r := startRotor(t, rotorOpts{keys: writeKeys(t, key)})
	ts := r.serviceSource()
	strict, _ := newVerifier(t, r, ts, func(c *Config) { c.AllowMissingClientID = false })
	lenient, _ := newVerifier(t, r, ts, func(c *Config) { c.AllowMissingClientID = true })
	tk := r.user("gus@example.test")

	_, err := strict.Verify(context.Background(), tk.Access)
	if rotorEmitsClientID(t, tk.Access) {
		t.Log("Rotor emits client_id: its tokens pass the default check")
		if err != nil {
			t.Fatalf("a token with client_id refused: %v", err)
		}
	} else {
		t.Log("Rotor does not emit client_id yet: the other tests verify with AllowMissingClientID")
		if !isRefused(err) || !strings.Contains(err.Error(), "no client_id claim") {
			t.Fatalf("a token without client_id, default config: %v", err)
		}
		if _, err := lenient.Verify(context.Background(), tk.Access); err != nil {
			t.Fatalf("AllowMissingClientID refused: %v", err)
		}
	}
	var header, claims map[string]any
	decodeSegment(t, tk.Access, 0, &header)
	decodeSegment(t, tk.Access, 1, &claims)
	claims["client_id"] = "bank"
	withClient := signed(t, header, claims, ed25519Signer(key.priv))
	for _, v := range []*Verifier{strict, lenient} {
		c, err := v.Verify(context.Background(), withClient)
		if err != nil || c.ClientID != "bank" {
			t.Fatalf("a token with client_id: %+v %v", c, err)
		}
	}
}

// TestHS256SharedSecret: with JWT_ALG=HS256 the verifier takes the shared
// secret instead of a JWKS, checks Rotor's kid for it, and refuses tokens of
// another secret and any asymmetric alg.
func TestHS256SharedSecret(t *testing.T) {
	secret := []byte("an HS256 shared secret of at least 32 bytes")
	r := startRotor(t, rotorOpts{env: map[string]string{"JWT_ALG": "HS256", "JWT_SECRET": string(secret)}})
	v, _ := newVerifier(t, r, r.serviceSource(), func(c *Config) { c.HMACSecret = secret })
	tk := r.user("hal@example.test")
	if _, err := v.Verify(context.Background(), tk.Access); err != nil {
		t.Fatalf("Rotor's HS256 token: %v", err)
	}
	var header, claims map[string]any
	decodeSegment(t, tk.Access, 0, &header)
	decodeSegment(t, tk.Access, 1, &claims)
	if st := v.Status(); !slices.Equal(st.KeyIDs, []string{header["kid"].(string)}) {
		t.Errorf("Status.KeyIDs %v, Rotor's kid %v", st.KeyIDs, header["kid"])
	}
	other := func(in []byte) []byte {
		m := hmac.New(sha256.New, []byte("another secret of at least 32 bytes!!")) // same kid, other secret
		m.Write(in)
		return m.Sum(nil)
	}
	_, attacker, _ := ed25519.GenerateKey(rand.Reader)
	for name, c := range map[string]struct{ tok, want string }{
		"another secret":   {signed(t, header, claims, other), "signature is invalid"},
		"another kid":      {signed(t, map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": "hs-other"}, claims, other), "is not the shared secret's"},
		"EdDSA":            {signed(t, map[string]any{"alg": "EdDSA", "typ": "at+jwt", "kid": header["kid"]}, claims, ed25519Signer(attacker)), `alg "EdDSA" is not allowed`},
		"alg none":         {signed(t, map[string]any{"alg": "none", "typ": "at+jwt", "kid": header["kid"]}, claims, nil), `alg "none" is not allowed`},
		"wrong aud signed": {signed(t, header, mapsWith(claims, "aud", "x"), hmacSigner(secret)), "does not include"},
	} {
		if _, err := v.Verify(context.Background(), c.tok); !isRefused(err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v (want %q)", name, err, c.want)
		}
	}
	if _, err := New(context.Background(), Config{Issuer: r.base, Audience: "rotor", TokenSource: r.serviceSource(), HMACSecret: secret, Algorithms: []string{"HS256", "EdDSA"}}); err == nil {
		t.Error("HS256 together with EdDSA was accepted")
	}
}

func hmacSigner(secret []byte) func([]byte) []byte {
	return func(in []byte) []byte { m := hmac.New(sha256.New, secret); m.Write(in); return m.Sum(nil) }
}

func mapsWith(m map[string]any, k string, v any) map[string]any {
	out := maps.Clone(m)
	out[k] = v
	return out
}

// TestUnknownKidRefetchIsRateLimited: a burst of tokens naming unknown kids
// causes one JWKS fetch (one at a time, the others wait for it), and none
// more within 10 s; the known key keeps working throughout.
func TestUnknownKidRefetchIsRateLimited(t *testing.T) {
	r := startRotor(t, rotorOpts{})
	p := newProxy(t, r.base)
	v, _ := newVerifier(t, r, r.serviceSource(), func(c *Config) { c.JWKSURL = p.URL + "/.well-known/jwks.json" })
	tk := r.user("ivy@example.test")
	before := p.count("/.well-known/jwks.json")
	var header, claims map[string]any
	decodeSegment(t, tk.Access, 0, &header)
	decodeSegment(t, tk.Access, 1, &claims)
	_, attacker, _ := ed25519.GenerateKey(rand.Reader)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := v.Verify(context.Background(), signed(t, mapsWith(header, "kid", fmt.Sprintf("unknown-%d", i)), claims, ed25519Signer(attacker)))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !isRefused(err) || !strings.Contains(err.Error(), "is not in the issuer's key set") {
			t.Fatalf("an unknown kid: %v", err)
		}
	}
	if n := p.count("/.well-known/jwks.json") - before; n != 1 {
		t.Errorf("100 unknown kids caused %d JWKS fetches, want 1", n)
	}
	for i := range 20 {
		if _, err := v.Verify(context.Background(), signed(t, mapsWith(header, "kid", fmt.Sprintf("again-%d", i)), claims, ed25519Signer(attacker))); !isRefused(err) {
			t.Fatal(err)
		}
	}
	if n := p.count("/.well-known/jwks.json") - before; n != 1 {
		t.Errorf("within 10 s of the first, more unknown kids caused %d fetches in all, want 1", n)
	}
	if _, err := v.Verify(context.Background(), tk.Access); err != nil {
		t.Errorf("the known key: %v", err)
	}
}

// errorsIs is errors.Is for several targets.
func errorsIs(err error, targets ...error) bool {
	for _, t := range targets {
		if !errors.Is(err, t) {
			return false
		}
	}
	return true
}

var _ = jwt.SigningMethodEdDSA

// TestES256: Rotor with JWT_ALG=ES256 and a P-256 key file; the default
// allow-list takes it, and the JWKS kid is the key's RFC 7638 thumbprint.
func TestES256(t *testing.T) {
	p := t.TempDir() + "/es256.pem"
	if out, err := exec.Command(rotorBinary(t), "keygen", "es256", "--out", p).CombinedOutput(); err != nil {
		t.Fatalf("keygen es256: %v\n%s", err, out)
	}
	r := startRotor(t, rotorOpts{keys: p, env: map[string]string{"JWT_ALG": "ES256"}})
	v, _ := newVerifier(t, r, r.serviceSource(), nil)
	tk := r.user("quinn@example.test")
	if _, err := v.Verify(context.Background(), tk.Access); err != nil {
		t.Fatal(err)
	}
	var jwks struct{ Keys []map[string]string }
	r.must(200, "GET", "/.well-known/jwks.json", "", nil, &jwks)
	k := jwks.Keys[0]
	if tp := thumbprint(map[string]string{"crv": k["crv"], "kty": k["kty"], "x": k["x"], "y": k["y"]}); k["kid"] != tp {
		t.Errorf("kid %s, thumbprint %s", k["kid"], tp)
	}
	// An allow-list without ES256 never takes Rotor's key, and says why.
	log, _ := testLogger()
	onlyEd, err := New(context.Background(), Config{Issuer: r.base, Audience: "rotor", TokenSource: r.serviceSource(), Logger: log, Algorithms: []string{EdDSA}})
	if err != nil {
		t.Fatal(err)
	}
	defer onlyEd.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := onlyEd.WaitReady(ctx); err == nil || !strings.Contains(err.Error(), "alg ES256 is not in the allow-list [EdDSA]") {
		t.Errorf("EdDSA-only against an ES256 Rotor: %v", err)
	}
}

// TestFeedTokenRevoked: an admin ends the sessions of the feed's service
// user; the verifier drops the refused token, its source logs in again, and
// revocations keep arriving without the verifier going stale.
func TestFeedTokenRevoked(t *testing.T) {
	r := startRotor(t, rotorOpts{})
	v, _ := newVerifier(t, r, r.serviceSource(), nil)
	admin := r.login(adminEmail, adminPassword)
	var svc struct {
		ID string `json:"id"`
	}
	r.must(200, "GET", "/admin/users?email="+svcEmail, admin.Access, nil, &svc)
	r.must(200, "DELETE", "/admin/users/"+svc.ID+"/sessions", admin.Access, nil, nil)
	tk := r.user("rae@example.test")
	r.must(204, "POST", "/logout", tk.Access, nil, nil)
	eventually(t, 4*time.Second, "a logout after the feed's token was revoked", func() bool {
		_, err := v.Verify(context.Background(), tk.Access)
		return errors.Is(err, ErrRevoked)
	})
	if st := v.Status(); st.Stale || st.FeedError != "" {
		t.Errorf("Status: %+v", st)
	}
}

// ccSource fetches a new client_credentials token on each call.
type ccSource struct{ cfg *clientcredentials.Config }

func (s ccSource) Token() (*oauth2.Token, error) { return s.cfg.Token(context.Background()) }

// TestClientCredentialsFeed is the production set-up: the feed is read with
// Rotor's client_credentials grant (client_secret_basic) for a confidential
// client with role introspect. Disabling the client ends its tokens; the
// verifier reports it and recovers once the client is enabled again. A
// caching source (clientcredentials.Config.TokenSource) cannot recover
// before its token expires, and the error says so.
func TestClientCredentialsFeed(t *testing.T) {
	r := startRotor(t, rotorOpts{})
	admin := r.login(adminEmail, adminPassword)
	var client struct {
		Secret string `json:"client_secret"`
	}
	r.must(201, "POST", "/admin/clients", admin.Access, map[string]any{"client_id": "bank-feed", "type": "confidential", "roles": []string{"introspect"}}, &client)
	cc := &clientcredentials.Config{ClientID: "bank-feed", ClientSecret: client.Secret, TokenURL: r.base + "/token", AuthStyle: oauth2.AuthStyleInHeader}
	fetching, _ := newVerifier(t, r, ccSource{cc}, nil)
	caching, _ := newVerifier(t, r, cc.TokenSource(context.Background()), nil)
	tk := r.user("sam@example.test")
	r.must(204, "POST", "/logout", tk.Access, nil, nil)
	for _, v := range []*Verifier{fetching, caching} {
		eventually(t, 4*time.Second, "a logout, feed read with client credentials", func() bool {
			_, err := v.Verify(context.Background(), tk.Access)
			return errors.Is(err, ErrRevoked)
		})
	}

	// A client's own token (sub = the client id) ends when it is disabled.
	var batch struct {
		Secret string `json:"client_secret"`
	}
	r.must(201, "POST", "/admin/clients", admin.Access, map[string]any{"client_id": "batch-job", "type": "confidential"}, &batch)
	job, err := (&clientcredentials.Config{ClientID: "batch-job", ClientSecret: batch.Secret, TokenURL: r.base + "/token"}).Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c, err := fetching.Verify(context.Background(), job.AccessToken)
	if err != nil || c.Subject != "batch-job" || c.ClientID != "batch-job" {
		t.Fatalf("a client_credentials token: %+v %v", c, err)
	}
	r.must(200, "PATCH", "/admin/clients/batch-job", admin.Access, map[string]any{"disabled": true}, nil)
	for _, v := range []*Verifier{fetching, caching} {
		eventually(t, 4*time.Second, "the token of a disabled client", func() bool {
			_, err := v.Verify(context.Background(), job.AccessToken)
			return errors.Is(err, ErrRevoked)
		})
	}

	r.must(200, "PATCH", "/admin/clients/bank-feed", admin.Access, map[string]any{"disabled": true}, nil)
	eventually(t, 4*time.Second, "the feed's client disabled: reported", func() bool {
		return strings.Contains(fetching.Status().FeedError, "invalid_client")
	})
	r.must(200, "PATCH", "/admin/clients/bank-feed", admin.Access, map[string]any{"disabled": false}, nil)
	tk2 := r.user("tim@example.test")
	r.must(204, "POST", "/logout", tk2.Access, nil, nil)
	eventually(t, 4*time.Second, "a logout after the client was enabled again", func() bool {
		_, err := fetching.Verify(context.Background(), tk2.Access)
		return errors.Is(err, ErrRevoked)
	})
	if st := caching.Status(); !strings.Contains(st.FeedError, "gave again the token the issuer just refused") {
		t.Errorf("a caching source after its token was refused: %q", st.FeedError)
	}
}
