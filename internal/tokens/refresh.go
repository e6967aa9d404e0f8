package tokens

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash"
	"strings"
	"time"

	"github.com/google/uuid"
)

// RefreshPrefix starts every refresh token so secret scanners can find
// leaked ones.
const RefreshPrefix = "rt_"

// Token format v2 (the one issued):
//
//	rt_ base64url( 0x02 ‖ session id (16) ‖ generation (8) ‖ issued at (8) ‖ secret (32) ‖ tag (16) )
//
// The session id finds the row by primary key and the generation says which
// of the session's tokens this is, so no row per token is stored. The
// secret is 256 bits: random for a login's first token, and for a successor
// HMAC-SHA256(successor key, presented token), so a grace replay derives the
// byte-identical successor again (its issued-at is the session's
// rotated_at). The session stores only HMAC-SHA256(verifier key, secret) of
// its active token. The tag, HMAC-SHA256(tag key, everything before it)
// truncated to 128 bits, makes every token this server ever minted
// recognisable without storing it: a presented token whose tag fails is
// forged (nothing is looked up), one whose tag holds but whose generation is
// older than the session's is authentic and used. TOKEN_SECRET never
// reaches the database, so a dump alone lets no one mint a token or
// recognise one.
const (
	formatV2     = 0x02
	v2HeaderLen  = 1 + 16 + 8 + 8
	secretLen    = 32
	tagLen       = 16
	v2RawLen     = v2HeaderLen + secretLen + tagLen
	legacySelLen = 16 // v1: public half, the refresh_tokens primary key
	legacyVerLen = 32 // v1: secret half
	legacyRawLen = legacySelLen + legacyVerLen
	// RefreshTokenLen is the length of an issued (v2) refresh token.
	RefreshTokenLen = len(RefreshPrefix) + v2RawLen*4/3
	// LegacyRefreshTokenLen is the length of a v1 refresh token, issued
	// before rotation v2: rt_ base64url(selector (16) ‖ verifier (32)).
	// v1 tokens still live are accepted and rotate into v2 tokens.
	LegacyRefreshTokenLen = len(RefreshPrefix) + legacyRawLen*4/3
)

// MinSecretLen is the shortest TOKEN_SECRET and JWT_SECRET accepted.
const MinSecretLen = 32

// RefreshCodec makes, parses and hashes refresh tokens. Its keys are
// derived from TOKEN_SECRET, each for one purpose.
type RefreshCodec struct {
	hashKey, succKey, tagKey []byte
	// v1 tokens: the verifier hash and successor derivation of before v2.
	legacyHashKey, legacySuccKey []byte
}

// NewRefreshCodec derives the codec's keys from secret (TOKEN_SECRET).
func NewRefreshCodec(secret []byte) (*RefreshCodec, error) {
	if len(secret) < MinSecretLen {
		return nil, errors.New("token secret must be at least 32 bytes")
	}
	k := func(label string) []byte { return mac(sha256.New, secret, []byte(label)) }
	return &RefreshCodec{
		hashKey: k("rotor refresh verifier v2"), succKey: k("rotor refresh successor v2"),
		tagKey:        k("rotor refresh tag v2"),
		legacyHashKey: k("rotor refresh verifier v1"), legacySuccKey: k("rotor refresh successor v1"),
	}, nil
}

// IssuedRefresh is a refresh token made for a client, and what its session
// may keep of it.
type IssuedRefresh struct {
	Token        string
	VerifierHash []byte
	// Selector is set for v1 successors only (see ParsedRefresh.Legacy).
	Selector []byte
}

// ParsedRefresh is a refresh token taken apart. A v2 token's tag has been
// checked; nothing has been looked up.
type ParsedRefresh struct {
	Raw []byte
	// Legacy is a v1 token: Selector names its refresh_tokens row.
	Legacy   bool
	Selector []byte
	// v2: the session, the token's generation and when it was issued.
	SessionID  uuid.UUID
	Generation uint64
	IssuedAt   time.Time
	secret     []byte
}

