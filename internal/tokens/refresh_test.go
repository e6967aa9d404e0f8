package tokens_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

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

func newRefresh(t testing.TB, c *tokens.RefreshCodec) tokens.IssuedRefresh {
	t.Helper()
	r, err := c.New()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func isURLSafe(s string) bool {
	for _, r := range s {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func TestRefreshNewShape(t *testing.T) {
	c := newCodec(t, secretA)
	if tokens.RefreshTokenLen != 3+64 {
		t.Fatalf("RefreshTokenLen = %d, want 67 (rt_ + 48 bytes in base64url)", tokens.RefreshTokenLen)
	}
	seen, sels := map[string]bool{}, map[string]bool{}
	for range 1000 {
		r := newRefresh(t, c)
		if !strings.HasPrefix(r.Token, "rt_") || len(r.Token) != tokens.RefreshTokenLen {
			t.Fatalf("token %q: want rt_ prefix and length %d", r.Token, tokens.RefreshTokenLen)
		}
		if !isURLSafe(r.Token[3:]) {
			t.Fatalf("token %q is not URL-safe", r.Token)
		}
		if seen[r.Token] || sels[string(r.Selector)] {
			t.Fatalf("token or selector repeated: %q", r.Token)
		}
		seen[r.Token], sels[string(r.Selector)] = true, true

		raw, _ := base64.RawURLEncoding.DecodeString(r.Token[3:])
		if len(raw) != 48 || !bytes.Equal(r.Selector, raw[:16]) {
			t.Fatalf("selector %x is not the first 16 of %x", r.Selector, raw)
		}
		if len(r.VerifierHash) != 32 || bytes.Contains(r.VerifierHash, raw[16:]) || bytes.Equal(r.VerifierHash, raw[16:]) {
			t.Fatalf("stored hash %x must be a 32-byte keyed hash, not the verifier", r.VerifierHash)
		}
		p, err := c.Parse(r.Token)
		if err != nil {
			t.Fatalf("Parse(New()): %v", err)
		}
		if !bytes.Equal(p.Raw, raw) || !bytes.Equal(p.Selector, r.Selector) || !c.Matches(p, r.VerifierHash) {
			t.Fatalf("parsed token does not match what New issued")
		}
	}
}

func TestRefreshParseRejects(t *testing.T) {
	c := newCodec(t, secretA)
	good := newRefresh(t, c).Token
	body := good[3:]
	flip := func(i int, ch byte) string { b := []byte(good); b[i] = ch; return string(b) }
	cases := map[string]string{
		"empty":              "",
		"no prefix":          body,
		"wrong prefix":       "rx_" + body,
		"upper-case prefix":  "RT_" + body,
		"prefix only":        "rt_",
		"one char short":     good[:len(good)-1],
		"one char long":      good + "A",
		"two chars long":     good + "AA",
		"padded (=)":         good[:len(good)-1] + "=",
		"padded (==)":        good[:len(good)-2] + "==",
		"padded and long":    good + "=",
		"standard alphabet+": flip(10, '+'),
		"standard alphabet/": flip(10, '/'),
		"bad char !":         flip(20, '!'),
		"space":              flip(20, ' '),
		"NUL":                flip(20, 0),
		"non-ASCII":          good[:len(good)-2] + "é",
		"access token shape": "eyJhbGciOiJFZERTQSJ9.e30." + strings.Repeat("A", 42),
	}
	for name, tok := range cases {
		if tok == good {
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

func TestRefreshMatches(t *testing.T) {
	c := newCodec(t, secretA)
	a, b := newRefresh(t, c), newRefresh(t, c)
	pa, _ := c.Parse(a.Token)
	if !c.Matches(pa, a.VerifierHash) {
		t.Fatal("right verifier refused")
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
		"the raw verifier":     pa.Raw[16:],
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
	// Same selector, different verifier: the verifier is what matters.
	forged := []byte(a.Token)
	if forged[len(forged)-5] == 'A' {
		forged[len(forged)-5] = 'B'
	} else {
		forged[len(forged)-5] = 'A'
	}
	pf, err := c.Parse(string(forged))
	if err != nil || !bytes.Equal(pf.Selector, pa.Selector) {
		t.Fatalf("forged token must parse with the same selector: %v", err)
	}
	if c.Matches(pf, a.VerifierHash) {
		t.Fatal("a forged verifier under a known selector matched")
	}
}

func TestRefreshSuccessor(t *testing.T) {
	c := newCodec(t, secretA)
	a := newRefresh(t, c)
	pa, _ := c.Parse(a.Token)
	s1, s2 := c.Successor(pa.Raw), c.Successor(bytes.Clone(pa.Raw))
	if s1.Token != s2.Token || !bytes.Equal(s1.Selector, s2.Selector) || !bytes.Equal(s1.VerifierHash, s2.VerifierHash) {
		t.Fatal("Successor is not deterministic")
	}
	if s1.Token == a.Token || bytes.Equal(s1.Selector, a.Selector) {
		t.Fatal("successor equals its predecessor")
	}
	if !strings.HasPrefix(s1.Token, "rt_") || len(s1.Token) != tokens.RefreshTokenLen || !isURLSafe(s1.Token[3:]) {
		t.Fatalf("successor %q is not a well-formed refresh token", s1.Token)
	}
	ps, err := c.Parse(s1.Token)
	if err != nil || !c.Matches(ps, s1.VerifierHash) || c.Matches(ps, a.VerifierHash) {
		t.Fatalf("successor must parse and match only its own hash (err %v)", err)
	}
	if c.Successor(ps.Raw).Token == s1.Token {
		t.Fatal("successor of the successor repeats")
	}
	b := newRefresh(t, c)
	pb, _ := c.Parse(b.Token)
	if c.Successor(pb.Raw).Token == s1.Token {
		t.Fatal("different tokens share a successor")
	}
	// A codec with another secret derives another successor, so knowing a
	// token does not reveal its successor without TOKEN_SECRET.
	if newCodec(t, secretB).Successor(pa.Raw).Token == s1.Token {
		t.Fatal("successor does not depend on the secret")
	}
	// Same secret in another instance: same successor (instances share it).
	if newCodec(t, secretA).Successor(pa.Raw).Token != s1.Token {
		t.Fatal("two instances with one secret disagree on the successor")
	}
	// The stored hash depends on the secret too.
	if bytes.Equal(newCodec(t, secretB).Successor(pa.Raw).VerifierHash, s1.VerifierHash) {
		t.Fatal("verifier hash does not depend on the secret")
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
// verifier and for any wrong one of the stored length. Allocation counts
// are a deterministic witness of one code path; timing is not asserted.
func TestRefreshMatchesSamePath(t *testing.T) {
	c := newCodec(t, secretA)
	a, b := newRefresh(t, c), newRefresh(t, c)
	pa, _ := c.Parse(a.Token)
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
			t.Errorf("%s: %v allocations, right verifier %v: the paths differ", name, got, right)
		}
	}
}
