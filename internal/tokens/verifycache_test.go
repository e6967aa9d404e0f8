package tokens_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rotorauth/rotor/internal/tokens"
)

// A token verified once is served from the cache, but the cache never
// outlives the token's expiry and never accepts a different string.
func TestVerifyCacheKeepsExpiryAndExactness(t *testing.T) {
	ks, err := tokens.GenerateKeySet(tokens.AlgEdDSA)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	clock := func() time.Time { return now }
	at := tokens.NewAccessTokens(ks, "iss", "aud", time.Minute, clock)
	tok, _, err := at.Issue(uuid.New(), uuid.New(), nil, now)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // the second call is a cache hit
		if _, err := at.Verify(tok); err != nil {
			t.Fatalf("verify %d: %v", i, err)
		}
	}
	tampered := tok[:len(tok)-2] + "AA"
	if tampered == tok {
		tampered = tok[:len(tok)-2] + "BB"
	}
	if _, err := at.Verify(tampered); !errors.Is(err, tokens.ErrInvalidToken) {
		t.Fatalf("a tampered copy of a cached token: %v", err)
	}
	now = now.Add(time.Minute + tokens.Leeway)
	if _, err := at.Verify(tok); !errors.Is(err, tokens.ErrInvalidToken) {
		t.Fatalf("a cached token past exp+leeway: %v", err)
	}
}

func BenchmarkVerifyCached(b *testing.B) {
	ks, _ := tokens.GenerateKeySet(tokens.AlgEdDSA)
	at := tokens.NewAccessTokens(ks, "iss", "aud", time.Hour, time.Now)
	tok, _, _ := at.Issue(uuid.New(), uuid.New(), nil, time.Now())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := at.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}
