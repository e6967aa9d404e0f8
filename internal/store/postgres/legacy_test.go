package postgres_test

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"testing"

	"github.com/rotorauth/rotor/internal/tokens"
)

// v1Codec makes refresh tokens exactly as Rotor issued them before rotation
// v2 (split tokens: rt_ base64url(selector 16 ‖ verifier 32), successors
// the first 48 bytes of HMAC-SHA512(successor key, selector ‖ verifier)),
// written out here independently of the package under test so that the
// upgrade tests present what old deployments really hold.
type v1Codec struct{ hashKey, succKey []byte }

func newV1Codec(secret []byte) v1Codec {
	k := func(label string) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(label))
		return m.Sum(nil)
	}
	return v1Codec{hashKey: k("rotor refresh verifier v1"), succKey: k("rotor refresh successor v1")}
}

func (c v1Codec) issued(raw []byte) tokens.IssuedRefresh {
	m := hmac.New(sha256.New, c.hashKey)
	m.Write(raw[16:])
	return tokens.IssuedRefresh{Token: tokens.RefreshPrefix + base64.RawURLEncoding.EncodeToString(raw),
		Selector: append([]byte(nil), raw[:16]...), VerifierHash: m.Sum(nil)}
}

func (c v1Codec) New(t *testing.T) tokens.IssuedRefresh {
	raw := make([]byte, 48)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	return c.issued(raw)
}

func (c v1Codec) Successor(t *testing.T, tok tokens.IssuedRefresh) tokens.IssuedRefresh {
	raw, err := base64.RawURLEncoding.DecodeString(tok.Token[len(tokens.RefreshPrefix):])
	if err != nil || len(raw) != 48 {
		t.Fatalf("not a v1 token: %v", err)
	}
	m := hmac.New(sha512.New, c.succKey)
	m.Write(raw)
	return c.issued(m.Sum(nil)[:48])
}
