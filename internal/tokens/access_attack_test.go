package tokens_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rotorauth/rotor/internal/tokens"
)

// attack builds one token that Verify must refuse.
type attack struct {
	name  string
	only  []string // algorithms the case applies to; nil means all
	build func(t *testing.T, f *fixture) string
}

// hdr and clm return mutators that set (or, for a nil value, delete) one member.
func hdr(k string, v any) func(map[string]any) { return set(k, v) }
func clm(k string, v any) func(map[string]any) { return set(k, v) }
func set(k string, v any) func(map[string]any) {
	return func(m map[string]any) {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
}

func withHeader(mut func(map[string]any)) func(*testing.T, *fixture) string {
	return func(t *testing.T, f *fixture) string { return f.token(t, mut, nil) }
}

func withClaims(mut func(map[string]any)) func(*testing.T, *fixture) string {
	return func(t *testing.T, f *fixture) string { return f.token(t, nil, mut) }
}

// otherAlgKeys holds one signing key per algorithm that no Rotor key set
// accepts, generated once: RSA is slow.
var otherAlgKeys = sync.OnceValues(func() (map[string]any, error) {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, err
	}
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return map[string]any{"RS256": rk, "PS256": rk, "ES384": p384, "ES256": p256, "EdDSA": ed}, nil
})

// offAllowList signs a valid-looking token with alg, which f does not accept.
// HMAC variants use f's real secret (HS256 sets) or its public key PEM.
func offAllowList(alg string) func(*testing.T, *fixture) string {
	return func(t *testing.T, f *fixture) string {
		keys, err := otherAlgKeys()
		if err != nil {
			t.Fatal(err)
		}
		key := keys[alg]
		if strings.HasPrefix(alg, "HS") {
			key = f.priv
			if f.alg != tokens.AlgHS256 {
				key = publicForms(t, f)["PEM"]
			}
		}
		h, c := f.header(), f.claims()
		h["alg"] = alg
		return signRaw(t, alg, key, mustJSON(t, h), mustJSON(t, c))
	}
}

// publicForms are the ways a public key may be fed to an HMAC by a verifier
// that trusts the token's alg.
func publicForms(t *testing.T, f *fixture) map[string][]byte {
	der, err := x509.MarshalPKIXPublicKey(f.pub)
	if err != nil {
		t.Fatal(err)
	}
	var raw []byte
	switch k := f.pub.(type) {
	case ed25519.PublicKey:
		raw = k
	case *ecdsa.PublicKey:
		if raw, err = k.Bytes(); err != nil {
			t.Fatal(err)
		}
	}
	return map[string][]byte{
		"PEM":     pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}),
		"DER":     der,
		"JWK":     mustJSON(t, f.ks.JWKS()[0]),
		"JWKS":    mustJSON(t, map[string]any{"keys": f.ks.JWKS()}),
		"raw":     raw,
		"x-coord": []byte(f.ks.JWKS()[0]["x"]),
	}
}

func confusion(form string) func(*testing.T, *fixture) string {
	return func(t *testing.T, f *fixture) string {
		h := f.header()
		h["alg"] = "HS256"
		return signRaw(t, "HS256", publicForms(t, f)[form], mustJSON(t, h), mustJSON(t, f.claims()))
	}
}

// unsigned replaces the signature part of a valid token.
func unsigned(alg string, sig []byte) func(*testing.T, *fixture) string {
	return func(t *testing.T, f *fixture) string {
		h := f.header()
		if alg != "" {
			h["alg"] = alg
		}
		return b64.EncodeToString(mustJSON(t, h)) + "." + b64.EncodeToString(mustJSON(t, f.claims())) + "." + b64.EncodeToString(sig)
	}
}

