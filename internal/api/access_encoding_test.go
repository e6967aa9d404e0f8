package api_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/rotorauth/rotor/internal/store/memory"
	"github.com/rotorauth/rotor/internal/tokens"
)

// Access tokens are assembled by tokens.AccessTokens itself rather than by
// jwt.Token (access.go, sign): these tests hold them to be byte for byte
// what golang-jwt makes of the same claims, and their claims what
// encoding/json makes of them.

// signer is a key set with its private key, to sign reference tokens.
type signer struct {
	alg  string
	keys *tokens.KeySet
	priv any
}

func testSigners(tb testing.TB) []signer {
	tb.Helper()
	var out []signer
	for _, alg := range []string{tokens.AlgEdDSA, tokens.AlgES256} {
		der, err := tokens.GeneratePrivateKeyDER(alg)
		if err != nil {
			tb.Fatal(err)
		}
		ks, err := tokens.ParsePrivateKeys(alg, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
		if err != nil {
			tb.Fatal(err)
		}
		priv, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, signer{alg, ks, priv})
	}
	secret := []byte("0123456789abcdef0123456789abcdef")
	ks, err := tokens.NewHMACKeySet(secret)
	if err != nil {
		tb.Fatal(err)
	}
	return append(out, signer{tokens.AlgHS256, ks, secret})
}

// referenceToken is what golang-jwt signs for these claims, the way
// access.go signed them before it assembled tokens itself.
func referenceToken(tb testing.TB, s signer, claims tokens.AccessClaims) string {
	tb.Helper()
	t := jwt.NewWithClaims(jwt.GetSigningMethod(s.alg), claims)
	t.Header["typ"] = tokens.AccessTokenType
	t.Header["kid"] = s.keys.SigningKID()
	signed, err := t.SignedString(s.priv)
	if err != nil {
		tb.Fatal(err)
	}
	return signed
}

// segment decodes one base64url segment of a JWS.
func segment(tb testing.TB, token string, i int) []byte {
	tb.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		tb.Fatalf("token has %d segments", len(parts))
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(parts[i])
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// sameToken compares a token with golang-jwt's: identical for the
// deterministic algorithms (EdDSA, HS256); for ES256, whose signatures are
// randomized, the signed parts are identical and both signatures verify.
func sameToken(tb testing.TB, s signer, got, want string) {
	tb.Helper()
	if s.alg != tokens.AlgES256 {
		if got != want {
			tb.Fatalf("%s token differs from golang-jwt's:\n got %s\nwant %s", s.alg, got, want)
		}
		return
	}
	g, w := got[:strings.LastIndexByte(got, '.')], want[:strings.LastIndexByte(want, '.')]
	if g != w {
		tb.Fatalf("ES256 signing input differs from golang-jwt's:\n got %s\nwant %s", g, w)
	}
	pub := s.priv.(crypto.Signer).Public()
	if _, err := jwt.Parse(got, func(*jwt.Token) (any, error) { return pub, nil }, jwt.WithoutClaimsValidation()); err != nil {
		tb.Fatalf("ES256 token does not verify: %v", err)
	}
}

func FuzzAccessTokenIsGolangJWTs(f *testing.F) {
	f.Add("https://rotor.example", "rotor-api", "admin", "user", 2, int64(900), int64(1767225600), false)
	f.Add("", "", "", "", 0, int64(1), int64(0), true)
	f.Add("https://ex.test/<&>\"\\", "aud\u2028é\x00\xff", "r\"o\\le", "<script>", 1, int64(60), int64(2000000000), false)
	f.Add("\x7f\t\n", "日本", "\ufffd", "\xed\xa0\x80", 2, int64(3600), int64(1), true)
	signers := testSigners(f)
	f.Fuzz(func(t *testing.T, iss, aud, role1, role2 string, nroles int, ttl, unix int64, client bool) {
		if ttl <= 0 || ttl > 1<<32 || unix < 0 || unix > 1<<34 {
			t.Skip()
		}
		roles := []string{role1, role2}[:min(max(nroles, 0), 2)]
		now := time.Unix(unix, 0).Add(123 * time.Millisecond)
		user, sid := uuid.New(), uuid.New()
		if client {
			user = uuid.Nil
		}
		for _, s := range signers {
			at := tokens.NewAccessTokens(s.keys, iss, aud, time.Duration(ttl)*time.Second, func() time.Time { return now })
			got, p, err := at.Issue(user, sid, roles, now)
			if err != nil {
				t.Fatal(err)
			}
			sub := user.String()
			if client {
				sub = tokens.DefaultClientID
			}
			claims := tokens.AccessClaims{
				ClientID: tokens.DefaultClientID,
				RegisteredClaims: jwt.RegisteredClaims{
					Issuer: iss, Subject: sub, Audience: jwt.ClaimStrings{aud},
					ExpiresAt: jwt.NewNumericDate(p.ExpiresAt), NotBefore: jwt.NewNumericDate(p.IssuedAt),
					IssuedAt: jwt.NewNumericDate(p.IssuedAt), ID: p.TokenID.String(),
				},
				SessionID: sid.String(), Roles: tokens.NonNil(roles),
			}
			sameToken(t, s, got, referenceToken(t, s, claims))
		}
	})
}

// TestIssuedClaimsAreEncodingJSONs logs in and refreshes users whose
// emails need escaping, with roles, and checks that each access token's
// header and claims are what encoding/json writes for them (the email
// claim is set only on these paths).
func TestIssuedClaimsAreEncodingJSONs(t *testing.T) {
	ctx := context.Background()
	svc := newService(t, memory.New())
	emails := []string{
		"plain@example.test", `q"uo\te<&>@example.test`, "zoë@exämple.test", "tag+日本@example.test",
	}
	for i, email := range emails {
		roles := [][]string{nil, {"admin"}, {"admin", "introspect"}, {"role:x"}}[i]
		if _, err := svc.EnsureUser(ctx, email, "password of the user", roles); err != nil {
			t.Fatal(err)
		}
		p, err := svc.Login(ctx, email, "password of the user", tokens.ClientInfo{UserAgent: "ua", IP: "192.0.2.1"})
		if err != nil {
			t.Fatal(err)
		}
		r, err := svc.Refresh(ctx, p.RefreshToken, tokens.ClientInfo{UserAgent: "ua", IP: "192.0.2.1"})
		if err != nil {
			t.Fatal(err)
		}
		for _, tok := range []string{p.AccessToken, r.AccessToken} {
			header := map[string]any{}
			if err := json.Unmarshal(segment(t, tok, 0), &header); err != nil {
				t.Fatal(err)
			}
			want, _ := json.Marshal(header)
			if got := segment(t, tok, 0); string(got) != string(want) {
				t.Errorf("header %s, encoding/json writes %s", got, want)
			}
			var claims tokens.AccessClaims
			payload := segment(t, tok, 1)
			if err := json.Unmarshal(payload, &claims); err != nil {
				t.Fatal(err)
			}
			if claims.Email != email {
				t.Errorf("email claim %q, want %q", claims.Email, email)
			}
			if want, _ := json.Marshal(claims); string(payload) != string(want) {
				t.Errorf("claims %s, encoding/json writes %s", payload, want)
			}
			if _, err := svc.Authenticate(tok); err != nil {
				t.Errorf("issued token does not verify: %v", err)
			}
		}
	}
}
