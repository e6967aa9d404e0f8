package tokens_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rotorauth/rotor/internal/tokens"
)

// expectedKID computes the RFC 7638 thumbprint independently: the required
// members, lexicographic order, no white space, written out by hand.
func expectedKID(t *testing.T, pub any) string {
	t.Helper()
	var canonical string
	switch k := pub.(type) {
	case ed25519.PublicKey:
		canonical = `{"crv":"Ed25519","kty":"OKP","x":"` + b64.EncodeToString(k) + `"}`
	case *ecdsa.PublicKey:
		x, y := ecXY(t, k)
		canonical = `{"crv":"P-256","kty":"EC","x":"` + b64.EncodeToString(x) + `","y":"` + b64.EncodeToString(y) + `"}`
	default:
		t.Fatalf("no thumbprint for %T", pub)
	}
	sum := sha256.Sum256([]byte(canonical))
	return b64.EncodeToString(sum[:])
}

// ecXY takes the P-256 coordinates from the SubjectPublicKeyInfo DER,
// whose last 65 bytes are the uncompressed point 0x04 ‖ X ‖ Y.
func ecXY(t *testing.T, k *ecdsa.PublicKey) (x, y []byte) {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		t.Fatal(err)
	}
	pt := der[len(der)-65:]
	if pt[0] != 4 {
		t.Fatalf("not an uncompressed point: %x", pt)
	}
	return pt[1:33], pt[33:]
}