// reencoded signs the exact segments that enc produces, so the only defect
// of the token is its base64 alphabet or padding. It retries with fresh
// claims until the encoding differs from the raw URL-safe one.
func reencoded(enc *base64.Encoding, mustHave string) func(*testing.T, *fixture) string {
	return func(t *testing.T, f *fixture) string {
		for i := range 64 {
			c := f.claims()
			c["pad"] = strings.Repeat("?", i%3) + "???~~~" + strings.Repeat("x", i/3)
			h, p := enc.EncodeToString(mustJSON(t, f.header())), enc.EncodeToString(mustJSON(t, c))
			if strings.ContainsAny(h+p, mustHave) {
				return h + "." + p + "." + sign(t, f.alg, f.priv, h+"."+p)
			}
		}
		t.Fatal("could not produce the encoding")
		return ""
	}
}

// sigReencoded keeps header and payload but re-encodes a valid signature.
func sigReencoded(enc *base64.Encoding, mustHave string) func(*testing.T, *fixture) string {
	return func(t *testing.T, f *fixture) string {
		for range 200 {
			h, p, s := segments(t, f.token(t, nil, nil))
			sig, _ := b64.DecodeString(s)
			if e := enc.EncodeToString(sig); strings.ContainsAny(e, mustHave) {
				return h + "." + p + "." + e
			}
		}
		t.Fatal("could not produce the encoding")
		return ""
	}
}

var (
	asym = []string{tokens.AlgEdDSA, tokens.AlgES256}
	past = t0.Add(-40 * time.Second).Unix()
	soon = t0.Add(time.Minute).Unix()
)

