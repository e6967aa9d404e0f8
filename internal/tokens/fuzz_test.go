package tokens_test

import (
	"bytes"
	"encoding/base64"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rotorauth/rotor/internal/tokens"
)

// FuzzVerify: the verifier never panics, and accepts nothing but the exact
// tokens it issued: no re-encoding, truncation or splice of a real token
// verifies.
func FuzzVerify(f *testing.F) {
	ks, err := tokens.GenerateKeySet(tokens.AlgEdDSA)
	if err != nil {
		f.Fatal(err)
	}
	now := time.Now()
	at := tokens.NewAccessTokens(ks, "https://rotor.test", "rotor", time.Hour, func() time.Time { return now })
	issued := map[string]bool{}
	for _, roles := range [][]string{nil, {"admin"}} {
		tok, _, err := at.Issue(uuid.New(), uuid.New(), roles, now)
		if err != nil {
			f.Fatal(err)
		}
		issued[tok] = true
		f.Add(tok)
	}
	for _, seed := range []string{"", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", "...", "eyJ.eyJ.", "a.b.c.d"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		p, err := at.Verify(token)
		if err == nil && !issued[token] {
			t.Fatalf("accepted a token that was never issued: %q (sub %v)", token, p.UserID)
		}
	})
}

// FuzzRefreshParse: parsing never panics, whatever parses is canonical (it
// re-encodes to the same string, so one token has one spelling) and has the
// length of its kind, and no v2 token of the seeded session parses but the
// two this codec minted: nothing else passes the tag.
func FuzzRefreshParse(f *testing.F) {
	codec, err := tokens.NewRefreshCodec([]byte("fuzzing secret of at least 32 bytes!"))
	if err != nil {
		f.Fatal(err)
	}
	sid := uuid.MustParse("6f1c3c2e-8d4b-4f0a-9a51-0c2d5e7f8a9b")
	// The seeds must be the same in every fuzzing worker: no First (its
	// secret is random); secrets derived from a fixed v1 token instead.
	v1, err := codec.Parse("rt_" + base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{0x5a}, 48)))
	if err != nil {
		f.Fatal(err)
	}
	login := codec.Mint(sid, 0, time.Unix(1_767_225_600, 0), codec.SuccessorSecret(v1))
	p, err := codec.Parse(login.Token)
	if err != nil {
		f.Fatal(err)
	}
	succ := codec.Mint(sid, 1, time.Unix(1_767_225_660, 123_456_000), codec.SuccessorSecret(p))
	f.Add(login.Token)
	f.Add(succ.Token)
	f.Add(codec.Mint(uuid.Nil, 1<<63, time.Unix(0, 0), codec.SuccessorSecret(p)).Token)
	f.Add(succ.Token[:len(succ.Token)-1] + "=")
	f.Add("rt_" + base64.RawURLEncoding.EncodeToString(make([]byte, 81)))
	f.Add("rt_" + base64.RawURLEncoding.EncodeToString(append([]byte{0x02}, make([]byte, 80)...)))
	f.Add("rt_")
	f.Add("rt_" + base64.RawURLEncoding.EncodeToString(make([]byte, 48))) // a v1 token
	f.Add("rt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	f.Fuzz(func(t *testing.T, token string) {
		p, err := codec.Parse(token)
		if err != nil {
			return
		}
		if again := "rt_" + base64.RawURLEncoding.EncodeToString(p.Raw); again != token {
			t.Fatalf("%q parsed but re-encodes as %q", token, again)
		}
		if p.Legacy {
			if len(token) != tokens.LegacyRefreshTokenLen || len(p.Selector) != 16 {
				t.Fatalf("%q parsed as a v1 token of length %d, selector %x", token, len(token), p.Selector)
			}
			return
		}
		if len(token) != tokens.RefreshTokenLen || p.Raw[0] != 0x02 {
			t.Fatalf("%q parsed as a v2 token of length %d, version %#x", token, len(token), p.Raw[0])
		}
		if p.SessionID == sid && p.Generation <= 1 && token != login.Token && token != succ.Token {
			t.Fatalf("%q: a token of the seeded session that was never minted parsed", token)
		}
	})
}
