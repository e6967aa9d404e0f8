package tokens

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
)

// Supported signing algorithms (JWT_ALG).
const (
	AlgEdDSA = "EdDSA"
	AlgES256 = "ES256"
	AlgHS256 = "HS256"
)

// signingKey is one key of a KeySet.
type signingKey struct {
	kid     string
	private any // ed25519.PrivateKey, *ecdsa.PrivateKey or []byte (HS256)
	public  any // ed25519.PublicKey, *ecdsa.PublicKey or []byte (HS256)
	jwk     map[string]string
}

// KeySet holds the access-token keys of one algorithm: the first signs, all
// verify. Asymmetric keys are published as a JWKS; HS256 secrets never are.
type KeySet struct {
	alg  string
	keys []*signingKey
	kids map[string]*signingKey
}

// Alg returns the one algorithm this key set signs and accepts.
func (ks *KeySet) Alg() string { return ks.alg }

// SigningKID returns the kid of the key that signs new tokens.
func (ks *KeySet) SigningKID() string { return ks.keys[0].kid }

func newKeySet(alg string, keys []*signingKey) (*KeySet, error) {
	if len(keys) == 0 {
		return nil, errors.New("no keys")
	}
	ks := &KeySet{alg: alg, keys: keys, kids: make(map[string]*signingKey, len(keys))}
	for _, k := range keys {
		if _, dup := ks.kids[k.kid]; dup {
			return nil, fmt.Errorf("key %s appears twice", k.kid)
		}
		ks.kids[k.kid] = k
	}
	return ks, nil
}

// ParsePrivateKeys reads a PEM file of PKCS#8 private keys for alg (EdDSA or
// ES256), as `openssl genpkey` writes them. The first key signs.
func ParsePrivateKeys(alg string, pemData []byte) (*KeySet, error) {
	var keys []*signingKey
	rest := pemData
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "PRIVATE KEY" {
			return nil, fmt.Errorf("PEM block %q: want PKCS#8 \"PRIVATE KEY\"", block.Type)
		}
		parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse PKCS#8 key: %w", err)
		}
		k, err := asymmetricKey(alg, parsed)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM private keys found")
	}
	return newKeySet(alg, keys)
}

func asymmetricKey(alg string, parsed any) (*signingKey, error) {
	switch alg {
	case AlgEdDSA:
		priv, ok := parsed.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("JWT_ALG=EdDSA needs Ed25519 keys, got %T", parsed)
		}
		pub := priv.Public().(ed25519.PublicKey)
		jwk := map[string]string{"crv": "Ed25519", "kty": "OKP", "x": b64(pub)}
		return &signingKey{kid: thumbprint(jwk), private: priv, public: pub, jwk: jwk}, nil
	case AlgES256:
		priv, ok := parsed.(*ecdsa.PrivateKey)
		if !ok || priv.Curve != elliptic.P256() {
			return nil, fmt.Errorf("JWT_ALG=ES256 needs P-256 keys, got %T", parsed)
		}
		pubBytes, err := priv.PublicKey.Bytes() // 0x04 ‖ X ‖ Y
		if err != nil {
			return nil, err
		}
		jwk := map[string]string{"crv": "P-256", "kty": "EC", "x": b64(pubBytes[1:33]), "y": b64(pubBytes[33:])}
		return &signingKey{kid: thumbprint(jwk), private: priv, public: &priv.PublicKey, jwk: jwk}, nil
	}
	return nil, fmt.Errorf("algorithm %q does not use key files", alg)
}

// NewHMACKeySet makes an HS256 key set from a shared secret of at least 32
// bytes. Its kid is derived from the secret but reveals nothing about it.
func NewHMACKeySet(secret []byte) (*KeySet, error) {
	if len(secret) < MinSecretLen {
		return nil, errors.New("JWT secret must be at least 32 bytes")
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("rotor hs256 kid"))
	kid := "hs-" + b64(m.Sum(nil)[:12])
	s := append([]byte(nil), secret...)
	return newKeySet(AlgHS256, []*signingKey{{kid: kid, private: s, public: s}})
}

// GenerateKeySet makes a fresh single-key set for alg, for in-memory mode.
func GenerateKeySet(alg string) (*KeySet, error) {
	switch alg {
	case AlgHS256:
		secret := make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return nil, err
		}
		return NewHMACKeySet(secret)
	case AlgEdDSA, AlgES256:
		der, err := GeneratePrivateKeyDER(alg)
		if err != nil {
			return nil, err
		}
		return ParsePrivateKeys(alg, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	}
	return nil, fmt.Errorf("unsupported algorithm %q", alg)
}

// GeneratePrivateKeyDER makes a new PKCS#8 private key for alg.
func GeneratePrivateKeyDER(alg string) ([]byte, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case AlgEdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case AlgES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return nil, fmt.Errorf("algorithm %q has no key pair", alg)
	}
	if err != nil {
		return nil, err
	}
	return x509.MarshalPKCS8PrivateKey(priv)
}

// JWK is one public key as published in the JWKS (RFC 7517).
type JWK map[string]string

// JWKS returns the public keys, signing key first. HS256 sets publish none.
func (ks *KeySet) JWKS() []JWK {
	out := []JWK{}
	if ks.alg == AlgHS256 {
		return out
	}
	for _, k := range ks.keys {
		j := JWK{"kid": k.kid, "alg": ks.alg, "use": "sig"}
		for name, v := range k.jwk {
			j[name] = v
		}
		out = append(out, j)
	}
	return out
}

// thumbprint is the RFC 7638 JWK thumbprint: SHA-256 over the required
// members in lexicographic order, without white space. encoding/json sorts
// map keys, which gives exactly that form.
func thumbprint(members map[string]string) string {
	b, _ := json.Marshal(members)
	sum := sha256.Sum256(b)
	return b64(sum[:])
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