var attacks = []attack{
	{name: "alg none", build: unsigned("none", nil)},
	{name: "alg None", build: unsigned("None", nil)},
	{name: "alg NONE", build: unsigned("NONE", nil)},
	{name: "alg nOnE", build: unsigned("nOnE", nil)},
	{name: "alg empty", build: unsigned("", nil)},
	{name: "alg missing", build: withHeader(hdr("alg", nil))},
	{name: "alg number", build: withHeader(hdr("alg", 256))},
	{name: "signature stripped", build: func(t *testing.T, f *fixture) string {
		h, p, _ := segments(t, f.token(t, nil, nil))
		return h + "." + p + "."
	}},
	{name: "signature swapped", build: func(t *testing.T, f *fixture) string {
		h, p, _ := segments(t, f.token(t, nil, nil))
		_, _, s := segments(t, f.issue(t))
		return h + "." + p + "." + s
	}},
	{name: "payload tampered", build: func(t *testing.T, f *fixture) string {
		h, p, s := segments(t, f.issue(t))
		c := decodeSeg(t, p)
		c["roles"] = []string{"admin"}
		return h + "." + b64.EncodeToString(mustJSON(t, c)) + "." + s
	}},
	{name: "header tampered", build: func(t *testing.T, f *fixture) string {
		_, p, s := segments(t, f.issue(t))
		h := f.header()
		h["x"] = "y"
		return b64.EncodeToString(mustJSON(t, h)) + "." + p + "." + s
	}},
	{name: "zero signature EdDSA", only: []string{tokens.AlgEdDSA}, build: unsigned("", make([]byte, ed25519.SignatureSize))},
	{name: "zero signature ES256", only: []string{tokens.AlgES256}, build: unsigned("", make([]byte, 64))},
	{name: "zero signature HS256", only: []string{tokens.AlgHS256}, build: unsigned("", make([]byte, 32))},
	{name: "confusion HS256 with public PEM", only: asym, build: confusion("PEM")},
	{name: "confusion HS256 with public DER", only: asym, build: confusion("DER")},
	{name: "confusion HS256 with public JWK", only: asym, build: confusion("JWK")},
	{name: "confusion HS256 with public JWKS", only: asym, build: confusion("JWKS")},
	{name: "confusion HS256 with raw public key", only: asym, build: confusion("raw")},
	{name: "confusion HS256 with JWK x", only: asym, build: confusion("x-coord")},
	{name: "kid path traversal", build: withHeader(hdr("kid", "../../etc/passwd"))},
	{name: "kid SQL injection", build: withHeader(hdr("kid", "' OR 1=1 --"))},
	{name: "kid 10KB", build: withHeader(hdr("kid", strings.Repeat("k", 10<<10)))},
	{name: "kid unknown", build: withHeader(hdr("kid", "unknown-kid"))},
	{name: "kid missing", build: withHeader(hdr("kid", nil))},
	{name: "kid empty", build: withHeader(hdr("kid", ""))},
	{name: "kid number", build: withHeader(hdr("kid", 1))},
	{name: "kid array", build: func(t *testing.T, f *fixture) string { return f.token(t, hdr("kid", []string{f.kid}), nil) }},
	{name: "kid case changed", build: func(t *testing.T, f *fixture) string {
		return f.token(t, hdr("kid", strings.ToUpper(f.kid)), nil)
	}},
	{name: "jwk header", build: func(t *testing.T, f *fixture) string {
		return f.token(t, hdr("jwk", map[string]string{"kty": "oct"}), nil)
	}},
	{name: "x5c header", build: withHeader(hdr("x5c", []string{"MIIBszCCAVmgAwIBAgIU"}))},
	{name: "x5t header", build: withHeader(hdr("x5t", "dGh1bWJwcmludA"))},
	{name: "x5t#S256 header", build: withHeader(hdr("x5t#S256", "dGh1bWJwcmludA"))},
	{name: "crit header", build: withHeader(hdr("crit", []string{"exp"}))},
	{name: "typ missing", build: withHeader(hdr("typ", nil))},
	{name: "typ JWT", build: withHeader(hdr("typ", "JWT"))},
	{name: "typ empty", build: withHeader(hdr("typ", ""))},
	{name: "typ with space", build: withHeader(hdr("typ", "at+jwt "))},
	{name: "typ number", build: withHeader(hdr("typ", 1))},
	{name: "exp 40s past", build: withClaims(clm("exp", past))},
	{name: "exp missing", build: withClaims(clm("exp", nil))},
	{name: "exp zero", build: withClaims(clm("exp", 0))},
	{name: "exp negative", build: withClaims(clm("exp", -1))},
	{name: "exp string", build: withClaims(clm("exp", strconv.FormatInt(soon, 10)))},
	{name: "exp bool", build: withClaims(clm("exp", true))},
	{name: "exp null", build: withClaims(clm("exp", json.RawMessage("null")))},
	{name: "exp upper-case string duplicate", build: func(t *testing.T, f *fixture) string {
		c := f.claims()
		p := mustJSON(t, c)
		p = append(p[:len(p)-1], `,"EXP":"`+strconv.FormatInt(soon, 10)+`"}`...)
		return signRaw(t, f.alg, f.priv, mustJSON(t, f.header()), p)
	}},
	{name: "iat string", build: withClaims(clm("iat", strconv.FormatInt(t0.Unix(), 10)))},
	{name: "nbf future", build: withClaims(clm("nbf", soon))},
	{name: "nbf string", build: withClaims(clm("nbf", "0"))},
	{name: "iat future", build: withClaims(clm("iat", soon))},
	{name: "iat missing", build: withClaims(clm("iat", nil))},
	{name: "aud wrong", build: withClaims(clm("aud", []string{"other-api"}))},
	{name: "aud wrong string", build: withClaims(clm("aud", "other-api"))},
	{name: "aud wrong case", build: withClaims(clm("aud", strings.ToUpper(testAudience)))},
	{name: "aud empty", build: withClaims(clm("aud", ""))},
	{name: "aud empty array", build: withClaims(clm("aud", []string{}))},
	{name: "aud missing", build: withClaims(clm("aud", nil))},
	{name: "aud number", build: withClaims(clm("aud", 1))},
	{name: "iss wrong", build: withClaims(clm("iss", "https://evil.test"))},
	{name: "iss trailing slash", build: withClaims(clm("iss", testIssuer+"/"))},
	{name: "iss empty", build: withClaims(clm("iss", ""))},
	{name: "iss missing", build: withClaims(clm("iss", nil))},
	{name: "jti missing", build: withClaims(clm("jti", nil))},
	{name: "jti not a UUID", build: withClaims(clm("jti", "token-1"))},
	{name: "sub not a UUID", build: withClaims(clm("sub", "admin"))},
	{name: "sub missing", build: withClaims(clm("sub", nil))},
	{name: "sid missing", build: withClaims(clm("sid", nil))},
	{name: "sid not a UUID", build: withClaims(clm("sid", "s1"))},
	{name: "roles a string", build: withClaims(clm("roles", "admin"))},
	{name: "payload not an object", build: func(t *testing.T, f *fixture) string {
		return signRaw(t, f.alg, f.priv, mustJSON(t, f.header()), []byte(`["admin"]`))
	}},
	{name: "padded base64 segments", build: reencoded(base64.URLEncoding, "=")},
	{name: "standard alphabet segments", build: reencoded(base64.RawStdEncoding, "+/")},
	{name: "padded signature", build: sigReencoded(base64.URLEncoding, "=")},
	{name: "standard alphabet signature", build: sigReencoded(base64.RawStdEncoding, "+/")},
	{name: "four segments", build: func(t *testing.T, f *fixture) string { return f.token(t, nil, nil) + ".e30" }},
	{name: "trailing dot", build: func(t *testing.T, f *fixture) string { return f.token(t, nil, nil) + "." }},
	{name: "JWE shape", build: func(t *testing.T, f *fixture) string { return f.token(t, nil, nil) + ".AAAA.AAAA" }},
	{name: "two segments", build: func(t *testing.T, f *fixture) string {
		h, p, _ := segments(t, f.token(t, nil, nil))
		return h + "." + p
	}},
	{name: "whitespace around", build: func(t *testing.T, f *fixture) string { return " " + f.token(t, nil, nil) + "\n" }},
	{name: "bearer prefix", build: func(t *testing.T, f *fixture) string { return "Bearer " + f.token(t, nil, nil) }},
	{name: "empty", build: func(*testing.T, *fixture) string { return "" }},
	{name: "only dots", build: func(*testing.T, *fixture) string { return ".." }},
}