// Secret is a successor's secret, derived from the presented token before
// the session is read: the store needs only its hash, the token itself is
// minted once the rotation instant is known.
type Secret struct {
	secret []byte
	Hash   []byte // keyed hash, as the session stores it
}

// First makes the random first token of session sid, issued at iat.
func (c *RefreshCodec) First(sid uuid.UUID, iat time.Time) (IssuedRefresh, error) {
	secret := make([]byte, secretLen)
	if _, err := rand.Read(secret); err != nil {
		return IssuedRefresh{}, err
	}
	return c.Mint(sid, 0, iat, Secret{secret: secret, Hash: c.hash(secret)}), nil
}

// SuccessorSecret is the secret of the token that replaces p.
func (c *RefreshCodec) SuccessorSecret(p ParsedRefresh) Secret {
	s := mac(sha256.New, c.succKey, p.Raw)
	return Secret{secret: s, Hash: c.hash(s)}
}

// Mint encodes the v2 token of session sid at generation gen, issued at iat
// (to the microsecond, as stores keep time), with secret s.
func (c *RefreshCodec) Mint(sid uuid.UUID, gen uint64, iat time.Time, s Secret) IssuedRefresh {
	raw := make([]byte, 0, v2RawLen)
	raw = append(raw, formatV2)
	raw = append(raw, sid[:]...)
	raw = binary.BigEndian.AppendUint64(raw, gen)
	raw = binary.BigEndian.AppendUint64(raw, uint64(iat.UnixMicro())) // #nosec G115 -- a bit-exact round trip with Parse
	raw = append(raw, s.secret...)
	raw = append(raw, c.tag(raw)...)
	return IssuedRefresh{Token: RefreshPrefix + base64.RawURLEncoding.EncodeToString(raw), VerifierHash: s.Hash}
}

// LegacySuccessor is the v1 successor of a v1 token: what a v1 session
// rotated before the upgrade answers to a grace replay of its predecessor.
func (c *RefreshCodec) LegacySuccessor(p ParsedRefresh) IssuedRefresh {
	raw := mac(sha512.New, c.legacySuccKey, p.Raw)[:legacyRawLen]
	return IssuedRefresh{
		Token:        RefreshPrefix + base64.RawURLEncoding.EncodeToString(raw),
		Selector:     raw[:legacySelLen],
		VerifierHash: mac(sha256.New, c.legacyHashKey, raw[legacySelLen:]),
	}
}

