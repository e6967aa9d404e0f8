package tokens

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// AccessTokenType is the JOSE typ header of Rotor access tokens (RFC 9068).
const AccessTokenType = "at+jwt"

// Leeway is the clock skew tolerated when checking exp, nbf and iat.
const Leeway = 30 * time.Second

// maxAccessTokenLen bounds what the verifier will parse at all.
const maxAccessTokenLen = 4096

// AccessClaims are the claims of an access token (SPEC §1).
type AccessClaims struct {
	jwt.RegisteredClaims
	// ClientID is the client the token was issued to (RFC 9068 §2.2).
	ClientID  string   `json:"client_id"`
	SessionID string   `json:"sid"`
	Roles     []string `json:"roles"`
	// Email lets GET /me answer without a database read.
	Email string `json:"email,omitempty"`
}

// Principal is a verified access token.
type Principal struct {
	// UserID is the user; uuid.Nil for a client's own client_credentials
	// token, whose subject is ClientID.
	UserID uuid.UUID
	// ClientID is the client the token was issued to.
	ClientID  string
	SessionID uuid.UUID
	TokenID   uuid.UUID
	Roles     []string
	Email     string
	IssuedAt  time.Time
	ExpiresAt time.Time
	Issuer    string
	Audience  []string
}

// Subject is the token's sub: the user id, or for a client_credentials
// token the client id.
func (p Principal) Subject() string {
	if p.UserID == uuid.Nil {
		return p.ClientID
	}
	return p.UserID.String()
}

// IsClient reports whether p is a client's own token (client_credentials),
// which acts for no user.
func (p Principal) IsClient() bool { return p.UserID == uuid.Nil }

// AccessTokens signs and verifies access tokens with one pinned algorithm.
type AccessTokens struct {
	keys     *KeySet
	issuer   string
	audience string // of the default client
	// defaultClient is the client of tokens that name none (issued before
	// clients existed).
	defaultClient string
	// audienceOf returns the audience of a client's tokens; false for an
	// unknown client, whose tokens are refused.
	audienceOf func(clientID string) (string, bool)
	ttl        time.Duration
	now        func() time.Time
	parser     *jwt.Parser
	method     jwt.SigningMethod
	header     string // the encoded JOSE header of the signing key
	cache      *verifyCache
}

// NewAccessTokens returns a signer and verifier for keys.
func NewAccessTokens(keys *KeySet, issuer, audience string, ttl time.Duration, now func() time.Time) *AccessTokens {
	return &AccessTokens{
		keys: keys, issuer: issuer, audience: audience, ttl: ttl, now: now,
		header:        headerSegment(keys.alg, keys.keys[0].kid),
		defaultClient: DefaultClientID,
		audienceOf: func(id string) (string, bool) {
			return audience, id == DefaultClientID
		},
		method: jwt.GetSigningMethod(keys.alg), cache: newVerifyCache(),
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{keys.alg}),
			jwt.WithIssuer(issuer),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(Leeway),
			jwt.WithTimeFunc(now),
			jwt.WithStrictDecoding(),
		),
	}
}

// TTL returns the access-token lifetime.
func (a *AccessTokens) TTL() time.Duration { return a.ttl }

// Issue signs an access token of the default client for user in session
// sid, valid from now.
func (a *AccessTokens) Issue(userID, sid uuid.UUID, roles []string, now time.Time) (string, Principal, error) {
	return a.issue(accessGrant{userID: userID, sid: sid, roles: roles, clientID: a.defaultClient, audience: a.audience}, now)
}

// accessGrant is what an access token says: whose (a user, or for
// userID uuid.Nil the client itself), which session or token family, which
// client and audience, which roles.
type accessGrant struct {
	userID   uuid.UUID
	sid      uuid.UUID
	email    string
	roles    []string
	clientID string
	audience string
	// notAfter, if set, caps exp: an access token never outlives its
	// session, so once a session has expired (and may be purged) no token
	// of it is left for a later revocation to miss.
	notAfter time.Time
}

func (a *AccessTokens) issue(g accessGrant, now time.Time) (string, Principal, error) {
	roles := g.roles
	roles = NonNil(roles)
	userID, sid, email := g.userID, g.sid, g.email
	sub := userID.String()
	if userID == uuid.Nil {
		sub = g.clientID
	}
	jti := uuid.New()
	now = now.Truncate(time.Second)
	exp := now.Add(a.ttl)
	if !g.notAfter.IsZero() && g.notAfter.Before(exp) {
		exp = g.notAfter.Truncate(time.Second)
	}
	signed, err := a.sign(accessClaimsJSON{
		iss: a.issuer, sub: sub, aud: g.audience, exp: exp.Unix(), nbf: now.Unix(), iat: now.Unix(),
		jti: jti.String(), clientID: g.clientID, sid: sid.String(), roles: roles, email: email,
	})
	if err != nil {
		return "", Principal{}, fmt.Errorf("sign access token: %w", err)
	}
	return signed, Principal{
		UserID: userID, ClientID: g.clientID, SessionID: sid, TokenID: jti, Roles: roles, Email: email,
		IssuedAt: now, ExpiresAt: exp, Issuer: a.issuer, Audience: []string{g.audience},
	}, nil
}