func init() {
	for _, alg := range []string{"HS256", "HS384", "HS512", "RS256", "PS256", "ES256", "ES384", "EdDSA"} {
		var only []string
		for _, a := range allAlgs {
			if a != alg {
				only = append(only, a)
			}
		}
		attacks = append(attacks, attack{name: "off allow-list " + alg, only: only, build: offAllowList(alg)})
	}
}

func TestAccessAttacks(t *testing.T) {
	for _, alg := range allAlgs {
		f := newFixture(t, alg)
		for _, a := range attacks {
			if a.only != nil && !slices.Contains(a.only, alg) {
				continue
			}
			t.Run(alg+"/"+a.name, func(t *testing.T) {
				refused(t, f.at, a.build(t, f))
			})
		}
	}
}

// TestAccessKeyURLHeaders: jku, x5u and friends with a valid signature from
// the real key are refused, and Verify never fetches what they point at.
func TestAccessKeyURLHeaders(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []any{}})
	}))
	defer srv.Close()
	for _, alg := range allAlgs {
		f := newFixture(t, alg)
		headers := map[string]any{
			"jku": srv.URL + "/.well-known/jwks.json",
			"x5u": srv.URL + "/cert.pem",
			"jwk": map[string]string{"kty": "OKP", "crv": "Ed25519", "x": b64.EncodeToString(make([]byte, 32))},
			"x5c": []string{b64.EncodeToString([]byte("cert"))},
		}
		if alg != tokens.AlgHS256 {
			headers["jwk"] = f.ks.JWKS()[0] // the real key, so only the header's presence is wrong
		}
		for name, v := range headers {
			t.Run(alg+"/"+name, func(t *testing.T) {
				refused(t, f.at, f.token(t, hdr(name, v), nil))
			})
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("Verify made %d outbound requests", n)
	}
}

// TestAccessForeignKey: a token from another key set of the same algorithm
// is refused, even when it claims the verifier's kid.
func TestAccessForeignKey(t *testing.T) {
	for _, alg := range allAlgs {
		f, other := newFixture(t, alg), newFixture(t, alg)
		refused(t, f.at, other.issue(t))
		h := f.header() // f's kid, other's signature
		refused(t, f.at, signRaw(t, alg, other.priv, mustJSON(t, h), mustJSON(t, f.claims())))
	}
}
