package tokens_test

import (
	"bytes"
	"encoding/json"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rotorauth/rotor/internal/tokens"
)

// keySetFor builds the production key sets: GenerateKeySet for every alg, and
// NewHMACKeySet for HS256 as JWT_SECRET configures it.
func keySetsFor(t *testing.T, alg string) map[string]*tokens.KeySet {
	t.Helper()
	gen, err := tokens.GenerateKeySet(alg)
	if err != nil {
		t.Fatal(err)
	}
	sets := map[string]*tokens.KeySet{"GenerateKeySet": gen}
	if alg == tokens.AlgHS256 {
		hs, err := tokens.NewHMACKeySet([]byte("0123456789abcdef0123456789abcdef-shared"))
		if err != nil {
			t.Fatal(err)
		}
		sets["NewHMACKeySet"] = hs
	}
	return sets
}

func TestAccessRoundTrip(t *testing.T) {
	for _, alg := range allAlgs {
		for how, ks := range keySetsFor(t, alg) {
			t.Run(alg+"/"+how, func(t *testing.T) {
				if ks.Alg() != alg {
					t.Fatalf("Alg() = %q, want %q", ks.Alg(), alg)
				}
				at := tokens.NewAccessTokens(ks, testIssuer, testAudience, testTTL, func() time.Time { return t0.Add(time.Minute) })
				if at.TTL() != testTTL {
					t.Fatalf("TTL() = %v", at.TTL())
				}
				user, sid := uuid.New(), uuid.New()
				issuedAt := t0.Add(500 * time.Millisecond) // Issue truncates to whole seconds
				tok, issued, err := at.Issue(user, sid, []string{"admin", "introspect"}, issuedAt)
				if err != nil {
					t.Fatal(err)
				}
				p, err := at.Verify(tok)
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if p.UserID != user || p.SessionID != sid || p.TokenID != issued.TokenID || p.TokenID == uuid.Nil {
					t.Fatalf("principal %+v, issued %+v", p, issued)
				}
				if !slices.Equal(p.Roles, []string{"admin", "introspect"}) {
					t.Fatalf("roles %v", p.Roles)
				}
				if !p.IssuedAt.Equal(t0) || !p.ExpiresAt.Equal(t0.Add(testTTL)) || !issued.ExpiresAt.Equal(p.ExpiresAt) {
					t.Fatalf("iat %v exp %v", p.IssuedAt, p.ExpiresAt)
				}
				if p.Issuer != testIssuer || !slices.Equal(p.Audience, []string{testAudience}) {
					t.Fatalf("iss %q aud %v", p.Issuer, p.Audience)
				}

				h, c, _ := segments(t, tok)
				hdr := decodeSeg(t, h)
				if hdr["typ"] != "at+jwt" || hdr["alg"] != alg || hdr["kid"] != ks.SigningKID() || len(hdr) != 3 {
					t.Fatalf("header %v, want exactly alg, typ=at+jwt, kid=%s", hdr, ks.SigningKID())
				}
				claims := decodeSeg(t, c)
				want := map[string]any{
					"iss": testIssuer, "aud": []any{testAudience},
					"sub": user.String(), "sid": sid.String(), "jti": issued.TokenID.String(),
					"iat": float64(t0.Unix()), "nbf": float64(t0.Unix()),
					"exp": float64(t0.Add(testTTL).Unix()), "roles": []any{"admin", "introspect"},
					"client_id": tokens.DefaultClientID, // RFC 9068 §2.2
				}
				if len(claims) != len(want) {
					t.Fatalf("claims %v, want keys of %v", claims, want)
				}
				for k, v := range want {
					if got, _ := json.Marshal(claims[k]); !bytes.Equal(got, mustJSON(t, v)) {
						t.Errorf("claim %s = %s, want %s", k, got, mustJSON(t, v))
					}
				}
				if _, err := uuid.Parse(claims["jti"].(string)); err != nil {
					t.Errorf("jti %v is not a UUID", claims["jti"])
				}
			})
		}
	}
}

