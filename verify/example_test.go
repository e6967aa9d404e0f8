package verify_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/rotorauth/rotor/verify"
)

// demoIssuer stands in for Rotor in these examples: the same metadata,
// JWKS, token shape and revocation feed, in-process (the package's own tests
// run against the real Rotor binary).
type demoIssuer struct {
	*httptest.Server
	key ed25519.PrivateKey
	kid string

	mu      sync.Mutex
	revoked []string // session ids, in feed order
}

func startDemoIssuer() *demoIssuer {
	seed := sha256.Sum256([]byte("demo issuer key"))
	d := &demoIssuer{key: ed25519.NewKeyFromSeed(seed[:])}
	x := base64.RawURLEncoding.EncodeToString(d.key.Public().(ed25519.PublicKey))
	tp := sha256.Sum256([]byte(`{"crv":"Ed25519","kty":"OKP","x":"` + x + `"}`)) // RFC 7638
	d.kid = base64.RawURLEncoding.EncodeToString(tp[:])
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"issuer": d.URL, "jwks_uri": d.URL + "/.well-known/jwks.json"})
	})
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{
			{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": d.kid, "alg": "EdDSA", "use": "sig"}}})
	})
	mux.HandleFunc("GET /revocations", func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		since, _ := strconv.Atoi(r.URL.Query().Get("since"))
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		d.mu.Lock()
		defer d.mu.Unlock()
		end := min(len(d.revoked), since+limit)
		type entry struct {
			Sid   string    `json:"sid"`
			Until time.Time `json:"until"`
		}
		page := []entry{}
		for _, sid := range d.revoked[since:end] {
			page = append(page, entry{sid, time.Now().Add(time.Hour)})
		}
		json.NewEncoder(w).Encode(map[string]any{"cursor": strconv.Itoa(end), "has_more": end < len(d.revoked),
			"sessions": page, "tokens": []entry{}})
	})
	d.Server = httptest.NewServer(mux)
	return d
}

// issue signs an access token as Rotor does.
func (d *demoIssuer) issue(sub, sid string, roles ...string) string {
	now := time.Now()
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{
		"iss": d.URL, "aud": []string{"rotor"}, "sub": sub, "sid": sid, "jti": sid + "-" + strconv.FormatInt(now.UnixNano(), 36),
		"client_id": "web", "roles": roles, "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(15 * time.Minute).Unix(),
	})
	t.Header["typ"], t.Header["kid"] = "at+jwt", d.kid
	s, err := t.SignedString(d.key)
	if err != nil {
		panic(err)
	}
	return s
}

func (d *demoIssuer) revokeSessions(sids ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.revoked = append(d.revoked, sids...)
}

// quiet keeps the examples' output to what they print.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// A resource server verifies Rotor's access tokens offline; revocations
// arrive through the feed, polled with a token of role introspect.
func Example() {
	rotor := startDemoIssuer()
	defer rotor.Close()
	ctx := context.Background()

	v, err := verify.New(ctx, verify.Config{
		Issuer:      rotor.URL, // Rotor's JWT_ISSUER
		Audience:    "rotor",   // Rotor's JWT_AUDIENCE
		TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "a token with role introspect"}),
		Logger:      quiet,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()
	if err := v.WaitReady(ctx); err != nil { // keys loaded, one poll done
		log.Fatal(err)
	}

	c, err := v.Verify(ctx, rotor.issue("ada", "session-1", "customer"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(c.Subject, c.SessionID, c.ClientID, c.Roles)

	_, err = v.Verify(ctx, "eyJhbGciOiJub25lIn0.e30.")
	fmt.Println(errors.Is(err, verify.ErrInvalidToken), err)
	// Output:
	// ada session-1 web [customer]
	// true verify: invalid access token: alg "none" is not allowed (allowed: EdDSA, ES256)
}

// A logout, an admin revocation or a detected reuse at Rotor puts the
// session in the feed; the next poll refuses its tokens.
func Example_revocation() {
	rotor := startDemoIssuer()
	defer rotor.Close()
	ctx := context.Background()
	v, err := verify.New(ctx, verify.Config{
		Issuer: rotor.URL, Audience: "rotor", Logger: quiet,
		TokenSource:  oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "introspect"}),
		PollInterval: 50 * time.Millisecond,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()
	if err := v.WaitReady(ctx); err != nil {
		log.Fatal(err)
	}
	token := rotor.issue("ada", "session-1")
	_, err = v.Verify(ctx, token)
	fmt.Println("before logout:", err)

	rotor.revokeSessions("session-1")
	for err == nil {
		time.Sleep(10 * time.Millisecond)
		_, err = v.Verify(ctx, token)
	}
	fmt.Println("after logout:", errors.Is(err, verify.ErrRevoked), errors.Is(err, verify.ErrInvalidToken))
	fmt.Println(strings.SplitN(err.Error(), " (", 2)[0])
	// Output:
	// before logout: <nil>
	// after logout: true true
	// verify: access token revoked: session session-1 was revoked
}

// Middleware answers RFC 6750 errors and passes the claims on.
func ExampleVerifier_Middleware() {
	rotor := startDemoIssuer()
	defer rotor.Close()
	v, err := verify.New(context.Background(), verify.Config{
		Issuer: rotor.URL, Audience: "rotor", Logger: quiet,
		TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "introspect"}),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()
	if err := v.WaitReady(context.Background()); err != nil {
		log.Fatal(err)
	}
	accounts := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := verify.ClaimsFrom(r.Context())
		fmt.Fprintf(w, "accounts of %s", c.Subject)
	}))

	for _, token := range []string{rotor.issue("ada", "s1"), "", "not-a-jwt"} {
		req := httptest.NewRequest("GET", "/accounts", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		accounts.ServeHTTP(w, req)
		fmt.Println(w.Code, w.Header().Get("WWW-Authenticate"), strings.TrimSpace(w.Body.String()))
	}
	// Output:
	// 200  accounts of ada
	// 401 Bearer {"error":"invalid_token","error_description":"the request has no bearer access token"}
	// 401 Bearer error="invalid_token", error_description="malformed token: token contains an invalid number of segments" {"error":"invalid_token","error_description":"malformed token: token contains an invalid number of segments"}
}

