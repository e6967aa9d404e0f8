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

// BenchmarkVerify: a valid EdDSA token, no denylist hit (10k entries).
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

// BenchmarkVerifyDenylistHit: a validly signed token of a revoked session.
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
