package verify_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/rotorauth/rotor/verify"
)

// benchVerifier is a ready Verifier whose denylist holds 10,000 revoked
// sessions (session-0 … session-9999).
func benchVerifier(b *testing.B) (*demoIssuer, *verify.Verifier) {
	b.Helper()
	rotor := startDemoIssuer()
	b.Cleanup(rotor.Close)
	sids := make([]string, 10000)
	for i := range sids {
		sids[i] = fmt.Sprintf("session-%d", i)
	}
	rotor.revokeSessions(sids...)
	v, err := verify.New(context.Background(), verify.Config{
		Issuer: rotor.URL, Audience: "rotor", Logger: quiet,
		TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "introspect"}),
		StaleAfter:  time.Minute,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { v.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := v.WaitReady(ctx); err != nil {
		b.Fatal(err)
	}
	if st := v.Status(); st.DeniedSessions != len(sids) {
		b.Fatalf("denylist %d, want %d", st.DeniedSessions, len(sids))
	}
	return rotor, v
}

// BenchmarkVerify: a valid EdDSA token presented again (the verified-token
// cache answers), no denylist hit among 10,000 entries.
func BenchmarkVerify(b *testing.B) {
	rotor, v := benchVerifier(b)
	token := rotor.issue("ada", "live-session", "customer")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, token); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyDenylistHit: a validly signed token of a revoked session,
// presented again.
func BenchmarkVerifyDenylistHit(b *testing.B) {
	rotor, v := benchVerifier(b)
	token := rotor.issue("ada", "session-4242")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, token); err == nil {
			b.Fatal("a revoked token verified")
		}
	}
}

// distinctTokens is more tokens than the verified-token cache holds, so
// cycling through them checks every signature.
func distinctTokens(rotor *demoIssuer, sid func(i int) string) []string {
	out := make([]string, 8192)
	for i := range out {
		out[i] = rotor.issue(fmt.Sprintf("user-%d", i), sid(i), "customer")
	}
	return out
}

// BenchmarkVerifyUncached: the full check (Ed25519 signature, header,
// claims) of a token not seen before, no denylist hit.
func BenchmarkVerifyUncached(b *testing.B) {
	rotor, v := benchVerifier(b)
	tokens := distinctTokens(rotor, func(i int) string { return fmt.Sprintf("live-%d", i) })
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := v.Verify(ctx, tokens[i%len(tokens)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkVerifyUncachedDenylistHit: the full check of a token not seen
// before whose session is revoked.
func BenchmarkVerifyUncachedDenylistHit(b *testing.B) {
	rotor, v := benchVerifier(b)
	tokens := distinctTokens(rotor, func(i int) string { return fmt.Sprintf("session-%d", i) })
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := v.Verify(ctx, tokens[i%len(tokens)]); err == nil {
			b.Fatal("a revoked token verified")
		}
		i++
	}
}

// BenchmarkVerifyParallel: BenchmarkVerify from GOMAXPROCS goroutines.
func BenchmarkVerifyParallel(b *testing.B) {
	rotor, v := benchVerifier(b)
	token := rotor.issue("ada", "live-session", "customer")
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.Verify(ctx, token); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
