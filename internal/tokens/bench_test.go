package tokens_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rotorauth/rotor/internal/tokens"
)

func BenchmarkIssue(b *testing.B) {
	for _, alg := range allAlgs {
		b.Run(alg, func(b *testing.B) {
			f := newFixture(b, alg)
			user, sid, roles := uuid.New(), uuid.New(), []string{"admin"}
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := f.at.Issue(user, sid, roles, t0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerify measures the full check: signature and claims, no cache.
func BenchmarkVerify(b *testing.B) {
	for _, alg := range allAlgs {
		b.Run(alg, func(b *testing.B) {
			f := newFixture(b, alg)
			tok := f.issue(b, "admin")
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f.at.VerifyUncached(tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRefreshFirst is a login's token: a random secret, its hash and
// the tag.
func BenchmarkRefreshFirst(b *testing.B) {
	c := newCodec(b, secretA)
	sid := uuid.New()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.First(sid, t0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRefreshParse is the check every presented token gets before
// anything is looked up: decoding and the tag.
func BenchmarkRefreshParse(b *testing.B) {
	c := newCodec(b, secretA)
	tok := newRefresh(b, c).Token
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Parse(tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRefreshMatches(b *testing.B) {
	c := newCodec(b, secretA)
	r := newRefresh(b, c)
	p := mustParse(b, c, r.Token)
	b.ReportAllocs()
	for b.Loop() {
		if !c.Matches(p, r.VerifierHash) {
			b.Fatal("no match")
		}
	}
}

// BenchmarkRefreshSuccessor is the codec's share of a rotation: the
// successor's secret and hash, then the successor itself.
func BenchmarkRefreshSuccessor(b *testing.B) {
	c := newCodec(b, secretA)
	r := newRefresh(b, c)
	p := mustParse(b, c, r.Token)
	b.ReportAllocs()
	for b.Loop() {
		s := c.SuccessorSecret(p)
		if next := c.Mint(p.SessionID, p.Generation+1, t0, s); len(next.Token) != tokens.RefreshTokenLen {
			b.Fatal("bad successor")
		}
	}
}

func BenchmarkDenylistDenied(b *testing.B) {
	d := tokens.NewDenylist()
	for i := range 10_000 {
		kind := tokens.RevokeSession
		if i%2 == 0 {
			kind = tokens.RevokeToken
		}
		d.Add(tokens.Revocation{ID: int64(i + 1), Kind: kind, Subject: uuid.New(), Until: t0.Add(time.Hour)})
	}
	sid, jti := uuid.New(), uuid.New()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if d.Denied(sid, jti, t0) {
				b.Fatal("denied")
			}
		}
	})
}
