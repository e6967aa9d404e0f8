package main

// OAuth clients against the whole program (run on a scratch PostgreSQL
// database): golang.org/x/oauth2's client_credentials, the RFC 9068 claims of
// client and user tokens, every refusal over HTTP, disabling a client seen by
// a second instance, the `server clients …` commands, and one issuer serving
// two apps in browser mode.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/rotorauth/rotor/internal/store/postgres/pgtest"
	"github.com/rotorauth/rotor/internal/tokens"
)

const (
	clAdminEmail    = "clients-admin@example.test"
	clAdminPassword = "clients admin password"
	clUserPassword  = "clients user password"
)

// clSuffix makes ids and emails unique: every test of the package shares
// one database.
func clSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// clEnv is pgEnv with a small pool (max_connections is shared by every
// test on the machine) and a bootstrap admin.
func clEnv(t *testing.T, keys string) map[string]string {
	t.Helper()
	vars := pgEnv(t, keys)
	vars["DATABASE_URL"] = smallPool(t, db.URL)
	vars["BOOTSTRAP_ADMIN_EMAIL"] = clAdminEmail
	vars["BOOTSTRAP_ADMIN_PASSWORD"] = clAdminPassword
	return vars
}

// clWriteFile writes a clients file and returns its path.
func clWriteFile(t *testing.T, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "clients.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// clResp is one answer.
type clResp struct {
	status  int
	header  http.Header
	raw     string
	body    map[string]any
	cookies []*http.Cookie
}

// code is the answer's OAuth error code.
func (r clResp) code() string { s, _ := r.body["error"].(string); return s }

func (r clResp) str(k string) string { s, _ := r.body[k].(string); return s }

func (r clResp) String() string { return fmt.Sprintf("%d %s", r.status, strings.TrimSpace(r.raw)) }

// clDo sends one request. body is nil, a JSON string, or url.Values (a
// form); hdr are header name/value pairs.
func clDo(t *testing.T, method, u string, body any, hdr ...string) clResp {
	t.Helper()
	var rd io.Reader
	ctype := ""
	switch b := body.(type) {
	case nil:
	case string:
		rd, ctype = strings.NewReader(b), "application/json"
	case url.Values:
		rd, ctype = strings.NewReader(b.Encode()), "application/x-www-form-urlencoded"
	default:
		t.Fatalf("body %T", body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := clResp{status: resp.StatusCode, header: resp.Header, raw: string(raw), cookies: resp.Cookies()}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// clJSON marshals v for a request body.
func clJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// basicAuth is client_secret_basic: id and secret form-urlencoded, then
// base64 (RFC 6749 §2.3.1).
func basicAuth(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

func bearerAuth(at string) string { return "Bearer " + at }

// clAdmin logs the bootstrap admin in and returns its access token.
func clAdmin(t *testing.T, base string) string {
	t.Helper()
	r := clDo(t, "POST", base+"/token", clJSON(map[string]string{"username": clAdminEmail, "password": clAdminPassword}))
	if r.status != 200 {
		t.Fatalf("admin login: %v", r)
	}
	return r.str("access_token")
}

// clCreateClient creates a client through the admin API and returns its
// secret ("" for a public client).
func clCreateClient(t *testing.T, base, admin string, spec map[string]any) string {
	t.Helper()
	r := clDo(t, "POST", base+"/admin/clients", clJSON(spec), "Authorization", bearerAuth(admin))
	if r.status != 201 {
		t.Fatalf("create client %v: %v", spec["client_id"], r)
	}
	return r.str("client_secret")
}

// clSignup creates a user and returns its id.
func clSignup(t *testing.T, base, email string) string {
	t.Helper()
	r := clDo(t, "POST", base+"/users", clJSON(map[string]string{"email": email, "password": clUserPassword}))
	if r.status != 201 {
		t.Fatalf("signup %s: %v", email, r)
	}
	return r.str("id")
}

// clLogin logs email in as client (none: the default client) in body mode.
func clLogin(t *testing.T, base, client, email string) clResp {
	t.Helper()
	req := map[string]string{"username": email, "password": clUserPassword}
	if client != "" {
		req["client_id"] = client
	}
	r := clDo(t, "POST", base+"/token", clJSON(req))
	if r.status != 200 {
		t.Fatalf("login of %s at client %q: %v", email, client, r)
	}
	return r
}

// clCC gets a client_credentials token with client_secret_basic.
func clCC(t *testing.T, base, id, secret string) clResp {
	t.Helper()
	return clDo(t, "POST", base+"/token", url.Values{"grant_type": {"client_credentials"}}, "Authorization", basicAuth(id, secret))
}

// clMustCC is clCC that must succeed; it returns the access token.
func clMustCC(t *testing.T, base, id, secret string) string {
	t.Helper()
	r := clCC(t, base, id, secret)
	if r.status != 200 || r.str("access_token") == "" {
		t.Fatalf("client_credentials of %s: %v", id, r)
	}
	return r.str("access_token")
}

// wantInvalidClient checks an answer is RFC 6749 §5.2's invalid_client:
// 401 with a WWW-Authenticate Basic challenge.
func wantInvalidClient(t *testing.T, what string, r clResp) {
	t.Helper()
	if r.status != 401 || r.code() != "invalid_client" {
		t.Errorf("%s: %v, want 401 invalid_client", what, r)
		return
	}
	if h := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Basic ") {
		t.Errorf("%s: WWW-Authenticate %q, want a Basic challenge", what, h)
	}
}

func wantError(t *testing.T, what string, r clResp, status int, code string) {
	t.Helper()
	if r.status != status || r.code() != code {
		t.Errorf("%s: %v, want %d %s", what, r, status, code)
	}
}

// jwtParts decodes a JWT's header and claims without verifying it.
func jwtParts(t *testing.T, tok string) (hdr, claims map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	for i, dst := range []*map[string]any{&hdr, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatalf("JWT part %d: %v", i, err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatalf("JWT part %d: %v", i, err)
		}
	}
	return hdr, claims
}

// verifyWithJWKS checks tok's signature with the key Rotor publishes, as a
// resource server would, and returns its claims.
func verifyWithJWKS(t *testing.T, base, tok string) jwt.MapClaims {
	t.Helper()
	r := clDo(t, "GET", base+"/.well-known/jwks.json", nil)
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal([]byte(r.raw), &set); err != nil || r.status != 200 {
		t.Fatalf("JWKS: %v", r)
	}
	claims := jwt.MapClaims{}
	_, err := jwt.NewParser(jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithExpirationRequired()).ParseWithClaims(tok, claims,
		func(tk *jwt.Token) (any, error) {
			for _, k := range set.Keys {
				if k["kid"] == tk.Header["kid"] && k["kty"] == "OKP" && k["crv"] == "Ed25519" {
					x, err := base64.RawURLEncoding.DecodeString(k["x"])
					return ed25519.PublicKey(x), err
				}
			}
			return nil, fmt.Errorf("kid %v is not in the JWKS", tk.Header["kid"])
		})
	if err != nil {
		t.Fatalf("the token does not verify with the JWKS: %v", err)
	}
	return claims
}

// audOf is the aud claim as a list (a JSON string or array).
func audOf(claims map[string]any) []string {
	switch a := claims["aud"].(type) {
	case string:
		return []string{a}
	case []any:
		var out []string
		for _, v := range a {
			s, _ := v.(string)
			out = append(out, s)
		}
		return out
	}
	return nil
}

// checkAccessClaims checks the RFC 9068 header and claims of an access
// token: typ at+jwt, iss, sub, aud = the client's audience (only), exp, iat,
// jti, client_id.
func checkAccessClaims(t *testing.T, base, tok, iss, sub, aud, clientID string) map[string]any {
	t.Helper()
	hdr, claims := jwtParts(t, tok)
	if hdr["typ"] != "at+jwt" {
		t.Errorf("typ header %v, want at+jwt (RFC 9068 §2.1)", hdr["typ"])
	}
	if hdr["alg"] != "EdDSA" || hdr["kid"] == nil {
		t.Errorf("header %v: want alg EdDSA and a kid", hdr)
	}
	if claims["iss"] != iss {
		t.Errorf("iss %v, want %s", claims["iss"], iss)
	}
	if claims["sub"] != sub {
		t.Errorf("sub %v, want %s", claims["sub"], sub)
	}
	if got := audOf(claims); !slices.Equal(got, []string{aud}) {
		t.Errorf("aud %v, want [%s]", got, aud)
	}
	if claims["client_id"] != clientID {
		t.Errorf("client_id %v, want %s", claims["client_id"], clientID)
	}
	exp, _ := claims["exp"].(float64)
	iat, _ := claims["iat"].(float64)
	if d := time.Since(time.Unix(int64(iat), 0)); d < -time.Minute || d > time.Minute {
		t.Errorf("iat %v is %v from now", iat, d)
	}
	if exp-iat != 900 { // ACCESS_TOKEN_TTL default 15m
		t.Errorf("exp - iat = %v s, want 900", exp-iat)
	}
	if jti, _ := claims["jti"].(string); uuid.Validate(jti) != nil {
		t.Errorf("jti %v is not a UUID", claims["jti"])
	}
	if sid, _ := claims["sid"].(string); uuid.Validate(sid) != nil {
		t.Errorf("sid %v is not a UUID", claims["sid"])
	}
	verified := verifyWithJWKS(t, base, tok)
	if verified["client_id"] != clientID || verified["sub"] != sub {
		t.Errorf("verified claims %v", verified)
	}
	return claims
}

// refusedWithin polls probe until it answers status (a refusal, or 200 to
// wait for acceptance), failing after within; it returns how long that took.
func refusedWithin(t *testing.T, within time.Duration, what string, status int, probe func() clResp) time.Duration {
	t.Helper()
	began := time.Now()
	for {
		r := probe()
		if r.status == status {
			return time.Since(began)
		}
		if time.Since(began) > within {
			t.Fatalf("%s: still %v after %v, want %d", what, r, within, status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestOAuthClientCredentialsLibrary: golang.org/x/oauth2/clientcredentials
// gets a token for a confidential client from a CLIENTS_FILE (secret from
// secret_env), with client_secret_basic and with client_secret_post, and its
// HTTP client reads /revocations with it. Both that token and a user's token
// from a public client carry RFC 9068's claims.
func TestOAuthClientCredentialsLibrary(t *testing.T) {
	pgtest.Require(t, db)
	sfx := clSuffix()
	rsID, spaID := "rs-"+sfx, "spa-"+sfx
	rsAud, spaAud := "feed-"+sfx, "spa-api-"+sfx
	// Characters that form-urlencoding must carry through Basic (RFC 6749
	// §2.3.1): ':' '+' '%' '/' and a space.
	secret := "rs:secret+with%special/chars " + sfx + strings.Repeat("x", 16)
	const iss = "https://issuer.example"
	file := clWriteFile(t, map[string]any{"clients": []map[string]any{
		{"client_id": rsID, "name": "Resource server", "type": "confidential", "grant_types": []string{"client_credentials"},
			"audience": rsAud, "roles": []string{"introspect"}, "secret_env": "RS_CLIENT_SECRET"},
		{"client_id": spaID, "type": "public", "allowed_origins": []string{"https://spa.example"}, "audience": spaAud},
	}})
	vars := clEnv(t, writeKeys(t))
	vars["CLIENTS_FILE"] = file
	vars["RS_CLIENT_SECRET"] = secret
	vars["JWT_ISSUER"] = iss
	in := start(t, vars)
	if !strings.Contains(in.logs.String(), `"msg":"clients file applied","created":2`) {
		t.Errorf("no log line of the clients file: %s", in.logs.String())
	}

	meta := clDo(t, "GET", in.base+"/.well-known/oauth-authorization-server", nil)
	for _, want := range []string{`"client_credentials"`, `"client_secret_basic"`, `"client_secret_post"`, `"token_endpoint":"` + iss + `/token"`} {
		if !strings.Contains(meta.raw, want) {
			t.Errorf("RFC 8414 metadata lacks %s: %s", want, meta.raw)
		}
	}

	hc := &http.Client{Timeout: 10 * time.Second}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, hc)
	for _, style := range []struct {
		name  string
		style oauth2.AuthStyle
	}{{"client_secret_basic", oauth2.AuthStyleInHeader}, {"client_secret_post", oauth2.AuthStyleInParams}} {
		t.Run(style.name, func(t *testing.T) {
			cfg := clientcredentials.Config{ClientID: rsID, ClientSecret: secret, TokenURL: in.base + "/token", AuthStyle: style.style}
			if style.style == oauth2.AuthStyleInParams {
				cfg.Scopes = []string{"ignored"} // scope is accepted and ignored
			}
			tok, err := cfg.Token(ctx)
			if err != nil {
				t.Fatalf("Token: %v", err)
			}
			if tok.TokenType != "Bearer" || tok.RefreshToken != "" {
				t.Errorf("token type %q, refresh token %q: want Bearer and none (RFC 6749 §4.4.3)", tok.TokenType, tok.RefreshToken)
			}
			if d := time.Until(tok.Expiry); d < 14*time.Minute || d > 16*time.Minute {
				t.Errorf("expires in %v, want 15m", d)
			}
			claims := checkAccessClaims(t, in.base, tok.AccessToken, iss, rsID, rsAud, rsID)
			if roles, _ := claims["roles"].([]any); len(roles) != 1 || roles[0] != "introspect" {
				t.Errorf("roles %v, want [introspect]", claims["roles"])
			}
			if _, ok := claims["email"]; ok {
				t.Errorf("a client's own token carries an email: %v", claims)
			}
			resp, err := cfg.Client(ctx).Get(in.base + "/revocations")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(b), `"cursor"`) {
				t.Fatalf("GET /revocations with the oauth2 client: %d %s", resp.StatusCode, b)
			}
			// The wrong secret: the library reports RFC 6749's error.
			bad := cfg
			bad.ClientSecret = secret + "x"
			_, err = bad.Token(ctx)
			var re *oauth2.RetrieveError
			if !errors.As(err, &re) || re.ErrorCode != "invalid_client" || re.Response.StatusCode != 401 {
				t.Errorf("wrong secret: %v, want 401 invalid_client", err)
			}
		})
	}

	// A user's token from the public client.
	email := "oauth-" + sfx + "@example.test"
	uid := clSignup(t, in.base, email)
	login := clLogin(t, in.base, spaID, email)
	claims := checkAccessClaims(t, in.base, login.str("access_token"), iss, uid, spaAud, spaID)
	if claims["sid"] != login.str("session_id") || claims["email"] != email {
		t.Errorf("user token claims %v, want sid %s and email %s", claims, login.str("session_id"), email)
	}
	// The default client's token has JWT_AUDIENCE and client_id default.
	def := clLogin(t, in.base, "", email)
	checkAccessClaims(t, in.base, def.str("access_token"), iss, uid, "rotor", tokens.DefaultClientID)

	// The confidential client introspects with its own credentials.
	r := clDo(t, "POST", in.base+"/introspect", url.Values{"token": {login.str("access_token")}}, "Authorization", basicAuth(rsID, secret))
	if r.status != 200 || r.body["active"] != true || r.str("client_id") != spaID || r.str("sub") != uid || r.str("token_type") != "Bearer" {
		t.Errorf("introspection with client_secret_basic: %v", r)
	}
	r = clDo(t, "POST", in.base+"/introspect", url.Values{"token": {login.str("access_token")}, "client_id": {rsID}, "client_secret": {secret}})
	if r.status != 200 || r.body["active"] != true || !strings.Contains(r.raw, spaAud) {
		t.Errorf("introspection with client_secret_post: %v", r)
	}
}

// TestClientRefusals: every way a client is refused, over HTTP.
func TestClientRefusals(t *testing.T) {
	pgtest.Require(t, db)
	in := start(t, clEnv(t, writeKeys(t)))
	base := in.base
	admin := clAdmin(t, base)
	sfx := clSuffix()
	ccID, srvID, aID, bID, offID := "cc-"+sfx, "srv-"+sfx, "a-"+sfx, "b-"+sfx, "off-"+sfx
	ccSecret := clCreateClient(t, base, admin, map[string]any{"client_id": ccID, "type": "confidential", "roles": []string{"introspect"}, "audience": "cc-aud"})
	srvSecret := clCreateClient(t, base, admin, map[string]any{"client_id": srvID, "type": "confidential",
		"grant_types": []string{"password", "refresh_token"}, "audience": "srv-aud"})
	clCreateClient(t, base, admin, map[string]any{"client_id": aID, "type": "public", "audience": "a-aud"})
	clCreateClient(t, base, admin, map[string]any{"client_id": bID, "type": "public", "audience": "b-aud"})
	clCreateClient(t, base, admin, map[string]any{"client_id": offID, "type": "public", "audience": "off-aud"})
	offCCSecret := clCreateClient(t, base, admin, map[string]any{"client_id": offID + "-cc", "type": "confidential", "audience": "off-aud"})
	if ccSecret == "" || srvSecret == "" || offCCSecret == "" || !strings.HasPrefix(ccSecret, tokens.ClientSecretPrefix) {
		t.Fatalf("secrets %q %q %q", ccSecret, srvSecret, offCCSecret)
	}
	email := "refusals-" + sfx + "@example.test"
	clSignup(t, base, email)
	cc := url.Values{"grant_type": {"client_credentials"}}
	pw := func(extra ...string) url.Values {
		v := url.Values{"grant_type": {"password"}, "username": {email}, "password": {clUserPassword}}
		for i := 0; i+1 < len(extra); i += 2 {
			v.Set(extra[i], extra[i+1])
		}
		return v
	}

	t.Run("invalid_client", func(t *testing.T) {
		wantInvalidClient(t, "unknown client (Basic)", clDo(t, "POST", base+"/token", cc, "Authorization", basicAuth("nobody-"+sfx, ccSecret)))
		wantInvalidClient(t, "unknown client (post)", clDo(t, "POST", base+"/token", url.Values{"grant_type": {"client_credentials"},
			"client_id": {"nobody-" + sfx}, "client_secret": {ccSecret}}))
		wantInvalidClient(t, "unknown public client", clDo(t, "POST", base+"/token", pw("client_id", "nobody-"+sfx)))
		wantInvalidClient(t, "unknown client in JSON", clDo(t, "POST", base+"/token",
			clJSON(map[string]string{"username": email, "password": clUserPassword, "client_id": "nobody-" + sfx})))
		wantInvalidClient(t, "wrong secret (Basic)", clDo(t, "POST", base+"/token", cc, "Authorization", basicAuth(ccID, ccSecret+"x")))
		wantInvalidClient(t, "wrong secret (post)", clDo(t, "POST", base+"/token", url.Values{"grant_type": {"client_credentials"},
			"client_id": {ccID}, "client_secret": {srvSecret}}))
		wantInvalidClient(t, "another client's secret", clDo(t, "POST", base+"/token", cc, "Authorization", basicAuth(ccID, srvSecret)))
		wantInvalidClient(t, "empty secret (Basic)", clDo(t, "POST", base+"/token", cc, "Authorization", basicAuth(ccID, "")))
		wantInvalidClient(t, "missing secret", clDo(t, "POST", base+"/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {ccID}}))
		wantInvalidClient(t, "missing secret, password grant", clDo(t, "POST", base+"/token", pw("client_id", srvID)))
		wantInvalidClient(t, "a secret for a public client (post)", clDo(t, "POST", base+"/token", pw("client_id", aID, "client_secret", ccSecret)))
		wantInvalidClient(t, "a secret for a public client (Basic)", clDo(t, "POST", base+"/token", pw(), "Authorization", basicAuth(aID, "anything at all of 32 bytes or more")))
		wantInvalidClient(t, "a secret for the default client", clDo(t, "POST", base+"/token", pw(), "Authorization", basicAuth(tokens.DefaultClientID, ccSecret)))
		wantInvalidClient(t, "malformed Basic", clDo(t, "POST", base+"/token", cc, "Authorization", "Basic not-base64!"))
		// Control: the same login at the public client, named properly.
		if r := clDo(t, "POST", base+"/token", pw("client_id", aID)); r.status != 200 {
			t.Errorf("control: login at public client %s: %v", aID, r)
		}

		// Disabled clients.
		if r := clDo(t, "POST", base+"/token", pw("client_id", offID)); r.status != 200 {
			t.Fatalf("login at %s before it was disabled: %v", offID, r)
		}
		clMustCC(t, base, offID+"-cc", offCCSecret)
		for _, id := range []string{offID, offID + "-cc"} {
			r := clDo(t, "PATCH", base+"/admin/clients/"+id, `{"disabled":true}`, "Authorization", bearerAuth(admin))
			if r.status != 200 || r.body["disabled"] != true {
				t.Fatalf("disable %s: %v", id, r)
			}
		}
		wantInvalidClient(t, "disabled public client", clDo(t, "POST", base+"/token", pw("client_id", offID)))
		wantInvalidClient(t, "disabled confidential client, right secret", clCC(t, base, offID+"-cc", offCCSecret))
	})

	t.Run("unauthorized_client", func(t *testing.T) {
		wantError(t, "public client asks for client_credentials", clDo(t, "POST", base+"/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {aID}}), 400, "unauthorized_client")
		wantError(t, "default client asks for client_credentials", clDo(t, "POST", base+"/token", cc), 400, "unauthorized_client")
		wantError(t, "client_credentials-only client asks for password", clDo(t, "POST", base+"/token", pw(), "Authorization", basicAuth(ccID, ccSecret)), 400, "unauthorized_client")
		wantError(t, "password/refresh client asks for client_credentials", clCC(t, base, srvID, srvSecret), 400, "unauthorized_client")
		login := clLogin(t, base, aID, email)
		wantError(t, "client_credentials-only client asks for refresh_token", clDo(t, "POST", base+"/token",
			url.Values{"grant_type": {"refresh_token"}, "refresh_token": {login.str("refresh_token")}}, "Authorization", basicAuth(ccID, ccSecret)), 400, "unauthorized_client")
		wantError(t, "POST /refresh by a client_credentials-only client", clDo(t, "POST", base+"/refresh",
			url.Values{"refresh_token": {login.str("refresh_token")}}, "Authorization", basicAuth(ccID, ccSecret)), 400, "unauthorized_client")
		// None of these touched the session: its token still rotates.
		if r := clDo(t, "POST", base+"/refresh", clJSON(map[string]string{"refresh_token": login.str("refresh_token"), "client_id": aID})); r.status != 200 {
			t.Errorf("the session's token after refused grants: %v", r)
		}
	})

	t.Run("another client's refresh token", func(t *testing.T) {
		login := clLogin(t, base, aID, email)
		rt, sid := login.str("refresh_token"), login.str("session_id")
		before := clSession(t, base, login.str("access_token"), sid)
		for _, c := range []struct {
			what string
			r    func() clResp
		}{
			{"client B at /refresh", func() clResp {
				return clDo(t, "POST", base+"/refresh", clJSON(map[string]string{"refresh_token": rt, "client_id": bID}))
			}},
			{"client B at /token (form)", func() clResp {
				return clDo(t, "POST", base+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {bID}})
			}},
			{"the default client at /refresh", func() clResp {
				return clDo(t, "POST", base+"/refresh", clJSON(map[string]string{"refresh_token": rt}))
			}},
			{"the default client at /token", func() clResp {
				return clDo(t, "POST", base+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
			}},
			{"the default client named", func() clResp {
				return clDo(t, "POST", base+"/refresh", clJSON(map[string]string{"refresh_token": rt, "client_id": tokens.DefaultClientID}))
			}},
			{"a confidential client with its secret", func() clResp {
				return clDo(t, "POST", base+"/refresh", clJSON(map[string]string{"refresh_token": rt}), "Authorization", basicAuth(srvID, srvSecret))
			}},
		} {
			// Twice: a second presentation must not look like reuse either.
			for i := 0; i < 2; i++ {
				wantError(t, c.what, c.r(), 400, "invalid_grant")
			}
		}
		// Unchanged: same last use, the access token still works, and the
		// token is still the active one (it rotates, with no reuse).
		after := clSession(t, base, login.str("access_token"), sid)
		if after["last_used_at"] != before["last_used_at"] || after["client_id"] != aID {
			t.Errorf("session changed by refused presentations: before %v, after %v", before, after)
		}
		r := clDo(t, "POST", base+"/refresh", clJSON(map[string]string{"refresh_token": rt, "client_id": aID}))
		if r.status != 200 || r.str("session_id") != sid {
			t.Fatalf("the owner's refresh after refusals: %v", r)
		}
		_, claims := jwtParts(t, r.str("access_token"))
		if claims["client_id"] != aID || !slices.Equal(audOf(claims), []string{"a-aud"}) {
			t.Errorf("rotated token claims %v", claims)
		}
		// And the owner's logout with another client's name is refused too.
		wantError(t, "logout by client B", clDo(t, "POST", base+"/logout", clJSON(map[string]string{"refresh_token": r.str("refresh_token"), "client_id": bID})), 400, "invalid_grant")
		if st, _ := call(t, "GET", base+"/me", "", r.str("access_token")); st != 200 {
			t.Errorf("/me after a refused logout: %d", st)
		}
	})

	t.Run("confidential client's refresh token without its secret", func(t *testing.T) {
		r := clDo(t, "POST", base+"/token", pw(), "Authorization", basicAuth(srvID, srvSecret))
		if r.status != 200 || r.str("refresh_token") == "" {
			t.Fatalf("confidential login: %v", r)
		}
		rt := r.str("refresh_token")
		_, claims := jwtParts(t, r.str("access_token"))
		if claims["client_id"] != srvID || !slices.Equal(audOf(claims), []string{"srv-aud"}) {
			t.Errorf("confidential client's user token claims %v", claims)
		}
		wantInvalidClient(t, "client_id without secret", clDo(t, "POST", base+"/refresh", clJSON(map[string]string{"refresh_token": rt, "client_id": srvID})))
		wantInvalidClient(t, "client_id without secret (form)", clDo(t, "POST", base+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {srvID}}))
		wantError(t, "no client at all", clDo(t, "POST", base+"/refresh", clJSON(map[string]string{"refresh_token": rt})), 400, "invalid_grant")
		wantInvalidClient(t, "wrong secret", clDo(t, "POST", base+"/refresh", clJSON(map[string]string{"refresh_token": rt}), "Authorization", basicAuth(srvID, ccSecret)))
		ok := clDo(t, "POST", base+"/refresh", clJSON(map[string]string{"refresh_token": rt}), "Authorization", basicAuth(srvID, srvSecret))
		if ok.status != 200 || ok.str("refresh_token") == "" {
			t.Errorf("refresh with the secret after the refusals: %v", ok)
		}
		post := clDo(t, "POST", base+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {ok.str("refresh_token")},
			"client_id": {srvID}, "client_secret": {srvSecret}})
		if post.status != 200 {
			t.Errorf("refresh with client_secret_post: %v", post)
		}
		wantError(t, "both Basic and client_secret in the body", clDo(t, "POST", base+"/token", url.Values{"grant_type": {"refresh_token"},
			"refresh_token": {post.str("refresh_token")}, "client_secret": {srvSecret}}, "Authorization", basicAuth(srvID, srvSecret)), 400, "invalid_request")
	})

	t.Run("revoking another client's token", func(t *testing.T) {
		la := clLogin(t, base, aID, email)
		lb := clLogin(t, base, bID, email)
		ccTok := clMustCC(t, base, ccID, ccSecret)
		for _, c := range []struct {
			what string
			body url.Values
			hdr  []string
		}{
			{"client A revokes B's access token", url.Values{"token": {lb.str("access_token")}, "client_id": {aID}}, nil},
			{"client A revokes B's refresh token", url.Values{"token": {lb.str("refresh_token")}, "client_id": {aID}}, nil},
			{"client A revokes B's refresh token (hinted)", url.Values{"token": {lb.str("refresh_token")}, "token_type_hint": {"refresh_token"}, "client_id": {aID}}, nil},
			{"the default client revokes A's access token", url.Values{"token": {la.str("access_token")}}, nil},
			{"the default client revokes A's refresh token", url.Values{"token": {la.str("refresh_token")}}, nil},
			{"a confidential client revokes A's access token", url.Values{"token": {la.str("access_token")}}, []string{"Authorization", basicAuth(ccID, ccSecret)}},
			{"client A revokes a client_credentials token", url.Values{"token": {ccTok}, "client_id": {aID}}, nil},
		} {
			wantError(t, c.what, clDo(t, "POST", base+"/revoke", c.body, c.hdr...), 400, "unauthorized_client")
		}
		wantInvalidClient(t, "revoke with a wrong secret", clDo(t, "POST", base+"/revoke", url.Values{"token": {ccTok}}, "Authorization", basicAuth(ccID, "wrong")))
		// Nothing was revoked.
		for what, at := range map[string]string{"A's": la.str("access_token"), "B's": lb.str("access_token")} {
			if st, _ := call(t, "GET", base+"/me", "", at); st != 200 {
				t.Errorf("%s access token after refused revocations: %d", what, st)
			}
		}
		if r := clDo(t, "GET", base+"/revocations", nil, "Authorization", bearerAuth(ccTok)); r.status != 200 {
			t.Errorf("the client token after a refused revocation: %v", r)
		}
		rb := clDo(t, "POST", base+"/refresh", clJSON(map[string]string{"refresh_token": lb.str("refresh_token"), "client_id": bID}))
		if rb.status != 200 {
			t.Fatalf("B's refresh token after refused revocations: %v", rb)
		}
		// Each client revokes its own.
		if r := clDo(t, "POST", base+"/revoke", url.Values{"token": {rb.str("refresh_token")}, "client_id": {bID}}); r.status != 200 {
			t.Errorf("B revokes its own refresh token: %v", r)
		}
		refusedWithin(t, time.Second, "B's access token after B revoked its session", 401, func() clResp {
			return clDo(t, "GET", base+"/me", nil, "Authorization", bearerAuth(rb.str("access_token")))
		})
		if r := clDo(t, "POST", base+"/revoke", url.Values{"token": {ccTok}}, "Authorization", basicAuth(ccID, ccSecret)); r.status != 200 {
			t.Errorf("the confidential client revokes its own token: %v", r)
		}
		wantError(t, "the revoked client token", clDo(t, "GET", base+"/revocations", nil, "Authorization", bearerAuth(ccTok)), 401, "invalid_token")
		if r := clDo(t, "POST", base+"/revoke", url.Values{"token": {la.str("access_token")}, "client_id": {aID}}); r.status != 200 {
			t.Errorf("A revokes its own access token: %v", r)
		}
	})

	t.Run("introspection and the feed need role introspect", func(t *testing.T) {
		la := clLogin(t, base, aID, email)
		wantError(t, "introspect by a client without the role", clDo(t, "POST", base+"/introspect", url.Values{"token": {la.str("access_token")}},
			"Authorization", basicAuth(srvID, srvSecret)), 403, "insufficient_scope")
		wantInvalidClient(t, "introspect by a public client naming a secret", clDo(t, "POST", base+"/introspect",
			url.Values{"token": {la.str("access_token")}, "client_id": {aID}, "client_secret": {"x"}}))
		wantError(t, "the feed with a user's token", clDo(t, "GET", base+"/revocations", nil, "Authorization", bearerAuth(la.str("access_token"))), 403, "insufficient_scope")
		r := clDo(t, "POST", base+"/introspect", url.Values{"token": {la.str("access_token")}}, "Authorization", basicAuth(ccID, ccSecret))
		if r.status != 200 || r.body["active"] != true || r.str("client_id") != aID {
			t.Errorf("introspection by the introspect client: %v", r)
		}
	})
}

// clSession returns the session sid from GET /sessions.
func clSession(t *testing.T, base, at, sid string) map[string]any {
	t.Helper()
	st, _, b, err := request("GET", base+"/sessions", "", at)
	if err != nil || st != 200 {
		t.Fatalf("GET /sessions: %d %v %s", st, err, b)
	}
	var list []map[string]any
	if err := json.Unmarshal(b, &list); err != nil {
		t.Fatal(err)
	}
	for _, s := range list {
		if s["id"] == sid {
			return s
		}
	}
	t.Fatalf("session %s not listed: %s", sid, b)
	return nil
}

// TestDisabledClientRefusedOnSecondInstance: disabling a client at one
// instance refuses its client_credentials tokens and its users' access
// tokens at another within 1 s; re-enabling it does not bring them back;
// deleting it does the same.
func TestDisabledClientRefusedOnSecondInstance(t *testing.T) {
	pgtest.Require(t, db)
	sfx := clSuffix()
	ccID, pubID := "dis-cc-"+sfx, "dis-pub-"+sfx
	secret := "dis-cc secret " + sfx + strings.Repeat("s", 24)
	file := clWriteFile(t, map[string]any{"clients": []map[string]any{
		{"client_id": ccID, "type": "confidential", "roles": []string{"introspect"}, "audience": "dis-aud", "secret_env": "DIS_SECRET"},
		{"client_id": pubID, "type": "public", "audience": "dis-pub-aud"},
	}})
	keys := writeKeys(t)
	vars := func() map[string]string {
		v := clEnv(t, keys)
		v["CLIENTS_FILE"], v["DIS_SECRET"] = file, secret
		return v
	}
	a := start(t, vars())
	b := start(t, vars()) // applies the same file: an update that changes nothing
	admin := clAdmin(t, a.base)
	email := "disable-" + sfx + "@example.test"
	clSignup(t, a.base, email)
	login := clLogin(t, a.base, pubID, email)
	userAT, userRT := login.str("access_token"), login.str("refresh_token")
	ccTok := clMustCC(t, a.base, ccID, secret)
	feed := func(in *instance, tok string) func() clResp {
		return func() clResp {
			return clDo(t, "GET", in.base+"/revocations?limit=1", nil, "Authorization", bearerAuth(tok))
		}
	}
	me := func(in *instance, tok string) func() clResp {
		return func() clResp { return clDo(t, "GET", in.base+"/me", nil, "Authorization", bearerAuth(tok)) }
	}
	if r := feed(b, ccTok)(); r.status != 200 {
		t.Fatalf("instance b refuses a's client_credentials token: %v", r)
	}
	if r := me(b, userAT)(); r.status != 200 {
		t.Fatalf("instance b refuses a's user token: %v", r)
	}
	// b's own client_credentials token, for the same client.
	ccTokB := clMustCC(t, b.base, ccID, secret)

	// A client created through a's admin API: a accepts its tokens at once;
	// b learns of it by its periodic reload (tokens.ClientRefreshInterval),
	// and until then refuses its tokens as those of an unknown client.
	newID := "dis-new-" + sfx
	newSecret := clCreateClient(t, a.base, admin, map[string]any{"client_id": newID, "type": "confidential", "roles": []string{"introspect"}})
	newTok := clMustCC(t, b.base, newID, newSecret) // secrets are checked against the store
	if r := feed(a, newTok)(); r.status != 200 {
		t.Errorf("a refuses a token of a client it just created: %v", r)
	}
	d := refusedWithin(t, tokens.ClientRefreshInterval+time.Second, "b accepts a token of a client created at a", 200, feed(b, newTok))
	t.Logf("b accepted a token of a client created at a after %v", d.Round(time.Millisecond))

	patch := func(id, body string) {
		t.Helper()
		if r := clDo(t, "PATCH", a.base+"/admin/clients/"+id, body, "Authorization", bearerAuth(admin)); r.status != 200 {
			t.Fatalf("PATCH %s %s: %v", id, body, r)
		}
	}
	patch(ccID, `{"disabled":true}`)
	d = refusedWithin(t, time.Second, "b: the disabled client's token (issued by a)", 401, feed(b, ccTok))
	t.Logf("b refused the disabled client's token %v after the PATCH answered", d.Round(time.Millisecond))
	refusedWithin(t, time.Second, "b: the disabled client's token (issued by b)", 401, feed(b, ccTokB))
	wantError(t, "a: the disabled client's token", feed(a, ccTok)(), 401, "invalid_token")
	wantInvalidClient(t, "a: the disabled client at /token", clCC(t, a.base, ccID, secret))
	wantInvalidClient(t, "b: the disabled client at /token", clCC(t, b.base, ccID, secret))

	patch(pubID, `{"disabled":true}`)
	d = refusedWithin(t, time.Second, "b: the user token of the disabled client", 401, me(b, userAT))
	t.Logf("b refused the disabled client's user token %v after the PATCH answered", d.Round(time.Millisecond))
	wantError(t, "a: the user token of the disabled client", me(a, userAT)(), 401, "invalid_token")
	wantInvalidClient(t, "a: login at the disabled client", clDo(t, "POST", a.base+"/token",
		clJSON(map[string]string{"username": email, "password": clUserPassword, "client_id": pubID})))
	// b may still hold the client as enabled (it reloads clients every 5
	// s), but the store refuses a login at a disabled client and the
	// session is revoked: refused either way, and no session is opened.
	if r := clDo(t, "POST", b.base+"/token", clJSON(map[string]string{"username": email, "password": clUserPassword, "client_id": pubID})); r.status != 401 && r.status != 400 {
		t.Errorf("b: login at the disabled client: %v", r)
	}
	if r := clDo(t, "POST", b.base+"/refresh", clJSON(map[string]string{"refresh_token": userRT, "client_id": pubID})); r.status != 401 && r.status != 400 {
		t.Errorf("b: the disabled client's refresh token: %v", r)
	}
	// The user's other sessions are untouched.
	def := clLogin(t, a.base, "", email)
	if r := me(b, def.str("access_token"))(); r.status != 200 {
		t.Errorf("b: the user's default-client token: %v", r)
	}
	if st, _, body, err := request("GET", b.base+"/sessions", "", def.str("access_token")); err != nil || st != 200 || strings.Contains(string(body), pubID) {
		t.Errorf("b: sessions after the client was disabled: %d %v %s", st, err, body)
	}

	// Enabled again: new tokens work everywhere, old ones stay dead.
	patch(ccID, `{"disabled":false}`)
	patch(pubID, `{"disabled":false}`)
	fresh := clMustCC(t, a.base, ccID, secret)
	if r := feed(b, fresh)(); r.status != 200 {
		t.Errorf("b: a token of the re-enabled client: %v", r)
	}
	wantError(t, "b: the old token of the re-enabled client", feed(b, ccTok)(), 401, "invalid_token")
	wantError(t, "b: the old user token of the re-enabled client", me(b, userAT)(), 401, "invalid_token")
	wantError(t, "a: the old refresh token of the re-enabled client", clDo(t, "POST", a.base+"/refresh",
		clJSON(map[string]string{"refresh_token": userRT, "client_id": pubID})), 400, "invalid_grant")
	relogin := clLogin(t, a.base, pubID, email)

	// Deleted: the same, and the client is gone.
	for _, id := range []string{ccID, pubID} {
		if r := clDo(t, "DELETE", a.base+"/admin/clients/"+id, nil, "Authorization", bearerAuth(admin)); r.status != 204 {
			t.Fatalf("DELETE %s: %v", id, r)
		}
	}
	refusedWithin(t, time.Second, "b: a token of the deleted client", 401, feed(b, fresh))
	refusedWithin(t, time.Second, "b: a user token of the deleted client", 401, me(b, relogin.str("access_token")))
	wantInvalidClient(t, "b: the deleted client at /token", clCC(t, b.base, ccID, secret))
	if r := clDo(t, "GET", a.base+"/admin/clients/"+ccID, nil, "Authorization", bearerAuth(admin)); r.status != 404 {
		t.Errorf("GET the deleted client: %v", r)
	}
}

var secretLine = regexp.MustCompile(`(?m)^client_secret: (\S+)$`)

// TestClientsCommands runs `server clients …` in-process against the
// database of a running instance.
func TestClientsCommands(t *testing.T) {
	pgtest.Require(t, db)
	vars := clEnv(t, writeKeys(t))
	in := start(t, vars)
	sfx := clSuffix()
	cli := func(args ...string) (string, error) {
		t.Helper()
		cvars := map[string]string{}
		for k, v := range vars {
			cvars[k] = v
		}
		cvars["APP_SECRET"] = "app secret from the environment " + sfx
		var out, errOut bytes.Buffer
		err := run(context.Background(), append([]string{"server", "clients"}, args...), env(cvars), &out, &errOut)
		return out.String(), err
	}
	mustCLI := func(args ...string) string {
		t.Helper()
		out, err := cli(args...)
		if err != nil {
			t.Fatalf("clients %v: %v", args, err)
		}
		return out
	}
	id, pub := "cli-"+sfx, "clipub-"+sfx

	t.Run("usage errors", func(t *testing.T) {
		for _, c := range []struct {
			args []string
			want string
		}{
			{nil, "usage:\n  server clients list"},
			{[]string{"create"}, "usage:"},
			{[]string{"create", "--type", "public"}, "usage:"},
			{[]string{"create", "bad-" + sfx}, "--type public|confidential is required"},
			{[]string{"create", "bad-" + sfx, "--type", "public", "--bogus"}, "flag provided but not defined: -bogus"},
			{[]string{"create", "bad-" + sfx, "--type", "public", "--bogus"}, "usage:"},
			{[]string{"create", "bad-" + sfx, "--type", "public", "stray"}, "usage:"},
			{[]string{"create", "bad-" + sfx, "--type", "sideways"}, "client type must be public or confidential"},
			{[]string{"create", "bad-" + sfx, "--type", "public", "--grants", "client_credentials"}, "client_credentials is for confidential clients only"},
			{[]string{"create", "bad-" + sfx, "--type", "public", "--origins", "https://x.example/path"}, "allowed origins must be exact origins"},
			{[]string{"create", "bad-" + sfx, "--type", "public", "--roles", "admin"}, "a public client has none"},
			{[]string{"create", uuid.NewString(), "--type", "public"}, "client id must be"},
			{[]string{"update", "bad-" + sfx, "--disable", "--enable"}, "--disable and --enable together"},
			{[]string{"update", "bad-" + sfx, "--name", "x"}, "not found"},
			{[]string{"update"}, "usage:"},
			{[]string{"rotate-secret"}, "usage:"},
			{[]string{"delete"}, "usage:"},
			{[]string{"apply"}, "usage:"},
			{[]string{"apply", "a.json", "b.json"}, "usage:"},
			{[]string{"frobnicate", "x"}, `unknown clients command "frobnicate"`},
			{[]string{"delete", tokens.DefaultClientID}, "the default client cannot be deleted"},
			{[]string{"update", tokens.DefaultClientID, "--disable"}, "the default client cannot be disabled"},
			{[]string{"rotate-secret", tokens.DefaultClientID}, "a public client has no secret"},
		} {
			out, err := cli(c.args...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("clients %q: error %v (output %q), want %q", c.args, err, out, c.want)
			}
		}
		var out bytes.Buffer
		err := run(context.Background(), []string{"server", "clients", "list"}, env(map[string]string{}), &out, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "DATABASE_URL: required for clients") {
			t.Errorf("clients list without DATABASE_URL: %v", err)
		}
		if list := mustCLI("list"); strings.Contains(list, "bad-"+sfx) {
			t.Errorf("a refused command stored a client:\n%s", list)
		}
		// The server's own usage names the subcommands.
		out.Reset()
		if err := run(context.Background(), []string{"server", "help"}, env(nil), &out, io.Discard); err != nil || !strings.Contains(out.String(), "server clients list|create|update|rotate-secret|delete|apply") {
			t.Errorf("server help: %v %q", err, out.String())
		}
	})

	out := mustCLI("create", id, "--type", "confidential", "--name", "CLI resource server", "--roles", "introspect", "--audience", "cli-aud-"+sfx)
	m := secretLine.FindStringSubmatch(out)
	if !strings.Contains(out, "created confidential client "+id) || m == nil || !strings.HasPrefix(m[1], tokens.ClientSecretPrefix) {
		t.Fatalf("create output %q", out)
	}
	secret := m[1]
	// The running instance has not reloaded its clients yet, but secrets
	// are checked against the store: the client authenticates at once.
	tok := clMustCC(t, in.base, id, secret)
	_, claims := jwtParts(t, tok)
	if claims["sub"] != id || claims["client_id"] != id || !slices.Equal(audOf(claims), []string{"cli-aud-" + sfx}) {
		t.Errorf("token of the new client: %v", claims)
	}
	// And the instance that issued the token accepts it (expected at once;
	// see the report if this needs the 5 s reload).
	if r := clDo(t, "GET", in.base+"/revocations?limit=1", nil, "Authorization", bearerAuth(tok)); r.status != 200 {
		t.Errorf("GET /revocations with a token the instance just issued to a client created by the command: %v", r)
	}
	if _, err := cli("create", id, "--type", "confidential"); err == nil || !strings.Contains(err.Error(), "conflict") {
		t.Errorf("create of an existing id: %v", err)
	}

	out = mustCLI("create", pub, "--type", "public", "--origins", "https://cli.example,https://cli2.example", "--audience", "cli-pub-aud")
	if !strings.Contains(out, "created public client "+pub) || strings.Contains(out, "client_secret") {
		t.Errorf("create public output %q", out)
	}
	// Public clients come from the instance's directory: there within one
	// reload (tokens.ClientRefreshInterval).
	email := "cli-" + sfx + "@example.test"
	clSignup(t, in.base, email)
	var login clResp
	eventually(t, tokens.ClientRefreshInterval+2*time.Second, "login at the public client created by the command", func() bool {
		login = clDo(t, "POST", in.base+"/token", clJSON(map[string]string{"username": email, "password": clUserPassword, "client_id": pub}))
		return login.status == 200
	})
	if _, c := jwtParts(t, login.str("access_token")); c["client_id"] != pub || !slices.Equal(audOf(c), []string{"cli-pub-aud"}) {
		t.Errorf("token of the public client: %v", c)
	}

	list := mustCLI("list")
	if !strings.HasPrefix(list, "CLIENT_ID") {
		t.Errorf("list header: %q", list)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^` + id + `\s+confidential\s+client_credentials\s+cli-aud-` + sfx + `\s+introspect\s+false$`),
		regexp.MustCompile(`(?m)^` + pub + `\s+public\s+password,refresh_token\s+cli-pub-aud\s+https://cli.example,https://cli2.example\s+false$`),
		regexp.MustCompile(`(?m)^default\s+public\s+password,refresh_token\s+rotor\s`),
	} {
		if !want.MatchString(list) {
			t.Errorf("list lacks %s:\n%s", want, list)
		}
	}
	if strings.Contains(list, secret) {
		t.Error("list shows a secret")
	}

	// update: taking the role away ends the client's tokens at once.
	if out := mustCLI("update", id, "--roles", "", "--name", "renamed"); !strings.Contains(out, "updated client "+id) {
		t.Errorf("update output %q", out)
	}
	refusedWithin(t, time.Second, "the token of a client that lost its role", 401, func() clResp {
		return clDo(t, "GET", in.base+"/revocations?limit=1", nil, "Authorization", bearerAuth(tok))
	})
	noRole := clMustCC(t, in.base, id, secret)
	wantError(t, "a token without role introspect at the feed", clDo(t, "GET", in.base+"/revocations", nil, "Authorization", bearerAuth(noRole)), 403, "insufficient_scope")
	mustCLI("update", id, "--roles", "introspect")
	mustCLI("update", id, "--disable")
	wantInvalidClient(t, "a client disabled by the command", clCC(t, in.base, id, secret))
	if list := mustCLI("list"); !regexp.MustCompile(`(?m)^` + id + `\s.*\strue$`).MatchString(list) {
		t.Errorf("list does not show the client disabled:\n%s", list)
	}
	mustCLI("update", id, "--enable")
	tok = clMustCC(t, in.base, id, secret)

	// rotate-secret: printed once; the old secret stops at once.
	out = mustCLI("rotate-secret", id)
	m = secretLine.FindStringSubmatch(out)
	if m == nil || m[1] == secret || !strings.Contains(out, "the old secret no longer works") {
		t.Fatalf("rotate-secret output %q", out)
	}
	wantInvalidClient(t, "the secret before rotation", clCC(t, in.base, id, secret))
	secret = m[1]
	clMustCC(t, in.base, id, secret)
	if _, err := cli("rotate-secret", pub); err == nil || !strings.Contains(err.Error(), "a public client has no secret") {
		t.Errorf("rotate-secret of a public client: %v", err)
	}
	if _, err := cli("rotate-secret", "nobody-"+sfx); err == nil {
		t.Error("rotate-secret of an unknown client succeeded")
	}

	// delete: tokens and sessions end, the client is gone.
	if out := mustCLI("delete", id); !strings.Contains(out, "deleted client "+id) {
		t.Errorf("delete output %q", out)
	}
	wantInvalidClient(t, "a deleted client", clCC(t, in.base, id, secret))
	refusedWithin(t, time.Second, "the token of a deleted client", 401, func() clResp {
		return clDo(t, "GET", in.base+"/revocations?limit=1", nil, "Authorization", bearerAuth(tok))
	})
	mustCLI("delete", pub)
	refusedWithin(t, time.Second, "the user token of a deleted public client", 401, func() clResp {
		return clDo(t, "GET", in.base+"/me", nil, "Authorization", bearerAuth(login.str("access_token")))
	})
	if list := mustCLI("list"); strings.Contains(list, id+" ") || strings.Contains(list, pub+" ") {
		t.Errorf("deleted clients still listed:\n%s", list)
	}
	if _, err := cli("delete", id); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("delete of a deleted client: %v", err)
	}

	// apply: a clients file, created then updated; its secret works.
	appID, appPub := "app-"+sfx, "apppub-"+sfx
	file := clWriteFile(t, map[string]any{"clients": []map[string]any{
		{"client_id": appID, "type": "confidential", "roles": []string{"introspect"}, "audience": "app-aud", "secret_env": "APP_SECRET"},
		{"client_id": appPub, "name": "App", "type": "public", "allowed_origins": []string{"https://app.example"}},
	}})
	if out := mustCLI("apply", file); !strings.Contains(out, "clients: 2 created, 0 updated") {
		t.Errorf("first apply: %q", out)
	}
	if out := mustCLI("apply", file); !strings.Contains(out, "clients: 0 created, 2 updated") {
		t.Errorf("second apply: %q", out)
	}
	appTok := clMustCC(t, in.base, appID, "app secret from the environment "+sfx)
	if _, c := jwtParts(t, appTok); !slices.Equal(audOf(c), []string{"app-aud"}) {
		t.Errorf("token of the applied client: %v", c)
	}
	if list := mustCLI("list"); !regexp.MustCompile(`(?m)^` + appPub + `\s+public\s+password,refresh_token\s+rotor\s+https://app.example\s+false$`).MatchString(list) {
		t.Errorf("the applied public client (default audience and grants) is not listed:\n%s", list)
	}
	for _, c := range []struct {
		file any
		want string
	}{
		{map[string]any{"clients": []map[string]any{{"client_id": "x-" + sfx, "type": "confidential", "secret_env": "NOT_SET"}}}, "secret_env NOT_SET is not set"},
		{map[string]any{"clients": []map[string]any{{"client_id": "x-" + sfx, "type": "confidential"}}}, "needs its secret"},
		{map[string]any{"clients": []map[string]any{{"client_id": "x-" + sfx, "type": "confidential", "secret": "short"}}}, "a client secret must be 32 to 512 bytes"},
		{map[string]any{"clients": []map[string]any{{"client_id": "x-" + sfx, "type": "public", "secret": "a", "secret_env": "APP_SECRET"}}}, "give secret or secret_env, not both"},
		{map[string]any{"clients": []map[string]any{{"client_id": "x-" + sfx, "type": "public", "colour": "blue"}}}, "unknown field"},
		{map[string]any{"clients": []map[string]any{{"client_id": "x-" + sfx, "type": "public"}, {"client_id": "x-" + sfx, "type": "public"}}}, "listed twice"},
	} {
		if _, err := cli("apply", clWriteFile(t, c.file)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("apply %v: %v, want %q", c.file, err, c.want)
		}
	}
	if _, err := cli("apply", filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("apply of a missing file succeeded")
	}
}

// TestTwoAppsOneIssuer: the bank and the retirement portal, two public
// clients of one Rotor with their own origins and audiences, in browser
// mode. One user logs in at each; each app's tokens carry its own aud and
// client_id, each has its own refresh cookie, /sessions lists both sessions
// with their client, and neither app's origin may act for the other.
func TestTwoAppsOneIssuer(t *testing.T) {
	pgtest.Require(t, db)
	const bankOrigin, portalOrigin, defaultOrigin = "https://bank.example", "https://portal.example", "https://default.example"
	file := clWriteFile(t, map[string]any{"clients": []map[string]any{
		{"client_id": "bank", "name": "Bank", "type": "public", "allowed_origins": []string{bankOrigin}, "audience": "bank-api"},
		{"client_id": "portal", "name": "Retirement portal", "type": "public", "allowed_origins": []string{portalOrigin}, "audience": "portal-api"},
		{"client_id": "portal-server", "name": "Retirement portal (server side)", "type": "confidential",
			"grant_types": []string{"password", "refresh_token"}, "audience": "portal-api", "secret_env": "PORTAL_SERVER_SECRET"},
	}})
	const serverSecret = "the portal server's secret, 32+ bytes"
	vars := clEnv(t, writeKeys(t))
	vars["CLIENTS_FILE"] = file
	vars["PORTAL_SERVER_SECRET"] = serverSecret
	vars["REFRESH_COOKIE"] = "true"
	vars["CORS_ALLOWED_ORIGINS"] = defaultOrigin
	in := start(t, vars)
	base := in.base
	email := "two-apps-" + clSuffix() + "@example.test"
	uid := clSignup(t, base, email)

	type app struct {
		id, origin, aud, cookie string
		at, rt, sid             string
	}
	bank := &app{id: "bank", origin: bankOrigin, aud: "bank-api", cookie: "__Host-rotor_refresh_bank"}
	portal := &app{id: "portal", origin: portalOrigin, aud: "portal-api", cookie: "__Host-rotor_refresh_portal"}
	cookieOf := func(t *testing.T, r clResp, name string) *http.Cookie {
		t.Helper()
		var found *http.Cookie
		for _, c := range r.cookies {
			if strings.HasPrefix(c.Name, "__Host-rotor_refresh") && c.Name != name {
				t.Errorf("answer sets cookie %s, want only %s", c.Name, name)
			}
			if c.Name == name {
				found = c
			}
		}
		if found == nil {
			t.Fatalf("no %s cookie in %v", name, r.header["Set-Cookie"])
		}
		return found
	}
	for _, a := range []*app{bank, portal} {
		r := clDo(t, "POST", base+"/token", clJSON(map[string]string{"username": email, "password": clUserPassword, "client_id": a.id}), "Origin", a.origin)
		if r.status != 200 {
			t.Fatalf("login at %s: %v", a.id, r)
		}
		if r.str("refresh_token") != "" {
			t.Errorf("%s: browser mode put the refresh token in the body", a.id)
		}
		if r.header.Get("Access-Control-Allow-Origin") != a.origin {
			t.Errorf("%s: Access-Control-Allow-Origin %q", a.id, r.header.Get("Access-Control-Allow-Origin"))
		}
		c := cookieOf(t, r, a.cookie)
		if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Domain != "" {
			t.Errorf("%s cookie attributes: %+v", a.id, c)
		}
		a.at, a.rt, a.sid = r.str("access_token"), c.Value, r.str("session_id")
		checkAccessClaims(t, base, a.at, "http://localhost:8080", uid, a.aud, a.id)
	}

	// /sessions lists both, each with its client.
	st, _, b, err := request("GET", base+"/sessions", "", bank.at)
	if err != nil || st != 200 {
		t.Fatalf("GET /sessions: %d %v", st, err)
	}
	var sessions []map[string]any
	_ = json.Unmarshal(b, &sessions)
	got := map[string]string{}
	for _, s := range sessions {
		got[s["id"].(string)] = s["client_id"].(string)
		if s["id"] == bank.sid && s["current"] != true {
			t.Errorf("the bank session is not marked current with the bank's token: %v", s)
		}
	}
	if len(sessions) != 2 || got[bank.sid] != "bank" || got[portal.sid] != "portal" {
		t.Errorf("sessions %s, want the bank's and the portal's", b)
	}

	refresh := func(client, origin, cookieName, value string) clResp {
		hdr := []string{"Origin", origin}
		if cookieName != "" {
			hdr = append(hdr, "Cookie", cookieName+"="+value)
		}
		body := `{}`
		if client != "" {
			body = clJSON(map[string]string{"client_id": client})
		}
		return clDo(t, "POST", base+"/refresh", body, hdr...)
	}
	// The other app's origin is refused, for login and for refresh, and
	// so is an origin of no app; nothing is rotated.
	wantError(t, "bank login from the portal's origin", clDo(t, "POST", base+"/token",
		clJSON(map[string]string{"username": email, "password": clUserPassword, "client_id": "bank"}), "Origin", portalOrigin), 403, "access_denied")
	wantError(t, "bank refresh from the portal's origin", refresh("bank", portalOrigin, bank.cookie, bank.rt), 403, "access_denied")
	wantError(t, "portal refresh from the bank's origin", refresh("portal", bankOrigin, portal.cookie, portal.rt), 403, "access_denied")
	wantError(t, "bank refresh from the default client's origin", refresh("bank", defaultOrigin, bank.cookie, bank.rt), 403, "access_denied")
	wantError(t, "bank refresh without Origin", clDo(t, "POST", base+"/refresh", clJSON(map[string]string{"client_id": "bank"}), "Cookie", bank.cookie+"="+bank.rt), 403, "access_denied")
	wantError(t, "bank login as a form", clDo(t, "POST", base+"/token", url.Values{"grant_type": {"password"}, "username": {email}, "password": {clUserPassword}, "client_id": {"bank"}},
		"Origin", bankOrigin), 400, "invalid_request")
	// Each app reads only its own cookie: the bank's cookie sent to the
	// portal is not the portal's, and the bank's token under the portal's
	// cookie name is another client's token.
	wantError(t, "the bank's cookie at the portal", refresh("portal", portalOrigin, bank.cookie, bank.rt), 400, "invalid_request")
	wantError(t, "the bank's token as the portal's cookie", refresh("portal", portalOrigin, portal.cookie, bank.rt), 400, "invalid_grant")
	wantError(t, "the bank's token as the default client's cookie", refresh("", defaultOrigin, "__Host-rotor_refresh", bank.rt), 400, "invalid_grant")

	// Each app refreshes with its own cookie, from its own origin.
	for _, a := range []*app{bank, portal} {
		r := refresh(a.id, a.origin, a.cookie, a.rt)
		if r.status != 200 || r.str("session_id") != a.sid {
			t.Fatalf("%s refresh: %v", a.id, r)
		}
		c := cookieOf(t, r, a.cookie)
		if c.Value == a.rt {
			t.Errorf("%s: the cookie did not rotate", a.id)
		}
		a.at, a.rt = r.str("access_token"), c.Value
		_, claims := jwtParts(t, a.at)
		if claims["client_id"] != a.id || !slices.Equal(audOf(claims), []string{a.aud}) {
			t.Errorf("%s rotated token: %v", a.id, claims)
		}
	}

	// A confidential client is a server: in browser mode too it gets its
	// refresh token in the body, sets no cookie and needs no Origin.
	srv := clDo(t, "POST", base+"/token", url.Values{"grant_type": {"password"}, "username": {email}, "password": {clUserPassword}},
		"Authorization", basicAuth("portal-server", serverSecret))
	if srv.status != 200 || srv.str("refresh_token") == "" || len(srv.cookies) != 0 {
		t.Fatalf("confidential login in browser mode: %v (cookies %v)", srv, srv.cookies)
	}
	if r := clDo(t, "POST", base+"/refresh", url.Values{"refresh_token": {srv.str("refresh_token")}}, "Authorization", basicAuth("portal-server", serverSecret)); r.status != 200 || len(r.cookies) != 0 {
		t.Errorf("confidential refresh in browser mode: %v", r)
	}
	wantError(t, "the portal server's refresh token at the portal", refresh("portal", portalOrigin, portal.cookie, srv.str("refresh_token")), 400, "invalid_grant")

	// A CORS preflight from either app's origin is answered; from another
	// origin it is refused.
	for origin, want := range map[string]int{bankOrigin: 204, portalOrigin: 204, "https://evil.example": 403} {
		r := clDo(t, "OPTIONS", base+"/refresh", nil, "Origin", origin, "Access-Control-Request-Method", "POST")
		if r.status != want {
			t.Errorf("preflight from %s: %v, want %d", origin, r, want)
		}
	}

	// Logging out of the bank clears the bank's cookie only and leaves the
	// portal's session alive.
	r := clDo(t, "POST", base+"/logout", clJSON(map[string]string{"client_id": "bank"}), "Origin", bankOrigin, "Cookie", bank.cookie+"="+bank.rt)
	if r.status != 204 {
		t.Fatalf("bank logout: %v", r)
	}
	if c := cookieOf(t, r, bank.cookie); c.MaxAge >= 0 || c.Value != "" {
		t.Errorf("bank logout did not clear its cookie: %+v", c)
	}
	refusedWithin(t, time.Second, "the bank's access token after its logout", 401, func() clResp {
		return clDo(t, "GET", base+"/me", nil, "Authorization", bearerAuth(bank.at))
	})
	if st, _ := call(t, "GET", base+"/me", "", portal.at); st != 200 {
		t.Errorf("the portal's token after the bank's logout: %d", st)
	}
	if r := refresh("portal", portalOrigin, portal.cookie, portal.rt); r.status != 200 {
		t.Errorf("the portal's refresh after the bank's logout: %v", r)
	}
}