func TestAccessRolesAlwaysArray(t *testing.T) {
	for _, alg := range allAlgs {
		f := newFixture(t, alg)
		for _, roles := range [][]string{nil, {}} {
			tok, issued, err := f.at.Issue(uuid.New(), uuid.New(), roles, f.clock)
			if err != nil {
				t.Fatal(err)
			}
			_, c, _ := segments(t, tok)
			raw, _ := b64.DecodeString(c)
			if !bytes.Contains(raw, []byte(`"roles":[]`)) {
				t.Errorf("%s roles=%#v: payload %s has no empty roles array", alg, roles, raw)
			}
			p, err := f.at.Verify(tok)
			if err != nil {
				t.Fatal(err)
			}
			if p.Roles == nil || len(p.Roles) != 0 || issued.Roles == nil {
				t.Errorf("%s: roles %#v / %#v, want empty non-nil", alg, p.Roles, issued.Roles)
			}
		}
		// A token that says "roles": null (or omits it) still yields [] not nil.
		tok := f.token(t, nil, func(c map[string]any) { delete(c, "roles") })
		if p, err := f.at.Verify(tok); err != nil || p.Roles == nil {
			t.Errorf("%s: missing roles: %v %#v", alg, err, p.Roles)
		}
	}
}

func TestAccessJTIUnique(t *testing.T) {
	f := newFixture(t, tokens.AlgEdDSA)
	seen := map[uuid.UUID]bool{}
	for range 200 {
		_, p, err := f.at.Issue(uuid.New(), uuid.New(), nil, f.clock)
		if err != nil {
			t.Fatal(err)
		}
		if seen[p.TokenID] {
			t.Fatalf("jti %s issued twice", p.TokenID)
		}
		seen[p.TokenID] = true
	}
}

// TestHandSignedControl proves the hand-built tokens of the attack suite are
// accepted when nothing is wrong with them, so each refusal there is caused
// by the attack and nothing else.
func TestHandSignedControl(t *testing.T) {
	for _, alg := range allAlgs {
		f := newFixture(t, alg)
		if _, err := f.at.Verify(f.token(t, nil, nil)); err != nil {
			t.Errorf("%s: a valid hand-signed token was refused: %v", alg, err)
		}
		// application/at+jwt is the RFC 9068 long form of the same typ.
		tok := f.token(t, func(h map[string]any) { h["typ"] = "application/at+jwt" }, nil)
		if _, err := f.at.Verify(tok); err != nil {
			t.Errorf("%s: typ application/at+jwt refused: %v", alg, err)
		}
	}
}

func TestAccessLeeway(t *testing.T) {
	for _, alg := range allAlgs {
		t.Run(alg, func(t *testing.T) {
			f := newFixture(t, alg)
			tok := f.issue(t)
			f.clock = t0.Add(testTTL + 20*time.Second)
			if _, err := f.at.Verify(tok); err != nil {
				t.Fatalf("exp 20s ago refused: %v", err)
			}
			f.clock = t0.Add(testTTL + 40*time.Second)
			err := refused(t, f.at, tok)
			if !strings.Contains(err.Error(), "expired") {
				t.Fatalf("expired token reason %q does not say expired", err)
			}

			f.clock = t0
			for _, claim := range []string{"nbf", "iat"} {
				for skew, ok := range map[time.Duration]bool{20 * time.Second: true, 40 * time.Second: false} {
					tok := f.token(t, nil, func(c map[string]any) { c[claim] = t0.Add(skew).Unix() })
					_, err := f.at.Verify(tok)
					if ok && err != nil {
						t.Errorf("%s %v in the future refused: %v", claim, skew, err)
					}
					if !ok {
						refused(t, f.at, tok)
					}
				}
			}
		})
	}
}

// TestAccessTamperedExpiredIsNotExpired: a forged token must never be
// reported as merely "expired" (which would tell the forger the signature
// passed, and would let a client treat it as refreshable).
func TestAccessTamperedExpiredIsNotExpired(t *testing.T) {
	for _, alg := range allAlgs {
		f := newFixture(t, alg)
		tok := f.issue(t)
		f.clock = t0.Add(testTTL + time.Hour)
		if err := refused(t, f.at, tok); !strings.Contains(err.Error(), "expired") {
			t.Fatalf("%s control: untampered expired token says %q", alg, err)
		}
		h, c, s := segments(t, tok)
		claims := decodeSeg(t, c)
		claims["roles"] = []string{"admin"}
		forged := h + "." + b64.EncodeToString(mustJSON(t, claims)) + "." + s
		if err := refused(t, f.at, forged); strings.Contains(err.Error(), "expired") {
			t.Errorf("%s: tampered+expired token reported as %q", alg, err)
		}
	}
}