// RequireRole answers 403 insufficient_scope to a token without the role.
func ExampleVerifier_RequireRole() {
	rotor := startDemoIssuer()
	defer rotor.Close()
	v, err := verify.New(context.Background(), verify.Config{
		Issuer: rotor.URL, Audience: "rotor", Logger: quiet,
		TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "introspect"}),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()
	if err := v.WaitReady(context.Background()); err != nil {
		log.Fatal(err)
	}
	audit := v.RequireRole("auditor", "admin")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "the audit log")
	}))
	for _, token := range []string{rotor.issue("ada", "s1", "customer"), rotor.issue("bo", "s2", "auditor")} {
		req := httptest.NewRequest("GET", "/audit", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		w := httptest.NewRecorder()
		audit.ServeHTTP(w, req)
		fmt.Println(w.Code, w.Header().Get("WWW-Authenticate"))
	}
	// Output:
	// 403 Bearer error="insufficient_scope", error_description="this needs role auditor or admin"
	// 200
}

// Status is what a health endpoint reports.
func ExampleVerifier_Status() {
	rotor := startDemoIssuer()
	defer rotor.Close()
	rotor.revokeSessions("s1", "s2", "s3")
	v, err := verify.New(context.Background(), verify.Config{
		Issuer: rotor.URL, Audience: "rotor", Logger: quiet, PageLimit: 2,
		TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "introspect"}),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()
	if err := v.WaitReady(context.Background()); err != nil {
		log.Fatal(err)
	}
	st := v.Status()
	fmt.Println("ready:", st.Ready, "stale:", st.Stale, "keys:", len(st.KeyIDs), "denied sessions:", st.DeniedSessions, "cursor:", st.Cursor)
	// Output:
	// ready: true stale: false keys: 1 denied sessions: 3 cursor: 3
}

// NewContext lets handler tests run without tokens.
func ExampleNewContext() {
	handler := func(w http.ResponseWriter, r *http.Request) {
		c, ok := verify.ClaimsFrom(r.Context())
		if !ok || !c.HasRole("admin") {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		fmt.Fprintln(w, "hello", c.Subject)
	}
	req := httptest.NewRequest("GET", "/", nil)
	req = req.WithContext(verify.NewContext(req.Context(), &verify.Claims{Subject: "ada", Roles: []string{"admin"}}))
	w := httptest.NewRecorder()
	handler(w, req)
	fmt.Print(w.Body.String())
	// Output:
	// hello ada
}

// ccSource fetches a new client_credentials token on each call; the
// Verifier caches it and asks again when Rotor refuses one.
type ccSource struct {
	ctx context.Context
	cfg *clientcredentials.Config
}

func (s ccSource) Token() (*oauth2.Token, error) { return s.cfg.Token(s.ctx) }

// In production the feed's token comes from Rotor's client_credentials
// grant (client_secret_basic), for a client holding role introspect.
func ExampleConfig_clientCredentials() {
	ctx := context.Background()
	cc := &clientcredentials.Config{
		ClientID:     "bank",
		ClientSecret: "the bank's client secret",
		TokenURL:     "https://auth.example.com/token",
		AuthStyle:    oauth2.AuthStyleInHeader, // client_secret_basic
	}
	v, err := verify.New(ctx, verify.Config{
		Issuer:      "https://auth.example.com",
		Audience:    "rotor",
		TokenSource: ccSource{ctx, cc},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()
	// … WaitReady, then v.Middleware(handler).
}