// accessClaimsJSON is what an access token's claims say, as AccessClaims
// would hold them (exp, nbf and iat in seconds).
type accessClaimsJSON struct {
	iss, sub, aud      string
	exp, nbf, iat      int64
	jti, clientID, sid string
	roles              []string
	email              string
}

// sign makes the JWS of c with the signing key. It is the token
// jwt.NewWithClaims(a.method, AccessClaims{…}) with headers typ and kid
// would sign, byte for byte, assembled without its reflection and maps:
// the header segment is fixed per key (NewAccessTokens encodes it once),
// and the claims are appended in the form encoding/json gives AccessClaims
// (appendJSON). The signature is still the library's (a.method.Sign).
func (a *AccessTokens) sign(c accessClaimsJSON) (string, error) {
	var scratch [512]byte
	claims := c.appendJSON(scratch[:0])
	enc := base64.RawURLEncoding
	buf := make([]byte, 0, len(a.header)+1+enc.EncodedLen(len(claims))+1+enc.EncodedLen(maxSignatureLen))
	buf = append(buf, a.header...)
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, claims)
	sig, err := a.method.Sign(string(buf), a.keys.keys[0].private)
	if err != nil {
		return "", err
	}
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, sig)
	return string(buf), nil
}

// maxSignatureLen is the longest signature of the supported algorithms
// (EdDSA and ES256: 64 bytes; HS256: 32).
const maxSignatureLen = 64

// headerSegment is the encoded JOSE header of tokens signed with kid, as
// golang-jwt writes it: alg, kid and typ, encoding/json sorting the keys.
func headerSegment(alg, kid string) string {
	h, _ := json.Marshal(map[string]any{"alg": alg, "kid": kid, "typ": AccessTokenType}) // strings never fail
	return base64.RawURLEncoding.EncodeToString(h)
}

// appendJSON appends c as encoding/json marshals AccessClaims: the fields
// of jwt.RegisteredClaims first (iss, sub and jti omitted when empty, aud
// an array, dates as whole seconds: jwt.TimePrecision is a second), then
// client_id, sid, roles and email (omitted when empty).
func (c accessClaimsJSON) appendJSON(b []byte) []byte {
	b = append(b, '{')
	if c.iss != "" {
		b = append(b, `"iss":`...)
		b = appendJSONString(b, c.iss)
		b = append(b, ',')
	}
	if c.sub != "" {
		b = append(b, `"sub":`...)
		b = appendJSONString(b, c.sub)
		b = append(b, ',')
	}
	b = append(b, `"aud":[`...)
	b = appendJSONString(b, c.aud)
	b = append(b, `],"exp":`...)
	b = strconv.AppendInt(b, c.exp, 10)
	b = append(b, `,"nbf":`...)
	b = strconv.AppendInt(b, c.nbf, 10)
	b = append(b, `,"iat":`...)
	b = strconv.AppendInt(b, c.iat, 10)
	if c.jti != "" {
		b = append(b, `,"jti":`...)
		b = appendJSONString(b, c.jti)
	}
	b = append(b, `,"client_id":`...)
	b = appendJSONString(b, c.clientID)
	b = append(b, `,"sid":`...)
	b = appendJSONString(b, c.sid)
	b = append(b, `,"roles":[`...)
	for i, r := range c.roles {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, r)
	}
	b = append(b, ']')
	if c.email != "" {
		b = append(b, `,"email":`...)
		b = appendJSONString(b, c.email)
	}
	return append(b, '}')
}

// appendJSONString is AppendJSONString.
func appendJSONString(b []byte, s string) []byte { return AppendJSONString(b, s) }

