package tokens_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/rotorauth/rotor/internal/tokens"
)

// t0 is the fixed instant every clock in these tests starts at.
var t0 = time.Unix(1_767_225_600, 0).UTC() // 2026-01-01T00:00:00Z

const (
	testIssuer   = "https://rotor.test"
	testAudience = "rotor-api"
	testTTL      = 15 * time.Minute
)

var allAlgs = []string{tokens.AlgEdDSA, tokens.AlgES256, tokens.AlgHS256}

var b64 = base64.RawURLEncoding

// fixture is a key set whose private key the test holds, so it can sign
// hand-built tokens with the real key.
type fixture struct {
	alg   string
	ks    *tokens.KeySet
	priv  any // what jwt.SigningMethod.Sign takes for alg
	pub   any // ed25519.PublicKey or *ecdsa.PublicKey; nil for HS256
	kid   string
	clock time.Time
	at    *tokens.AccessTokens
}

func (f *fixture) now() time.Time { return f.clock }

// pkcs8PEM encodes priv as one PKCS#8 "PRIVATE KEY" PEM block.
func pkcs8PEM(t testing.TB, priv any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// newKeyPair returns a fresh private key for alg (EdDSA, ES256) and its public half.
func newKeyPair(t testing.TB, alg string) (priv, pub any) {
	t.Helper()
	switch alg {
	case tokens.AlgEdDSA:
		p, s, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return s, p
	case tokens.AlgES256:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k, &k.PublicKey
	}
	t.Fatalf("no key pair for %s", alg)
	return nil, nil
}

func newFixture(t testing.TB, alg string) *fixture {
	t.Helper()
	f := &fixture{alg: alg, clock: t0}
	var err error
	if alg == tokens.AlgHS256 {
		secret := make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			t.Fatal(err)
		}
		f.priv = secret
		f.ks, err = tokens.NewHMACKeySet(secret)
	} else {
		f.priv, f.pub = newKeyPair(t, alg)
		f.ks, err = tokens.ParsePrivateKeys(alg, pkcs8PEM(t, f.priv))
	}
	if err != nil {
		t.Fatal(err)
	}
	f.kid = f.ks.SigningKID()
	f.at = tokens.NewAccessTokens(f.ks, testIssuer, testAudience, testTTL, f.now)
	return f
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sign returns the b64url signature of input made with alg and key.
func sign(t testing.TB, alg string, key any, input string) string {
	t.Helper()
	m := jwt.GetSigningMethod(alg)
	if m == nil {
		t.Fatalf("unknown alg %s", alg)
	}
	sig, err := m.Sign(input, key)
	if err != nil {
		t.Fatalf("sign %s: %v", alg, err)
	}
	return b64.EncodeToString(sig)
}

// signRaw builds a compact JWS from exact header and payload bytes.
func signRaw(t testing.TB, alg string, key any, header, payload []byte) string {
	t.Helper()
	input := b64.EncodeToString(header) + "." + b64.EncodeToString(payload)
	return input + "." + sign(t, alg, key, input)
}

// header is the header Issue writes, as a mutable map.
func (f *fixture) header() map[string]any {
	return map[string]any{"alg": f.alg, "typ": tokens.AccessTokenType, "kid": f.kid}
}

// claims is a complete, valid claim set at f's clock.
func (f *fixture) claims() map[string]any {
	now := f.clock.Unix()
	return map[string]any{
		"iss": testIssuer, "aud": []string{testAudience},
		"sub": uuid.NewString(), "sid": uuid.NewString(), "jti": uuid.NewString(),
		"iat": now, "nbf": now, "exp": now + int64(testTTL/time.Second),
		"roles": []string{},
	}
}

// token signs a hand-built token with the real key after letting the
// callers change the header and the claims.
func (f *fixture) token(t testing.TB, mutH, mutC func(map[string]any)) string {
	t.Helper()
	h, c := f.header(), f.claims()
	if mutH != nil {
		mutH(h)
	}
	if mutC != nil {
		mutC(c)
	}
	return signRaw(t, f.alg, f.priv, mustJSON(t, h), mustJSON(t, c))
}

// issue returns a token made by the production Issue path.
func (f *fixture) issue(t testing.TB, roles ...string) string {
	t.Helper()
	tok, _, err := f.at.Issue(uuid.New(), uuid.New(), roles, f.clock)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// segments splits a compact JWS into its three parts.
func segments(t testing.TB, tok string) (h, p, s string) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d segments", len(parts))
	}
	return parts[0], parts[1], parts[2]
}

// decodeSeg decodes one b64url segment into a map.
func decodeSeg(t testing.TB, seg string) map[string]any {
	t.Helper()
	raw, err := b64.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// refused fails t unless Verify refuses tok with an ErrInvalidToken and a
// zero Principal. It returns the error for further checks.
func refused(t testing.TB, at *tokens.AccessTokens, tok string) error {
	t.Helper()
	p, err := at.Verify(tok)
	if err == nil {
		t.Fatalf("Verify accepted the token: %+v", p)
	}
	if !errors.Is(err, tokens.ErrInvalidToken) {
		t.Fatalf("error %v is not ErrInvalidToken", err)
	}
	if p.UserID != uuid.Nil || p.SessionID != uuid.Nil || p.Roles != nil {
		t.Fatalf("refusal returned a non-zero principal %+v", p)
	}
	return err
}