// TestAccessDuplicateClaims documents what Verify does with a payload that
// repeats a claim name. Go's encoding/json keeps the lexically last member,
// which is the behaviour RFC 7519 §4 allows; the Principal reports exactly the
// value that was validated. Nobody without the key can add a duplicate to an
// issued token, and Issue itself never writes one.
func TestAccessDuplicateClaims(t *testing.T) {
	for _, alg := range allAlgs {
		t.Run(alg, func(t *testing.T) {
			f := newFixture(t, alg)
			a, b := uuid.New(), uuid.New()
			hdr := mustJSON(t, f.header())
			exp := t0.Add(testTTL).Unix()
			payload := func(dups string) []byte {
				return []byte(`{"iss":"` + testIssuer + `","aud":["` + testAudience + `"],"exp":` +
					itoa(exp) + `,"iat":` + itoa(t0.Unix()) + `,"jti":"` + uuid.NewString() +
					`","sid":"` + uuid.NewString() + `",` + dups + `}`)
			}
			// Last wins: a valid sub followed by an invalid one is refused ...
			refused(t, f.at, signRaw(t, f.alg, f.priv, hdr, payload(`"roles":[],"sub":"`+a.String()+`","sub":"admin"`)))
			// ... and of two valid ones the last is the principal.
			p, err := f.at.Verify(signRaw(t, f.alg, f.priv, hdr, payload(`"roles":[],"sub":"`+a.String()+`","sub":"`+b.String()+`"`)))
			if err != nil || p.UserID != b {
				t.Fatalf("duplicate sub: got %v %v, want last (%v)", p.UserID, err, b)
			}
			// An earlier "admin" does not survive a later roles member.
			p, err = f.at.Verify(signRaw(t, f.alg, f.priv, hdr, payload(`"sub":"`+a.String()+`","roles":["admin"],"roles":[]`)))
			if err != nil || len(p.Roles) != 0 {
				t.Fatalf("duplicate roles: got %v %v, want []", p.Roles, err)
			}
			// Without the key, appending a duplicate to an issued token breaks it.
			h, c, s := segments(t, f.issue(t))
			orig, _ := b64.DecodeString(c)
			forged := append(bytes.TrimSuffix(slices.Clone(orig), []byte("}")), `,"roles":["admin"]}`...)
			refused(t, f.at, h+"."+b64.EncodeToString(forged)+"."+s)
			// Issue never writes a repeated member.
			assertUniqueKeys(t, orig)
		})
	}
}

func assertUniqueKeys(t *testing.T, obj []byte) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(obj))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("payload %s is not an object", obj)
	}
	seen := map[string]bool{}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		if seen[k.(string)] {
			t.Fatalf("Issue wrote claim %q twice in %s", k, obj)
		}
		seen[k.(string)] = true
	}
	if len(seen) != 10 {
		t.Fatalf("issued payload has %d claims, want 10", len(seen))
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestAccessHugeDots is the CVE-2025-30204 shape: a header of 900 KB of dots
// made strings.Split allocate O(n) slices in golang-jwt before v5.2.2.
// Verify must refuse it before any such work: measured in allocations and
// bytes, not time.
func TestAccessHugeDots(t *testing.T) {
	f := newFixture(t, tokens.AlgEdDSA)
	inputs := map[string]string{
		"dots":        "eyJhbGciOiJFZERTQSJ9" + strings.Repeat(".", 900*1024),
		"long-header": strings.Repeat("A", 900*1024) + ".e30.AAAA",
	}
	for name, tok := range inputs {
		refused(t, f.at, tok)
		allocs := testing.AllocsPerRun(20, func() { _, _ = f.at.Verify(tok) })
		if allocs > 4 {
			t.Errorf("%s: %v allocations per refusal, want a constant handful", name, allocs)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range 10 {
			_, _ = f.at.Verify(tok)
		}
		runtime.ReadMemStats(&after)
		if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
			t.Errorf("%s: 10 refusals allocated %d bytes, want < 1 MiB", name, d)
		}
	}
}
