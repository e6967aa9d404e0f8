package tokens_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rotorauth/rotor/internal/tokens"
)

func newCodec(t testing.TB, secret string) *tokens.RefreshCodec {
	t.Helper()
	c, err := tokens.NewRefreshCodec([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const (
	secretA = "0123456789abcdef0123456789abcdef"
	secretB = "0123456789abcdef0123456789abcdeF"
)

// Sizes of the v2 format: rt_ base64url(0x02 ‖ session id (16) ‖
// generation (8) ‖ issued at (8) ‖ secret (32) ‖ tag (16)).
const (
	v2Raw       = 1 + 16 + 8 + 8 + 32 + 16
	v2SecretAt  = 1 + 16 + 8 + 8
	v2TagAt     = v2SecretAt + 32
	v1Raw       = 16 + 32
	alphabet64u = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
)

// first makes the first token of session sid at iat.
func first(t testing.TB, c *tokens.RefreshCodec, sid uuid.UUID, iat time.Time) tokens.IssuedRefresh {
	t.Helper()
	r, err := c.First(sid, iat)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// newRefresh is the first token of a new session.
func newRefresh(t testing.TB, c *tokens.RefreshCodec) tokens.IssuedRefresh {
	t.Helper()
	return first(t, c, uuid.New(), t0)
}

func mustParse(t testing.TB, c *tokens.RefreshCodec, token string) tokens.ParsedRefresh {
	t.Helper()
	p, err := c.Parse(token)
	if err != nil {
		t.Fatalf("Parse(%q): %v", token, err)
	}
	return p
}

func decodeBody(t testing.TB, token string) []byte {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(token, "rt_"))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func encodeRaw(raw []byte) string { return "rt_" + base64.RawURLEncoding.EncodeToString(raw) }

func isURLSafe(s string) bool {
	for _, r := range s {
		if !strings.ContainsRune(alphabet64u, r) {
			return false
		}
	}
	return true
}

// The documented derivations, written out independently of refresh.go.

func hmacSum(h func() hash.Hash, key, msg []byte) []byte {
	m := hmac.New(h, key)
	m.Write(msg)
	return m.Sum(nil)
}

// key is HMAC-SHA256(TOKEN_SECRET, label).
func key(secret, label string) []byte { return hmacSum(sha256.New, []byte(secret), []byte(label)) }

// handV2 encodes a v2 token by hand: version ‖ sid ‖ gen ‖ iat µs ‖ secret,
// tagged with HMAC-SHA256(tag key, all of that)[:16].
func handV2(secret string, version byte, sid uuid.UUID, gen uint64, iat time.Time, sec []byte) string {
	raw := []byte{version}
	raw = append(raw, sid[:]...)
	raw = binary.BigEndian.AppendUint64(raw, gen)
	raw = binary.BigEndian.AppendUint64(raw, uint64(iat.UnixMicro()))
	raw = append(raw, sec...)
	raw = append(raw, hmacSum(sha256.New, key(secret, "rotor refresh tag v2"), raw)[:16]...)
	return encodeRaw(raw)
}

// v2Hash is what a session stores of a v2 secret.
func v2Hash(secret string, sec []byte) []byte {
	return hmacSum(sha256.New, key(secret, "rotor refresh verifier v2"), sec)
}

// v2SuccessorSecret is the secret of the successor of a token whose raw
// bytes are presented.
func v2SuccessorSecret(secret string, presented []byte) []byte {
	return hmacSum(sha256.New, key(secret, "rotor refresh successor v2"), presented)
}

// v1Token is a refresh token as the code before rotation v2 made it.
type v1Token struct {
	Token    string
	Raw      []byte // selector ‖ verifier
	Selector []byte
	Hash     []byte // the verifier hash of its refresh_tokens row
}

func handV1(secret string, raw []byte) v1Token {
	return v1Token{
		Token: encodeRaw(raw), Raw: raw, Selector: raw[:16],
		Hash: hmacSum(sha256.New, key(secret, "rotor refresh verifier v1"), raw[16:]),
	}
}

func randomV1(t testing.TB, secret string) v1Token {
	t.Helper()
	raw := make([]byte, v1Raw)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	return handV1(secret, raw)
}

// handV1Successor is the v1 successor derivation: the first 48 bytes of
// HMAC-SHA512(HMAC-SHA256(secret, "rotor refresh successor v1"), selector ‖ verifier).
func handV1Successor(secret string, presented []byte) v1Token {
	return handV1(secret, hmacSum(sha512.New, key(secret, "rotor refresh successor v1"), presented)[:v1Raw])
}

func TestRefreshFirstShape(t *testing.T) {
	c := newCodec(t, secretA)
	if tokens.RefreshTokenLen != 3+108 {
		t.Fatalf("RefreshTokenLen = %d, want 111 (rt_ + 81 bytes in base64url)", tokens.RefreshTokenLen)
	}
	if tokens.LegacyRefreshTokenLen != 3+64 {
		t.Fatalf("LegacyRefreshTokenLen = %d, want 67 (rt_ + 48 bytes in base64url)", tokens.LegacyRefreshTokenLen)
	}
	sid := uuid.New()
	iat := t0.Add(1234567 * time.Nanosecond) // not a whole microsecond
	seen, secrets, hashes := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for range 1000 {
		r := first(t, c, sid, iat)
		if !strings.HasPrefix(r.Token, "rt_") || len(r.Token) != tokens.RefreshTokenLen {
			t.Fatalf("token %q: want rt_ prefix and length %d", r.Token, tokens.RefreshTokenLen)
		}
		if !isURLSafe(r.Token[3:]) {
			t.Fatalf("token %q is not URL-safe", r.Token)
		}
		raw := decodeBody(t, r.Token)
		sec := raw[v2SecretAt:v2TagAt]
		if seen[r.Token] || secrets[string(sec)] || hashes[string(r.VerifierHash)] {
			t.Fatalf("token, secret or hash repeated: %q", r.Token)
		}
		seen[r.Token], secrets[string(sec)], hashes[string(r.VerifierHash)] = true, true, true

		if len(raw) != v2Raw || raw[0] != 0x02 || !bytes.Equal(raw[1:17], sid[:]) {
			t.Fatalf("raw %x: want %d bytes, version 2, then the session id %x", raw, v2Raw, sid[:])
		}
		if binary.BigEndian.Uint64(raw[17:25]) != 0 || int64(binary.BigEndian.Uint64(raw[25:33])) != iat.UnixMicro() {
			t.Fatalf("raw %x: want generation 0 and issued at %d µs", raw, iat.UnixMicro())
		}
		if want := hmacSum(sha256.New, key(secretA, "rotor refresh tag v2"), raw[:v2TagAt])[:16]; !bytes.Equal(raw[v2TagAt:], want) {
			t.Fatalf("tag %x, want %x", raw[v2TagAt:], want)
		}
		if !bytes.Equal(r.VerifierHash, v2Hash(secretA, sec)) || bytes.Contains(r.VerifierHash, sec) {
			t.Fatalf("stored hash %x must be HMAC-SHA256(verifier key, secret), not the secret", r.VerifierHash)
		}
		if r.Selector != nil {
			t.Fatalf("a v2 token has no selector: %x", r.Selector)
		}
		p := mustParse(t, c, r.Token)
		if p.Legacy || p.Selector != nil || !bytes.Equal(p.Raw, raw) {
			t.Fatalf("parsed %+v: want a v2 token with raw %x", p, raw)
		}
		if p.SessionID != sid || p.Generation != 0 || !p.IssuedAt.Equal(iat.Truncate(time.Microsecond)) {
			t.Fatalf("parsed session %v gen %d iat %v; want %v, 0, %v", p.SessionID, p.Generation, p.IssuedAt, sid, iat.Truncate(time.Microsecond))
		}
		if !c.Matches(p, r.VerifierHash) || !bytes.Equal(c.VerifierHash(p), r.VerifierHash) {
			t.Fatal("parsed token does not match what First issued")
		}
	}
	// Another session's first token names that session.
	other := uuid.New()
	if p := mustParse(t, c, first(t, c, other, iat).Token); p.SessionID != other {
		t.Fatalf("First(%v) names session %v", other, p.SessionID)
	}
}

// TestRefreshFormatByHand: a token built by hand from the documented format
// and key derivations is the one Mint makes, byte for byte.
func TestRefreshFormatByHand(t *testing.T) {
	c := newCodec(t, secretA)
	sid := uuid.New()
	p := mustParse(t, c, first(t, c, sid, t0).Token)
	succ := c.SuccessorSecret(p)
	sec := v2SuccessorSecret(secretA, p.Raw)
	if !bytes.Equal(succ.Hash, v2Hash(secretA, sec)) {
		t.Fatalf("successor hash %x, want HMAC(verifier key, HMAC(successor key, presented))", succ.Hash)
	}
	iat := t0.Add(90 * time.Second)
	for _, gen := range []uint64{1, 2, 1 << 40, math.MaxUint64} {
		got := c.Mint(sid, gen, iat, succ)
		if want := handV2(secretA, 0x02, sid, gen, iat, sec); got.Token != want {
			t.Fatalf("gen %d: Mint = %q, by hand %q", gen, got.Token, want)
		}
		if !bytes.Equal(got.VerifierHash, succ.Hash) || got.Selector != nil {
			t.Fatalf("gen %d: Mint's stored hash %x, want the secret's %x and no selector", gen, got.VerifierHash, succ.Hash)
		}
	}
	// A hand-built token with a valid tag parses; with another version
	// byte, or tagged with another key, it does not.
	good := handV2(secretA, 0x02, sid, 3, iat, sec)
	if q := mustParse(t, c, good); q.SessionID != sid || q.Generation != 3 || !q.IssuedAt.Equal(iat) || !c.Matches(q, succ.Hash) {
		t.Fatalf("hand-built token parsed as %+v", q)
	}
	for name, tok := range map[string]string{
		"version 0x00": handV2(secretA, 0x00, sid, 3, iat, sec),
		"version 0x01": handV2(secretA, 0x01, sid, 3, iat, sec),
		"version 0x03": handV2(secretA, 0x03, sid, 3, iat, sec),
		"version 0xff": handV2(secretA, 0xff, sid, 3, iat, sec),
		"other secret": handV2(secretB, 0x02, sid, 3, iat, sec),
	} {
		if _, err := c.Parse(tok); !errors.Is(err, tokens.ErrInvalidGrant) {
			t.Errorf("%s: Parse = %v, want ErrInvalidGrant", name, err)
		}
	}
	tagV1 := func() string { // tagged with a key of another label
		raw := decodeBody(t, good)
		copy(raw[v2TagAt:], hmacSum(sha256.New, key(secretA, "rotor refresh verifier v2"), raw[:v2TagAt])[:16])
		return encodeRaw(raw)
	}()
	if _, err := c.Parse(tagV1); err == nil {
		t.Error("a token tagged with the verifier key parsed")
	}
}

func TestRefreshParseRoundTrip(t *testing.T) {
	c := newCodec(t, secretA)
	east := time.FixedZone("UTC+5", 5*3600)
	succ := c.SuccessorSecret(mustParse(t, c, newRefresh(t, c).Token))
	for _, tc := range []struct {
		name string
		sid  uuid.UUID
		gen  uint64
		iat  time.Time
	}{
		{"zero", uuid.Nil, 0, time.Unix(0, 0)},
		{"t0", uuid.New(), 1, t0},
		{"sub-microsecond is truncated", uuid.New(), 255, t0.Add(123456789 * time.Nanosecond)},
		{"another zone comes back in UTC", uuid.New(), 1 << 32, t0.In(east).Add(time.Microsecond)},
		{"before 1970", uuid.New(), 7, time.Unix(-86400, 5000)},
		{"largest generation", uuid.MustParse("ffffffff-ffff-ffff-ffff-ffffffffffff"), math.MaxUint64, t0.Add(100 * 365 * 24 * time.Hour)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := c.Mint(tc.sid, tc.gen, tc.iat, succ)
			if len(tok.Token) != tokens.RefreshTokenLen {
				t.Fatalf("length %d", len(tok.Token))
			}
			p := mustParse(t, c, tok.Token)
			want := tc.iat.Truncate(time.Microsecond)
			if p.Legacy || p.SessionID != tc.sid || p.Generation != tc.gen || !p.IssuedAt.Equal(want) {
				t.Fatalf("parsed %v gen %d iat %v legacy %v; want %v, %d, %v", p.SessionID, p.Generation, p.IssuedAt, p.Legacy, tc.sid, tc.gen, want)
			}
			if p.IssuedAt.Location() != time.UTC {
				t.Fatalf("IssuedAt in %v, want UTC", p.IssuedAt.Location())
			}
			if again := c.Mint(p.SessionID, p.Generation, p.IssuedAt, succ); again.Token != tok.Token {
				t.Fatalf("minting the parsed fields again gives %q, want %q", again.Token, tok.Token)
			}
			if !c.Matches(p, succ.Hash) {
				t.Fatal("the minted secret does not match its hash")
			}
		})
	}
}

// TestRefreshTamper: no single changed byte of a v2 token parses (the tag
// or the version catches it), whether changed in the raw bytes or in the
// text.
func TestRefreshTamper(t *testing.T) {
	c := newCodec(t, secretA)
	login := newRefresh(t, c)
	succ := c.Mint(uuid.New(), 41, t0.Add(time.Hour), c.SuccessorSecret(mustParse(t, c, login.Token)))
	for _, good := range []string{login.Token, succ.Token} {
		raw := decodeBody(t, good)
		for i := range raw {
			for _, mask := range []byte{0x01, 0x80, 0xff} {
				b := bytes.Clone(raw)
				b[i] ^= mask
				if p, err := c.Parse(encodeRaw(b)); err == nil {
					t.Fatalf("byte %d ^ %#x: tampered token parsed: %+v", i, mask, p)
				} else if !errors.Is(err, tokens.ErrInvalidGrant) {
					t.Fatalf("byte %d: error %v is not ErrInvalidGrant", i, err)
				}
			}
		}
		for i := 3; i < len(good); i++ {
			for _, ch := range []byte{'A', '_'} {
				if good[i] == ch {
					continue
				}
				b := []byte(good)
				b[i] = ch
				if _, err := c.Parse(string(b)); err == nil {
					t.Fatalf("char %d = %q: tampered token parsed", i, ch)
				}
			}
		}
		if _, err := c.Parse(good); err != nil {
			t.Fatalf("control: %v", err)
		}
	}
}

func TestRefreshOtherSecret(t *testing.T) {
	a, b := newCodec(t, secretA), newCodec(t, secretB)
	ta, tb := newRefresh(t, a), newRefresh(t, b)
	if _, err := b.Parse(ta.Token); !errors.Is(err, tokens.ErrInvalidGrant) {
		t.Fatalf("a token minted under another TOKEN_SECRET: Parse = %v", err)
	}
	if _, err := a.Parse(tb.Token); err == nil {
		t.Fatal("a token minted under another TOKEN_SECRET parsed")
	}
	succ := a.Mint(uuid.New(), 1, t0, a.SuccessorSecret(mustParse(t, a, ta.Token)))
	if _, err := b.Parse(succ.Token); err == nil {
		t.Fatal("a successor minted under another TOKEN_SECRET parsed")
	}
	// Instances share TOKEN_SECRET: another codec with the same secret
	// parses it.
	mustParse(t, newCodec(t, secretA), ta.Token)
	mustParse(t, newCodec(t, secretA), succ.Token)
}

func TestRefreshParseRejects(t *testing.T) {
	c := newCodec(t, secretA)
	good := newRefresh(t, c).Token
	body := good[3:]
	flip := func(i int, ch byte) string { b := []byte(good); b[i] = ch; return string(b) }
	raw := decodeBody(t, good)
	zeroTag := bytes.Clone(raw)
	clear(zeroTag[v2TagAt:])
	cases := map[string]string{
		"empty":                     "",
		"no prefix":                 body,
		"wrong prefix":              "rx_" + body,
		"upper-case prefix":         "RT_" + body,
		"prefix only":               "rt_",
		"one char short":            good[:len(good)-1],
		"four chars short":          good[:len(good)-4],
		"one char long":             good + "A",
		"four chars long":           good + "AAAA",
		"padded (=)":                good[:len(good)-1] + "=",
		"padded (==)":               good[:len(good)-2] + "==",
		"padded and long":           good + "=",
		"standard alphabet+":        flip(10, '+'),
		"standard alphabet/":        flip(10, '/'),
		"bad char !":                flip(20, '!'),
		"space":                     flip(20, ' '),
		"NUL":                       flip(20, 0),
		"non-ASCII":                 good[:len(good)-2] + "é",
		"all zero bytes":            encodeRaw(make([]byte, v2Raw)),
		"zero tag":                  encodeRaw(zeroTag),
		"no tag":                    encodeRaw(raw[:v2TagAt]),
		"tag twice":                 encodeRaw(append(bytes.Clone(raw), raw[v2TagAt:]...)),
		"legacy length, one short":  good[:tokens.LegacyRefreshTokenLen-1],
		"legacy length, one long":   good[:tokens.LegacyRefreshTokenLen+1],
		"legacy length, padded":     good[:tokens.LegacyRefreshTokenLen-1] + "=",
		"legacy length, bad char":   good[:tokens.LegacyRefreshTokenLen-1] + "!",
		"legacy length, no prefix":  "xx_" + good[3:tokens.LegacyRefreshTokenLen],
		"access token shape":        "eyJhbGciOiJFZERTQSJ9.e30." + strings.Repeat("A", 86),
		"v2 body in standard b64":   "rt_" + base64.StdEncoding.EncodeToString(raw),
		"v2 body, 4 bytes as 3 + 1": encodeRaw(raw[:v2Raw-1]) + "AA",
	}
	for name, tok := range cases {
		if tok == good {
			if name == "v2 body in standard b64" {
				continue // no '-' or '_' in this token (about 3 % of tokens): both alphabets spell it alike
			}
			t.Fatalf("%s: case equals the valid token", name)
		}
		_, err := c.Parse(tok)
		if err == nil {
			t.Errorf("%s: %q parsed", name, tok)
		} else if !errors.Is(err, tokens.ErrInvalidGrant) {
			t.Errorf("%s: error %v is not ErrInvalidGrant", name, err)
		}
	}
	if _, err := c.Parse(good); err != nil {
		t.Fatalf("control: %v", err)
	}
}

// TestRefreshParseCanonicalNewlines: one token has one spelling. Go's
// base64 decoder skips CR and LF even in Strict mode, and Parse checks only
// that the text has one of the two token lengths, not the one that matches
// what it decoded: 44 newlines pad a 67-character v1 token to 111 characters,
// the v2 length, and it parses as the v1 token.
func TestRefreshParseCanonicalNewlines(t *testing.T) {
	c := newCodec(t, secretA)
	v1 := randomV1(t, secretA)
	pad := tokens.RefreshTokenLen - tokens.LegacyRefreshTokenLen
	for name, tok := range map[string]string{
		"trailing LF":   v1.Token + strings.Repeat("\n", pad),
		"LFs inside":    v1.Token[:20] + strings.Repeat("\n", pad) + v1.Token[20:],
		"CRLF":          v1.Token[:10] + strings.Repeat("\r\n", pad/2) + v1.Token[10:],
		"one LF, short": v1.Token[:40] + "\n" + v1.Token[41:],
		"v2 with an LF": func() string { g := newRefresh(t, c).Token; return g[:50] + "\n" + g[51:] }(),
	} {
		if len(tok) != tokens.RefreshTokenLen && len(tok) != tokens.LegacyRefreshTokenLen {
			t.Fatalf("%s: length %d is neither token length", name, len(tok))
		}
		if p, err := c.Parse(tok); err == nil {
			t.Errorf("%s: %q parsed as a %d-byte token (legacy %v): a second spelling of one token", name, tok, len(p.Raw), p.Legacy)
		}
	}
}

func TestRefreshMatches(t *testing.T) {
	c := newCodec(t, secretA)
	a, b := newRefresh(t, c), newRefresh(t, c)
	pa := mustParse(t, c, a.Token)
	if !c.Matches(pa, a.VerifierHash) {
		t.Fatal("right secret refused")
	}
	flipped := bytes.Clone(a.VerifierHash)
	flipped[31] ^= 1
	wrong := map[string][]byte{
		"another token's hash": b.VerifierHash,
		"one bit flipped":      flipped,
		"zero hash":            make([]byte, 32),
		"empty":                nil,
		"truncated":            a.VerifierHash[:16],
		"extended":             append(bytes.Clone(a.VerifierHash), 0),
		"the raw secret":       pa.Raw[v2SecretAt:v2TagAt],
		"the v1 keyed hash":    hmacSum(sha256.New, key(secretA, "rotor refresh verifier v1"), pa.Raw[v2SecretAt:v2TagAt]),
	}
	for name, stored := range wrong {
		if c.Matches(pa, stored) {
			t.Errorf("%s: matched", name)
		}
	}
	// The stored hash is keyed by TOKEN_SECRET: another secret refuses it.
	if newCodec(t, secretB).Matches(pa, a.VerifierHash) {
		t.Error("a codec with another secret matched the stored hash")
	}
	// Same session, generation and issue time, another secret, a valid tag
	// (made with the real key): the secret is what matches.
	forged := handV2(secretA, 0x02, pa.SessionID, pa.Generation, pa.IssuedAt, bytes.Repeat([]byte{7}, 32))
	pf := mustParse(t, c, forged)
	if pf.SessionID != pa.SessionID || pf.Generation != pa.Generation {
		t.Fatal("forged token must name the same session and generation")
	}
	if c.Matches(pf, a.VerifierHash) || bytes.Equal(c.VerifierHash(pf), a.VerifierHash) {
		t.Fatal("another secret under a known session and generation matched")
	}
}

func TestRefreshSuccessor(t *testing.T) {
	c := newCodec(t, secretA)
	sid := uuid.New()
	a := first(t, c, sid, t0)
	pa := mustParse(t, c, a.Token)
	s1, s2 := c.SuccessorSecret(pa), c.SuccessorSecret(mustParse(t, c, a.Token))
	if !bytes.Equal(s1.Hash, s2.Hash) || len(s1.Hash) != 32 {
		t.Fatal("SuccessorSecret is not deterministic")
	}
	at := t0.Add(time.Minute)
	m1, m2 := c.Mint(sid, 1, at, s1), c.Mint(sid, 1, at, s2)
	if m1.Token != m2.Token || !bytes.Equal(m1.VerifierHash, m2.VerifierHash) || !bytes.Equal(m1.VerifierHash, s1.Hash) {
		t.Fatal("Mint of one successor secret is not byte-identical")
	}
	if bytes.Equal(s1.Hash, a.VerifierHash) || m1.Token == a.Token {
		t.Fatal("successor equals its predecessor")
	}
	ps := mustParse(t, c, m1.Token)
	if ps.SessionID != sid || ps.Generation != 1 || !ps.IssuedAt.Equal(at) {
		t.Fatalf("successor parsed as %v gen %d at %v", ps.SessionID, ps.Generation, ps.IssuedAt)
	}
	if !c.Matches(ps, s1.Hash) || c.Matches(ps, a.VerifierHash) || c.Matches(pa, s1.Hash) {
		t.Fatal("successor must match only its own hash")
	}
	if bytes.Equal(c.SuccessorSecret(ps).Hash, s1.Hash) {
		t.Fatal("successor of the successor repeats")
	}
	// Different presented tokens have different successors, even of one
	// session at one generation.
	b := first(t, c, sid, t0)
	if bytes.Equal(c.SuccessorSecret(mustParse(t, c, b.Token)).Hash, s1.Hash) {
		t.Fatal("different tokens share a successor")
	}
	// The successor depends on the whole presented token, not only its
	// secret: the same secret under another generation derives another.
	other := handV2(secretA, 0x02, sid, 9, t0, pa.Raw[v2SecretAt:v2TagAt])
	if bytes.Equal(c.SuccessorSecret(mustParse(t, c, other)).Hash, s1.Hash) {
		t.Fatal("successor ignores the token's header")
	}
	// Generation and issue time are in the token: they change it, not the
	// secret.
	if c.Mint(sid, 2, at, s1).Token == m1.Token || c.Mint(sid, 1, at.Add(time.Microsecond), s1).Token == m1.Token ||
		c.Mint(uuid.New(), 1, at, s1).Token == m1.Token {
		t.Fatal("Mint ignores the session, generation or issue time")
	}
	// A codec with another secret derives another successor, so knowing a
	// token does not reveal its successor without TOKEN_SECRET.
	cb := newCodec(t, secretB)
	if bytes.Equal(cb.SuccessorSecret(pa).Hash, s1.Hash) {
		t.Fatal("successor does not depend on the secret")
	}
	// Same secret in another instance: same successor (instances share it).
	ca := newCodec(t, secretA)
	if ca.Mint(sid, 1, at, ca.SuccessorSecret(pa)).Token != m1.Token {
		t.Fatal("two instances with one secret disagree on the successor")
	}
}

func TestRefreshLegacy(t *testing.T) {
	c := newCodec(t, secretA)
	for range 100 {
		v1 := randomV1(t, secretA)
		if len(v1.Token) != tokens.LegacyRefreshTokenLen {
			t.Fatalf("hand-made v1 token has length %d", len(v1.Token))
		}
		p := mustParse(t, c, v1.Token)
		if !p.Legacy || !bytes.Equal(p.Selector, v1.Selector) || !bytes.Equal(p.Raw, v1.Raw) {
			t.Fatalf("v1 token parsed as %+v", p)
		}
		if p.SessionID != uuid.Nil || p.Generation != 0 || !p.IssuedAt.IsZero() {
			t.Fatalf("v1 token has v2 fields: %+v", p)
		}
		if !c.Matches(p, v1.Hash) || !bytes.Equal(c.VerifierHash(p), v1.Hash) {
			t.Fatal("v1 token does not match its row's verifier hash")
		}
		flipped := bytes.Clone(v1.Hash)
		flipped[0] ^= 1
		if c.Matches(p, flipped) || c.Matches(p, v2Hash(secretA, v1.Raw[16:])) || c.Matches(p, randomV1(t, secretA).Hash) {
			t.Fatal("v1 token matched a wrong hash")
		}
		// v1 tokens carry no tag: any codec parses them, only the one
		// with the right secret matches the row.
		cb := newCodec(t, secretB)
		if pb := mustParse(t, cb, v1.Token); !pb.Legacy || cb.Matches(pb, v1.Hash) {
			t.Fatal("a codec with another secret matched a v1 row")
		}

		want := handV1Successor(secretA, v1.Raw)
		s1, s2 := c.LegacySuccessor(p), c.LegacySuccessor(mustParse(t, c, v1.Token))
		for _, s := range []tokens.IssuedRefresh{s1, s2} {
			if s.Token != want.Token || !bytes.Equal(s.Selector, want.Selector) || !bytes.Equal(s.VerifierHash, want.Hash) {
				t.Fatalf("LegacySuccessor = %q %x %x, want the v1 derivation %q %x %x",
					s.Token, s.Selector, s.VerifierHash, want.Token, want.Selector, want.Hash)
			}
		}
		ps := mustParse(t, c, s1.Token)
		if !ps.Legacy || !c.Matches(ps, s1.VerifierHash) || c.Matches(ps, v1.Hash) {
			t.Fatal("v1 successor must parse as v1 and match only its own hash")
		}
		if newCodec(t, secretB).LegacySuccessor(p).Token == s1.Token {
			t.Fatal("v1 successor does not depend on the secret")
		}
		// A v1 token rotates into a v2 token whose secret is derived
		// from it like any other.
		if got, want := c.SuccessorSecret(p).Hash, v2Hash(secretA, v2SuccessorSecret(secretA, v1.Raw)); !bytes.Equal(got, want) {
			t.Fatalf("SuccessorSecret(v1) hash %x, want %x", got, want)
		}
	}
	// The all-zero v1 token (a seed of the fuzz corpus) is well-formed.
	if p := mustParse(t, c, "rt_"+strings.Repeat("A", 64)); !p.Legacy || !bytes.Equal(p.Selector, make([]byte, 16)) {
		t.Fatalf("zero v1 token parsed as %+v", p)
	}
}

func TestRefreshCodecSecret(t *testing.T) {
	for _, n := range []int{0, 1, 16, 31} {
		if _, err := tokens.NewRefreshCodec(make([]byte, n)); err == nil {
			t.Errorf("%d-byte secret accepted", n)
		}
	}
	if _, err := tokens.NewRefreshCodec(nil); err == nil {
		t.Error("nil secret accepted")
	}
	for _, n := range []int{32, 64} {
		if _, err := tokens.NewRefreshCodec(bytes.Repeat([]byte{7}, n)); err != nil {
			t.Errorf("%d-byte secret refused: %v", n, err)
		}
	}
}

// TestRefreshMatchesSamePath: Matches does the same work for the right
// secret and for any wrong hash of the stored length. Allocation counts are
// a deterministic witness of one code path; timing is not asserted.
func TestRefreshMatchesSamePath(t *testing.T) {
	c := newCodec(t, secretA)
	a, b := newRefresh(t, c), newRefresh(t, c)
	pa := mustParse(t, c, a.Token)
	near := bytes.Clone(a.VerifierHash)
	near[31] ^= 1
	far := bytes.Clone(a.VerifierHash)
	far[0] ^= 1
	cost := func(stored []byte) float64 {
		return testing.AllocsPerRun(200, func() { _ = c.Matches(pa, stored) })
	}
	right := cost(a.VerifierHash)
	if right == 0 {
		t.Skip("Matches allocates nothing here, so allocations cannot tell paths apart")
	}
	for name, stored := range map[string][]byte{
		"other token": b.VerifierHash, "last byte differs": near,
		"first byte differs": far, "zeros": make([]byte, 32),
	} {
		if got := cost(stored); got != right {
			t.Errorf("%s: %v allocations, right secret %v: the paths differ", name, got, right)
		}
	}
}

// TestRefreshCheck: what Check establishes about a presented token against
// a session's state built by hand, for Decide.
func TestRefreshCheck(t *testing.T) {
	const ttl = 2 * time.Hour
	c := newCodec(t, secretA)
	sid := uuid.New()
	login := t0
	sessEnd := login.Add(24 * time.Hour)

	// A v2 session: login (generation 0), then rotations at +1 min and
	// +2 min, each successor derived from the token before it.
	tok0 := first(t, c, sid, login)
	p0 := mustParse(t, c, tok0.Token)
	r1 := login.Add(time.Minute)
	tok1 := c.Mint(sid, 1, r1, c.SuccessorSecret(p0))
	p1 := mustParse(t, c, tok1.Token)
	r2 := login.Add(2 * time.Minute)
	tok2 := c.Mint(sid, 2, r2, c.SuccessorSecret(p1))
	p2 := mustParse(t, c, tok2.Token)
	activeExp := r2.Add(ttl)
	v2State := func() tokens.RefreshState {
		return tokens.RefreshState{Session: tokens.Session{ID: sid, ExpiresAt: sessEnd, Chain: tokens.Chain{
			Generation: 2, VerifierHash: tok2.VerifierHash, ActiveExpiresAt: activeExp, RotatedAt: r2,
		}}}
	}
	loginState := func() tokens.RefreshState {
		return tokens.RefreshState{Session: tokens.Session{ID: sid, ExpiresAt: sessEnd, Chain: tokens.Chain{
			VerifierHash: tok0.VerifierHash, ActiveExpiresAt: login.Add(ttl), RotatedAt: login,
		}}}
	}
	// Tokens that do not belong to these states, all with valid tags.
	otherFirst := first(t, c, sid, login) // same session, generation 0, another secret
	stray := c.SuccessorSecret(mustParse(t, c, otherFirst.Token))
	sameGenOther := c.Mint(sid, 2, r2, stray) // generation 2, a secret not derived from tok1
	ahead := c.Mint(sid, 3, r2.Add(time.Second), c.SuccessorSecret(p2))
	otherSession := c.Mint(uuid.New(), 2, r2, c.SuccessorSecret(p1)) // tok2's secret, another session
	_ = p2

	// A v1 session (no rotation since the upgrade): A rotated into B, the
	// v1 way; Z is A's parent.
	z := randomV1(t, secretA)
	a := handV1Successor(secretA, z.Raw)
	b := handV1Successor(secretA, a.Raw)
	v1Exp := login.Add(ttl)
	row := func(v v1Token, exp time.Time) tokens.RefreshRecord {
		return tokens.RefreshRecord{Selector: v.Selector, SessionID: sid, VerifierHash: v.Hash, ExpiresAt: exp}
	}
	v1State := func(presented tokens.RefreshRecord) tokens.RefreshState {
		return tokens.RefreshState{Legacy: presented, Session: tokens.Session{ID: sid, ExpiresAt: sessEnd, Chain: tokens.Chain{
			ActiveSelector: b.Selector, ActiveExpiresAt: v1Exp.Add(time.Minute), PrevSelector: a.Selector, RotatedAt: r1,
		}}}
	}
	// The v1 session moved to v2: B rotated at r2 into generation 1.
	// v1 tokens with a known selector and a forged verifier.
	forged := func(v v1Token) string {
		return handV1(secretA, append(bytes.Clone(v.Selector), bytes.Repeat([]byte{9}, 32)...)).Token
	}
	pb := mustParse(t, c, b.Token)
	moved1 := c.Mint(sid, 1, r2, c.SuccessorSecret(pb))
	movedState := func(presented tokens.RefreshRecord) tokens.RefreshState {
		return tokens.RefreshState{Legacy: presented, Session: tokens.Session{ID: sid, ExpiresAt: sessEnd, Chain: tokens.Chain{
			Generation: 1, VerifierHash: moved1.VerifierHash, ActiveExpiresAt: activeExp, PrevSelector: b.Selector, RotatedAt: r2,
		}}}
	}

	type want struct {
		check  tokens.TokenCheck
		replay string // the token a grace replay answers; "-" not checked
	}
	notAuthentic := want{tokens.TokenCheck{}, ""}
	rows := []struct {
		name  string
		token string
		state tokens.RefreshState
		want  want
	}{
		{"v2: the active token", tok2.Token, v2State(),
			want{tokens.TokenCheck{Authentic: true, Active: true, ExpiresAt: activeExp}, ""}},
		{"v2: the login's token while active", tok0.Token, loginState(),
			want{tokens.TokenCheck{Authentic: true, Active: true, ExpiresAt: login.Add(ttl)}, ""}},
		{"v2: the active generation, another secret (a second First)", otherFirst.Token, loginState(), notAuthentic},
		{"v2: the active generation, a secret not derived from the predecessor", sameGenOther.Token, v2State(), notAuthentic},
		{"v2: a later generation than the session's", ahead.Token, v2State(), notAuthentic},
		{"v2: the active secret with another issue time (the key and the predecessor are not enough)",
			c.Mint(sid, 2, r2.Add(time.Microsecond), c.SuccessorSecret(p1)).Token, v2State(), notAuthentic},
		{"v2: another session's token", otherSession.Token, v2State(), notAuthentic},
		{"v2: the predecessor (generation − 1) replays the active token", tok1.Token, v2State(),
			want{tokens.TokenCheck{Authentic: true, Predecessor: true, ExpiresAt: r1.Add(ttl)}, tok2.Token}},
		{"v2: an older ancestor (generation − 2) is authentic and used", tok0.Token, v2State(),
			want{tokens.TokenCheck{Authentic: true, ExpiresAt: login.Add(ttl)}, "-"}},
		{"v2: an ancestor's expiry is capped at the session's", tok0.Token, func() tokens.RefreshState {
			st := v2State()
			st.Session.ExpiresAt = login.Add(30 * time.Minute)
			return st
		}(), want{tokens.TokenCheck{Authentic: true, ExpiresAt: login.Add(30 * time.Minute)}, "-"}},
		{"v2: generation − 1 whose successor is not the active token", tok1.Token, func() tokens.RefreshState {
			st := v2State()
			st.Session.Chain.VerifierHash = sameGenOther.VerifierHash
			return st
		}(), want{tokens.TokenCheck{Authentic: true, ExpiresAt: r1.Add(ttl)}, "-"}},
		{"v2: a session still on v1 (no verifier hash) knows no v2 token", tok0.Token, func() tokens.RefreshState {
			st := loginState()
			st.Session.Chain.VerifierHash, st.Session.Chain.ActiveSelector = nil, b.Selector
			return st
		}(), notAuthentic},
		{"v2: a chain without a verifier hash knows no v2 token, whatever its generation", tok0.Token, func() tokens.RefreshState {
			st := v2State()
			st.Session.Chain.VerifierHash = nil
			return st
		}(), notAuthentic},
		{"v2: §2.8 only generation − 1 is the predecessor, even if the active hash is its successor's", tok0.Token, func() tokens.RefreshState {
			st := v2State() // a chain that skipped a generation: at 2 with tok1's hash
			st.Session.Chain.VerifierHash = tok1.VerifierHash
			return st
		}(), want{tokens.TokenCheck{Authentic: true, ExpiresAt: login.Add(ttl)}, "-"}},

		{"v1 session: the active v1 token", b.Token, v1State(row(b, v1Exp.Add(time.Minute))),
			want{tokens.TokenCheck{Authentic: true, Active: true, ExpiresAt: v1Exp.Add(time.Minute)}, "-"}},
		{"v1 session: the predecessor replays its v1 successor", a.Token, v1State(row(a, v1Exp)),
			want{tokens.TokenCheck{Authentic: true, Predecessor: true, ExpiresAt: v1Exp}, b.Token}},
		{"v1 session: an older ancestor is authentic and used", z.Token, v1State(row(z, v1Exp)),
			want{tokens.TokenCheck{Authentic: true, ExpiresAt: v1Exp}, "-"}},
		{"v1 session: the predecessor's selector with a forged verifier", forged(a), v1State(row(a, v1Exp)), notAuthentic},
		{"v1 session: the active selector with a forged verifier", forged(b), v1State(row(b, v1Exp)), notAuthentic},
		{"v1 session: PrevSelector whose successor is not the active token", a.Token, func() tokens.RefreshState {
			st := v1State(row(a, v1Exp))
			st.Session.Chain.ActiveSelector = z.Selector
			return st
		}(), want{tokens.TokenCheck{Authentic: true, ExpiresAt: v1Exp}, "-"}},
		{"v1 session: a v2 token is unknown", tok0.Token, v1State(tokens.RefreshRecord{}), notAuthentic},

		{"moved to v2: the v1 token rotated into generation 1 is the predecessor", b.Token, movedState(row(b, v1Exp)),
			want{tokens.TokenCheck{Authentic: true, Predecessor: true, ExpiresAt: v1Exp}, moved1.Token}},
		{"moved to v2: the generation-1 token is active", moved1.Token, movedState(tokens.RefreshRecord{}),
			want{tokens.TokenCheck{Authentic: true, Active: true, ExpiresAt: activeExp}, ""}},
		{"moved to v2: an older v1 token is authentic and used", a.Token, movedState(row(a, v1Exp)),
			want{tokens.TokenCheck{Authentic: true, ExpiresAt: v1Exp}, "-"}},
		{"moved to v2 and rotated again: the v1 token is no longer the predecessor", b.Token, func() tokens.RefreshState {
			st := movedState(row(b, v1Exp))
			moved2 := c.Mint(sid, 2, r2.Add(time.Minute), c.SuccessorSecret(mustParse(t, c, moved1.Token)))
			st.Session.Chain = tokens.Chain{Generation: 2, VerifierHash: moved2.VerifierHash,
				ActiveExpiresAt: activeExp.Add(time.Minute), RotatedAt: r2.Add(time.Minute)}
			return st
		}(), want{tokens.TokenCheck{Authentic: true, ExpiresAt: v1Exp}, "-"}},
		{"moved to v2: PrevSelector left at generation 2 does not make a predecessor", b.Token, func() tokens.RefreshState {
			st := movedState(row(b, v1Exp))
			st.Session.Chain.Generation = 2
			return st
		}(), want{tokens.TokenCheck{Authentic: true, ExpiresAt: v1Exp}, "-"}},
		{"moved to v2: PrevSelector whose derived successor is not the active token", b.Token, func() tokens.RefreshState {
			st := movedState(row(b, v1Exp))
			st.Session.Chain.VerifierHash = tok1.VerifierHash
			return st
		}(), want{tokens.TokenCheck{Authentic: true, ExpiresAt: v1Exp}, "-"}},
		{"moved to v2: the predecessor's selector with a forged verifier", forged(b), movedState(row(b, v1Exp)), notAuthentic},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			p := mustParse(t, c, r.token)
			got, replay := c.Check(p, c.SuccessorSecret(p), r.state, ttl)
			if !r.want.check.Authentic { // Decide looks no further
				if got.Authentic {
					t.Fatalf("Check = %+v, want not authentic", got)
				}
				return
			}
			if got.Authentic != r.want.check.Authentic || got.Active != r.want.check.Active ||
				got.Predecessor != r.want.check.Predecessor {
				t.Fatalf("Check = %+v, want %+v", got, r.want.check)
			}
			if !got.ExpiresAt.Equal(r.want.check.ExpiresAt) {
				t.Fatalf("ExpiresAt = %v, want %v", got.ExpiresAt, r.want.check.ExpiresAt)
			}
			if r.want.replay != "-" && replay != r.want.replay {
				t.Fatalf("replay token %q, want %q", replay, r.want.replay)
			}
			if got.Predecessor {
				// The replay is the session's active token, derived again:
				// Mint(session, current generation, rotated_at, successor).
				ch := r.state.Session.Chain
				if want := c.Mint(sid, ch.Generation, ch.RotatedAt, c.SuccessorSecret(p)).Token; ch.VerifierHash != nil && replay != want {
					t.Fatalf("replay token %q, want %q", replay, want)
				}
				q := mustParse(t, c, replay)
				st := r.state
				if q.Legacy { // the store would read the replayed token's row
					st.Legacy = tokens.RefreshRecord{Selector: q.Selector, SessionID: sid, VerifierHash: c.VerifierHash(q), ExpiresAt: ch.ActiveExpiresAt}
				}
				if chk, _ := c.Check(q, c.SuccessorSecret(q), st, ttl); !chk.Authentic || !chk.Active {
					t.Fatalf("the replayed token is not the session's active token: %+v", chk)
				}
			}
		})
	}
}