// Parse takes a refresh token apart and checks a v2 token's tag (in
// constant time). It does no lookup: a token that fails here is unknown.
func (c *RefreshCodec) Parse(token string) (ParsedRefresh, error) {
	if !strings.HasPrefix(token, RefreshPrefix) || (len(token) != RefreshTokenLen && len(token) != LegacyRefreshTokenLen) {
		return ParsedRefresh{}, errUnknownToken
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(token[len(RefreshPrefix):])
	if err != nil {
		return ParsedRefresh{}, errUnknownToken
	}
	// The decoder skips CR and LF, so the decoded length alone does not
	// pin the spelling: each kind must also have its own text length.
	switch {
	case len(raw) == legacyRawLen && len(token) == LegacyRefreshTokenLen:
		return ParsedRefresh{Raw: raw, Legacy: true, Selector: raw[:legacySelLen], secret: raw[legacySelLen:]}, nil
	case len(raw) != v2RawLen || len(token) != RefreshTokenLen || raw[0] != formatV2:
		return ParsedRefresh{}, errUnknownToken
	}
	body := raw[:v2RawLen-tagLen]
	if !hmac.Equal(c.tag(body), raw[len(body):]) {
		return ParsedRefresh{}, errUnknownToken
	}
	p := ParsedRefresh{Raw: raw, secret: raw[v2HeaderLen : v2HeaderLen+secretLen]}
	copy(p.SessionID[:], raw[1:17])
	p.Generation = binary.BigEndian.Uint64(raw[17:25])
	p.IssuedAt = time.UnixMicro(int64(binary.BigEndian.Uint64(raw[25:33]))).UTC() // #nosec G115 -- the two's-complement bits Mint wrote; the tag vouches for them
	return p, nil
}

// VerifierHash returns the keyed hash of p's secret, as a session stores
// it (v2) or as its refresh_tokens row does (v1).
func (c *RefreshCodec) VerifierHash(p ParsedRefresh) []byte {
	if p.Legacy {
		return mac(sha256.New, c.legacyHashKey, p.secret)
	}
	return c.hash(p.secret)
}

// Matches reports, in constant time, whether p's secret hashes to stored.
func (c *RefreshCodec) Matches(p ParsedRefresh, stored []byte) bool {
	return subtle.ConstantTimeCompare(c.VerifierHash(p), stored) == 1
}

func (c *RefreshCodec) hash(secret []byte) []byte { return mac(sha256.New, c.hashKey, secret) }

func (c *RefreshCodec) tag(body []byte) []byte { return mac(sha256.New, c.tagKey, body)[:tagLen] }

func mac(h func() hash.Hash, key, msg []byte) []byte {
	m := hmac.New(h, key)
	m.Write(msg)
	return m.Sum(nil)
}

// Check establishes what the presented token p is to its session, on the
// state read under the session lock, for Decide: succ is
// c.SuccessorSecret(p), and refreshTTL the REFRESH_TOKEN_TTL that gives an
// earlier token its expiry. It also returns the token a grace replay of p
// answers: the session's active token, derived again from p ("" if p is
// not its predecessor). Every comparison of secrets is in constant time.
func (c *RefreshCodec) Check(p ParsedRefresh, succ Secret, st RefreshState, refreshTTL time.Duration) (TokenCheck, string) {
	sess := st.Session
	ch := sess.Chain
	if p.Legacy {
		rec := st.Legacy
		chk := TokenCheck{Authentic: c.Matches(p, rec.VerifierHash), ExpiresAt: rec.ExpiresAt}
		if ch.VerifierHash == nil { // the session's active token is still a v1 token
			chk.Active = bytes.Equal(p.Selector, ch.ActiveSelector)
			legacy := c.LegacySuccessor(p)
			chk.Predecessor = ch.PrevSelector != nil && bytes.Equal(p.Selector, ch.PrevSelector) &&
				bytes.Equal(legacy.Selector, ch.ActiveSelector)
			return chk, replayToken(chk, func() string { return legacy.Token })
		}
		// The session moved to v2 when a v1 token rotated into generation 1:
		// that v1 token is the predecessor.
		chk.Predecessor = ch.Generation == 1 && bytes.Equal(p.Selector, ch.PrevSelector) &&
			subtle.ConstantTimeCompare(succ.Hash, ch.VerifierHash) == 1
		return chk, replayToken(chk, func() string { return c.Mint(sess.ID, ch.Generation, ch.RotatedAt, succ).Token })
	}
	if ch.VerifierHash == nil || p.SessionID != sess.ID || p.Generation > ch.Generation {
		return TokenCheck{}, "" // never minted for this state: forged with the key, or another store's
	}
	if p.Generation == ch.Generation {
		// The active token's issue time is the last rotation's instant: one
		// minted with the key and a secret derived from its predecessor
		// must also hit that microsecond.
		active := c.Matches(p, ch.VerifierHash) && p.IssuedAt.Equal(ch.RotatedAt)
		return TokenCheck{Authentic: active, Active: active, ExpiresAt: ch.ActiveExpiresAt}, ""
	}
	chk := TokenCheck{
		Authentic: true, // the tag held: an earlier token of this session
		Predecessor: p.Generation+1 == ch.Generation &&
			subtle.ConstantTimeCompare(succ.Hash, ch.VerifierHash) == 1,
		ExpiresAt: minTime(p.IssuedAt.Add(refreshTTL), sess.ExpiresAt),
	}
	return chk, replayToken(chk, func() string { return c.Mint(sess.ID, ch.Generation, ch.RotatedAt, succ).Token })
}

// replayToken is the token a grace replay answers: the active token,
// derived again, for the predecessor only.
func replayToken(chk TokenCheck, active func() string) string {
	if !chk.Predecessor {
		return ""
	}
	return active()
}