// AppendJSONString appends s as encoding/json encodes a string. Printable
// ASCII other than '"', '\\' and the HTML-escaped '<', '>' and '&' is
// written as it is; any other string is left to encoding/json itself. (The
// API's token response uses it too.)
func AppendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !plainJSON[s[i]] {
			q, _ := json.Marshal(s) // a string never fails
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// plainJSON holds the bytes appendJSONString writes as they are.
var plainJSON = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// forbiddenHeaders would let a token name its own key; they are refused.
var forbiddenHeaders = []string{"jku", "x5u", "jwk", "x5c", "x5t", "x5t#S256", "crit"}

// Verify checks an access token's signature, algorithm, typ, kid, iss, aud,
// exp, nbf and iat, and the presence of sub, sid and jti. It does not consult
// the denylist (Service.Authenticate does).
func (a *AccessTokens) Verify(token string) (Principal, error) {
	if len(token) > maxAccessTokenLen || strings.Count(token, ".") != 2 {
		return Principal{}, ErrInvalidToken
	}
	if p, ok := a.cache.get(token, a.now()); ok {
		// The client's audience may have changed since: the cached check
		// must reach the verdict a full one would.
		if aud, known := a.audienceOf(p.ClientID); known && slices.Contains(p.Audience, aud) {
			return p, nil
		}
		return Principal{}, fmt.Errorf("%w: token is not valid", ErrInvalidToken)
	}
	p, err := a.verify(token)
	if err != nil {
		return Principal{}, err
	}
	a.cache.put(token, p)
	return p, nil
}

// verify is Verify without the cache: the full signature and claims check.
func (a *AccessTokens) verify(token string) (Principal, error) {
	var claims AccessClaims
	_, err := a.parser.ParseWithClaims(token, &claims, a.keyFor)
	if err != nil {
		return Principal{}, fmt.Errorf("%w: %s", ErrInvalidToken, reasonOf(err))
	}
	if claims.ClientID == "" { // issued before clients existed
		claims.ClientID = a.defaultClient
	}
	aud, ok := a.audienceOf(claims.ClientID)
	if !ok {
		return Principal{}, fmt.Errorf("%w: token of an unknown client", ErrInvalidToken)
	}
	if !slices.Contains(claims.Audience, aud) {
		return Principal{}, fmt.Errorf("%w: token is not valid", ErrInvalidToken)
	}
	return principalOf(&claims)
}

func (a *AccessTokens) keyFor(t *jwt.Token) (any, error) {
	typ, _ := t.Header["typ"].(string)
	if !strings.EqualFold(typ, AccessTokenType) && !strings.EqualFold(typ, "application/"+AccessTokenType) {
		return nil, errors.New("wrong typ")
	}
	for _, h := range forbiddenHeaders {
		if _, ok := t.Header[h]; ok {
			return nil, errors.New("forbidden header")
		}
	}
	kid, _ := t.Header["kid"].(string)
	k, ok := a.keys.kids[kid]
	if !ok {
		return nil, errors.New("unknown kid")
	}
	return k.public, nil
}

func principalOf(c *AccessClaims) (Principal, error) {
	bad := func(what string) (Principal, error) {
		return Principal{}, fmt.Errorf("%w: %s", ErrInvalidToken, what)
	}
	// A client's own token (client_credentials) has sub = client_id; client
	// ids never parse as UUIDs, so the two kinds cannot be confused.
	var sub uuid.UUID
	if c.Subject != c.ClientID {
		var err error
		if sub, err = uuid.Parse(c.Subject); err != nil {
			return bad("bad sub")
		}
	}
	sid, err := uuid.Parse(c.SessionID)
	if err != nil {
		return bad("bad sid")
	}
	jti, err := uuid.Parse(c.ID)
	if err != nil {
		return bad("bad jti")
	}
	if c.IssuedAt == nil || c.ExpiresAt == nil {
		return bad("missing iat")
	}
	roles := c.Roles
	roles = NonNil(roles)
	return Principal{
		UserID: sub, ClientID: c.ClientID, SessionID: sid, TokenID: jti, Roles: roles, Email: c.Email,
		IssuedAt: c.IssuedAt.Time, ExpiresAt: c.ExpiresAt.Time,
		Issuer: c.Issuer, Audience: c.Audience,
	}, nil
}

// reasonOf turns a jwt error into a short reason. A token whose signature
// fails is reported as such even when it is also expired, so a tampered
// token never claims to be merely "expired".
func reasonOf(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable),
		errors.Is(err, jwt.ErrTokenMalformed):
		return "token is malformed or its signature is invalid"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token has expired"
	default:
		return "token is not valid"
	}
}

// UnmarshalJSON refuses exp, nbf and iat that are not JSON numbers. RFC 7519
// §2 defines a NumericDate as a JSON numeric value, but golang-jwt decodes
// through json.Number, which also takes a quoted string such as "1767225600".
// Both decodes below match member names the same way (last duplicate wins).
func (c *AccessClaims) UnmarshalJSON(b []byte) error {
	var dates struct {
		Exp json.RawMessage `json:"exp"`
		Nbf json.RawMessage `json:"nbf"`
		Iat json.RawMessage `json:"iat"`
	}
	if err := json.Unmarshal(b, &dates); err != nil {
		return err
	}
	for _, d := range [][]byte{dates.Exp, dates.Nbf, dates.Iat} {
		if len(d) > 0 && d[0] == '"' {
			return errors.New("exp, nbf and iat must be JSON numbers")
		}
	}
	type plain AccessClaims // without this method
	return json.Unmarshal(b, (*plain)(c))
}
