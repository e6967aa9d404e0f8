package tokens_test

import (
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

// FuzzRefreshParse: parsing never panics, and whatever parses is canonical
// (it re-encodes to the same string), so one token has one spelling.
func FuzzRefreshParse(f *testing.F) {
	codec, err := tokens.NewRefreshCodec([]byte("fuzzing secret of at least 32 bytes!"))
	if err != nil {
		f.Fatal(err)
	}
	good, _ := codec.New()
	f.Add(good.Token)
	f.Add("rt_")
	f.Add("rt_" + base64.RawURLEncoding.EncodeToString(make([]byte, 48)))
	f.Add("rt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	f.Fuzz(func(t *testing.T, token string) {
		p, err := codec.Parse(token)
		if err != nil {
			return
		}
		if again := "rt_" + base64.RawURLEncoding.EncodeToString(p.Raw); again != token {
			t.Fatalf("%q parsed but re-encodes as %q", token, again)
		}
	})
}
