package tokens

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"hash"
	"strings"
)

// RefreshPrefix starts every refresh token so secret scanners can find
// leaked ones.
const RefreshPrefix = "rt_"

const (
	selectorLen = 16 // public half: finds the row through a unique index
	verifierLen = 32 // secret half: 256 bits, stored only as a keyed hash
	// RefreshTokenLen is the length of an encoded refresh token.
	RefreshTokenLen = len(RefreshPrefix) + (selectorLen+verifierLen)*4/3
)

// MinSecretLen is the shortest TOKEN_SECRET and JWT_SECRET accepted.
const MinSecretLen = 32

// RefreshCodec makes, parses and hashes refresh tokens in split-token form:
//
//	rt_<base64url(selector ‖ verifier)>
//
// The selector finds the row; the verifier is stored only as
// HMAC-SHA256(hashKey, verifier) and compared in constant time. Successors
// are derived from the presented token with a second key, so a retry inside
// the grace window gets the byte-identical successor without the server ever
// storing a raw token.
type RefreshCodec struct {
	hashKey []byte
	succKey []byte
}

// NewRefreshCodec derives the codec's keys from secret (TOKEN_SECRET).
func NewRefreshCodec(secret []byte) (*RefreshCodec, error) {
	if len(secret) < MinSecretLen {
		return nil, errors.New("token secret must be at least 32 bytes")
	}
	return &RefreshCodec{
		hashKey: mac(sha256.New, secret, []byte("rotor refresh verifier v1")),
		succKey: mac(sha256.New, secret, []byte("rotor refresh successor v1")),
	}, nil
}

// IssuedRefresh is a freshly made refresh token: the raw token for the
// client, and what the store may keep of it.
type IssuedRefresh struct {
	Token        string
	Selector     []byte
	VerifierHash []byte
}

// New makes a random refresh token.
func (c *RefreshCodec) New() (IssuedRefresh, error) {
	raw := make([]byte, selectorLen+verifierLen)
	if _, err := rand.Read(raw); err != nil {
		return IssuedRefresh{}, err
	}
	return c.issued(raw), nil
}

// Successor derives the token that replaces presented (the raw
// selector ‖ verifier bytes of a parsed token).
func (c *RefreshCodec) Successor(presented []byte) IssuedRefresh {
	sum := mac(sha512.New, c.succKey, presented)
	return c.issued(sum[:selectorLen+verifierLen])
}

func (c *RefreshCodec) issued(raw []byte) IssuedRefresh {
	sel := append([]byte(nil), raw[:selectorLen]...)
	return IssuedRefresh{
		Token:        RefreshPrefix + base64.RawURLEncoding.EncodeToString(raw),
		Selector:     sel,
		VerifierHash: c.hash(raw[selectorLen:]),
	}
}

// ParsedRefresh is a syntactically valid refresh token taken apart.
type ParsedRefresh struct {
	Raw      []byte // selector ‖ verifier
	Selector []byte
	verifier []byte
}

// Parse takes a refresh token apart. It does no lookup.
func (c *RefreshCodec) Parse(token string) (ParsedRefresh, error) {
	if len(token) != RefreshTokenLen || !strings.HasPrefix(token, RefreshPrefix) {
		return ParsedRefresh{}, errUnknownToken
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(token[len(RefreshPrefix):])
	if err != nil || len(raw) != selectorLen+verifierLen {
		return ParsedRefresh{}, errUnknownToken
	}
	return ParsedRefresh{Raw: raw, Selector: raw[:selectorLen], verifier: raw[selectorLen:]}, nil
}

// VerifierHash returns the keyed hash of p's verifier, as stored.
func (c *RefreshCodec) VerifierHash(p ParsedRefresh) []byte { return c.hash(p.verifier) }

// Matches reports, in constant time, whether p's verifier hashes to stored.
func (c *RefreshCodec) Matches(p ParsedRefresh, stored []byte) bool {
	return subtle.ConstantTimeCompare(c.hash(p.verifier), stored) == 1
}

func (c *RefreshCodec) hash(verifier []byte) []byte {
	return mac(sha256.New, c.hashKey, verifier)
}

func mac(h func() hash.Hash, key, msg []byte) []byte {
	m := hmac.New(h, key)
	m.Write(msg)
	return m.Sum(nil)
}