func parse(t *testing.T, alg string, pemData ...[]byte) *tokens.KeySet {
	t.Helper()
	ks, err := tokens.ParsePrivateKeys(alg, bytes.Join(pemData, nil))
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// TestKIDRFC8037Example checks the kid against the published example of
// RFC 8037 Appendix A.1 and A.3 (Ed25519 key and its RFC 7638 thumbprint).
func TestKIDRFC8037Example(t *testing.T) {
	seed, err := b64.DecodeString("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
	if err != nil {
		t.Fatal(err)
	}
	ks := parse(t, tokens.AlgEdDSA, pkcs8PEM(t, ed25519.NewKeyFromSeed(seed)))
	if got := ks.SigningKID(); got != "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k" {
		t.Fatalf("kid = %s, want the RFC 8037 A.3 thumbprint", got)
	}
	if x := ks.JWKS()[0]["x"]; x != "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" {
		t.Fatalf("x = %s, want the RFC 8037 A.1 public key", x)
	}
}

func TestKIDIsThumbprint(t *testing.T) {
	for _, alg := range []string{tokens.AlgEdDSA, tokens.AlgES256} {
		priv, pub := newKeyPair(t, alg)
		ks := parse(t, alg, pkcs8PEM(t, priv))
		if got, want := ks.SigningKID(), expectedKID(t, pub); got != want {
			t.Errorf("%s: kid %s, want %s", alg, got, want)
		}
	}
}

func TestRotation(t *testing.T) {
	for _, alg := range []string{tokens.AlgEdDSA, tokens.AlgES256} {
		t.Run(alg, func(t *testing.T) {
			newPriv, newPub := newKeyPair(t, alg)
			oldPriv, oldPub := newKeyPair(t, alg)
			newPEM, oldPEM := pkcs8PEM(t, newPriv), pkcs8PEM(t, oldPriv)
			now := func() time.Time { return t0 }

			both := parse(t, alg, newPEM, oldPEM)
			oldOnly := parse(t, alg, oldPEM)
			newOnly := parse(t, alg, newPEM)
			if both.SigningKID() != expectedKID(t, newPub) {
				t.Fatalf("first key in the file must sign")
			}
			if jwks := both.JWKS(); len(jwks) != 2 || jwks[0]["kid"] != expectedKID(t, newPub) || jwks[1]["kid"] != expectedKID(t, oldPub) {
				t.Fatalf("JWKS %v must list the signing key first, then the retired one", jwks)
			}

			atBoth := tokens.NewAccessTokens(both, testIssuer, testAudience, testTTL, now)
			atOld := tokens.NewAccessTokens(oldOnly, testIssuer, testAudience, testTTL, now)
			atNew := tokens.NewAccessTokens(newOnly, testIssuer, testAudience, testTTL, now)

			oldTok, _, err := atOld.Issue(uuid.New(), uuid.New(), nil, t0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := atBoth.Verify(oldTok); err != nil {
				t.Fatalf("token of the retired (second) key refused: %v", err)
			}
			refused(t, atNew, oldTok) // the old key is gone from this set

			newTok, _, err := atBoth.Issue(uuid.New(), uuid.New(), nil, t0)
			if err != nil {
				t.Fatal(err)
			}
			if h, _, _ := segments(t, newTok); decodeSeg(t, h)["kid"] != expectedKID(t, newPub) {
				t.Fatal("set signs with a key other than the first")
			}
			if _, err := atNew.Verify(newTok); err != nil {
				t.Fatalf("new key's token refused by a set holding only it: %v", err)
			}
			refused(t, atOld, newTok)
		})
	}
}

func TestJWKSPublicOnly(t *testing.T) {
	for _, alg := range []string{tokens.AlgEdDSA, tokens.AlgES256} {
		priv, pub := newKeyPair(t, alg)
		ks := parse(t, alg, pkcs8PEM(t, priv))
		jwks := ks.JWKS()
		if len(jwks) != 1 {
			t.Fatalf("%s: %d keys", alg, len(jwks))
		}
		j := jwks[0]
		want := map[string]string{"kid": expectedKID(t, pub), "alg": alg, "use": "sig"}
		switch k := pub.(type) {
		case ed25519.PublicKey:
			want["kty"], want["crv"], want["x"] = "OKP", "Ed25519", b64.EncodeToString(k)
		case *ecdsa.PublicKey:
			x, y := ecXY(t, k)
			want["kty"], want["crv"], want["x"], want["y"] = "EC", "P-256", b64.EncodeToString(x), b64.EncodeToString(y)
		}
		if len(j) != len(want) {
			t.Errorf("%s: JWK %v has members beyond %v", alg, j, want)
		}
		for k, v := range want {
			if j[k] != v {
				t.Errorf("%s: %s = %q, want %q", alg, k, j[k], v)
			}
		}
		out, _ := json.Marshal(map[string]any{"keys": jwks})
		if bytes.Contains(out, []byte(`"d"`)) || bytes.Contains(out, []byte(b64.EncodeToString(privBytes(t, priv)))) {
			t.Errorf("%s: JWKS %s leaks the private key", alg, out)
		}
	}
}

func privBytes(t *testing.T, priv any) []byte {
	switch k := priv.(type) {
	case ed25519.PrivateKey:
		return k.Seed()
	case *ecdsa.PrivateKey:
		b, err := k.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return nil
}

func TestHMACKeySet(t *testing.T) {
	secret := []byte(strings.Repeat("s", 32))
	ks, err := tokens.NewHMACKeySet(secret)
	if err != nil {
		t.Fatal(err)
	}
	if ks.Alg() != tokens.AlgHS256 {
		t.Fatalf("alg %s", ks.Alg())
	}
	if jwks := ks.JWKS(); jwks == nil || len(jwks) != 0 {
		t.Fatalf("HS256 JWKS = %#v, want an empty, non-nil list", jwks)
	}
	if out, _ := json.Marshal(ks.JWKS()); string(out) != "[]" {
		t.Fatalf("HS256 JWKS marshals to %s", out)
	}
	if strings.Contains(ks.SigningKID(), "sss") {
		t.Fatalf("kid %s shows the secret", ks.SigningKID())
	}
	again, _ := tokens.NewHMACKeySet(append([]byte(nil), secret...))
	other, _ := tokens.NewHMACKeySet([]byte(strings.Repeat("t", 32)))
	if again.SigningKID() != ks.SigningKID() || other.SigningKID() == ks.SigningKID() {
		t.Fatal("HS256 kid must be stable per secret and differ between secrets")
	}
	// The key set keeps its own copy of the secret.
	secret[0] = 'x'
	at := tokens.NewAccessTokens(ks, testIssuer, testAudience, testTTL, func() time.Time { return t0 })
	tok, _, _ := at.Issue(uuid.New(), uuid.New(), nil, t0)
	atAgain := tokens.NewAccessTokens(again, testIssuer, testAudience, testTTL, func() time.Time { return t0 })
	if _, err := atAgain.Verify(tok); err != nil {
		t.Fatalf("mutating the caller's secret changed the key: %v", err)
	}
	for _, n := range []int{0, 16, 31} {
		if _, err := tokens.NewHMACKeySet(make([]byte, n)); err == nil {
			t.Errorf("%d-byte HS256 secret accepted", n)
		}
	}
}

func TestParsePrivateKeysRefuses(t *testing.T) {
	edPriv, _ := newKeyPair(t, tokens.AlgEdDSA)
	ecPriv, _ := newKeyPair(t, tokens.AlgES256)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := otherAlgKeys()
	if err != nil {
		t.Fatal(err)
	}
	rsaKey := keys["RS256"].(*rsa.PrivateKey)
	sec1, _ := x509.MarshalECPrivateKey(ecPriv.(*ecdsa.PrivateKey))
	pubDER, _ := x509.MarshalPKIXPublicKey(ecPriv.(*ecdsa.PrivateKey).Public())
	block := func(typ string, b []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}) }

	cases := []struct {
		name, alg string
		pem       []byte
	}{
		{"EdDSA with P-256 key", tokens.AlgEdDSA, pkcs8PEM(t, ecPriv)},
		{"ES256 with Ed25519 key", tokens.AlgES256, pkcs8PEM(t, edPriv)},
		{"ES256 with P-384 key", tokens.AlgES256, pkcs8PEM(t, p384)},
		{"EdDSA with RSA key", tokens.AlgEdDSA, pkcs8PEM(t, rsaKey)},
		{"ES256 with RSA key", tokens.AlgES256, pkcs8PEM(t, rsaKey)},
		{"HS256 from key file", tokens.AlgHS256, pkcs8PEM(t, edPriv)},
		{"RS256 from key file", "RS256", pkcs8PEM(t, rsaKey)},
		{"SEC1 EC PRIVATE KEY", tokens.AlgES256, block("EC PRIVATE KEY", sec1)},
		{"PKCS#1 RSA PRIVATE KEY", tokens.AlgEdDSA, block("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey))},
		{"public key", tokens.AlgES256, block("PUBLIC KEY", pubDER)},
		{"garbage in PRIVATE KEY block", tokens.AlgEdDSA, block("PRIVATE KEY", []byte("not DER"))},
		{"good key then a bad type", tokens.AlgEdDSA, append(pkcs8PEM(t, edPriv), pkcs8PEM(t, ecPriv)...)},
		{"same key twice", tokens.AlgEdDSA, append(pkcs8PEM(t, edPriv), pkcs8PEM(t, edPriv)...)},
		{"empty", tokens.AlgEdDSA, nil},
		{"not PEM", tokens.AlgEdDSA, []byte("-----BEGIN nothing")},
	}
	for _, c := range cases {
		if ks, err := tokens.ParsePrivateKeys(c.alg, c.pem); err == nil {
			t.Errorf("%s: accepted, kid %s", c.name, ks.SigningKID())
		}
	}
	if _, err := tokens.GenerateKeySet("RS256"); err == nil {
		t.Error("GenerateKeySet(RS256) succeeded")
	}
	if _, err := tokens.GeneratePrivateKeyDER(tokens.AlgHS256); err == nil {
		t.Error("GeneratePrivateKeyDER(HS256) succeeded")
	}
}

// TestParseOpenSSLKeys reads keys exactly as the SPEC's `openssl genpkey`
// writes them, when openssl is installed.
func TestParseOpenSSLKeys(t *testing.T) {
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	cases := map[string][]string{
		tokens.AlgEdDSA: {"genpkey", "-algorithm", "ed25519"},
		tokens.AlgES256: {"genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"},
	}
	for alg, args := range cases {
		t.Run(alg, func(t *testing.T) {
			out, err := exec.Command(bin, args...).Output()
			if err != nil {
				t.Skipf("openssl %v: %v", args, err)
			}
			if !bytes.HasPrefix(out, []byte("-----BEGIN PRIVATE KEY-----")) {
				t.Fatalf("openssl wrote %q", out)
			}
			ks := parse(t, alg, out)
			blk, _ := pem.Decode(out)
			parsed, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			pub := parsed.(interface{ Public() crypto.PublicKey }).Public()
			if ks.SigningKID() != expectedKID(t, pub) {
				t.Fatalf("kid %s is not the thumbprint of the openssl key", ks.SigningKID())
			}
			at := tokens.NewAccessTokens(ks, testIssuer, testAudience, testTTL, func() time.Time { return t0 })
			tok, _, err := at.Issue(uuid.New(), uuid.New(), nil, t0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := at.Verify(tok); err != nil {
				t.Fatal(err)
			}
		})
	}
}
