package tokens_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rotorauth/rotor/internal/tokens"
)

// TestDecide is SPEC §2 as a table: one row per rule, on hand-made state and
// hand-made token checks (what RefreshCodec.Check would establish).
func TestDecide(t *testing.T) {
	const grace = 10 * time.Second
	at := t0
	rotatedAt := at.Add(-3 * time.Second)
	// A session at generation 5, rotated 3 s ago; its active token expires
	// in an hour, the session in a day.
	base := func() tokens.Presentation {
		return tokens.Presentation{
			State: tokens.RefreshState{
				Session: tokens.Session{ID: uuid.New(), UserID: uuid.New(), ExpiresAt: at.Add(24 * time.Hour),
					Chain: tokens.Chain{Generation: 5, VerifierHash: []byte("active-hash"),
						ActiveExpiresAt: at.Add(time.Hour), RotatedAt: rotatedAt}},
			},
			Token: tokens.TokenCheck{Authentic: true, Active: true, ExpiresAt: at.Add(time.Hour)},
			Now:   at,
		}
	}
	// The presented token is the one rotated last (generation 4), or an
	// older ancestor (generation 3): authentic, used, not yet expired.
	presentPrev := func(p *tokens.Presentation) {
		p.Token = tokens.TokenCheck{Authentic: true, Predecessor: true, ExpiresAt: at.Add(50 * time.Minute)}
	}
	presentAncestor := func(p *tokens.Presentation) {
		p.Token = tokens.TokenCheck{Authentic: true, ExpiresAt: at.Add(40 * time.Minute)}
	}
	then := func(fs ...func(*tokens.Presentation)) func(*tokens.Presentation) {
		return func(p *tokens.Presentation) {
			for _, f := range fs {
				f(p)
			}
		}
	}
	now := func(d time.Duration) func(*tokens.Presentation) { // d after the rotation
		return func(p *tokens.Presentation) { p.Now = p.State.Session.Chain.RotatedAt.Add(d) }
	}
	revokedAt := at.Add(-time.Minute)
	revoke := func(p *tokens.Presentation) { p.State.Session.RevokedAt = &revokedAt }
	withGrace, strict := tokens.Policy{ReuseGrace: grace}, tokens.Policy{}
	rows := []struct {
		rule   string
		policy tokens.Policy
		change func(p *tokens.Presentation)
		want   tokens.Verdict
		err    error // errors.Is target; nil for a verdict
	}{
		{"§2.2 the active token rotates", withGrace, func(*tokens.Presentation) {}, tokens.VerdictRotate, nil},
		{"§2.2 strict mode: the active token rotates", strict, func(*tokens.Presentation) {}, tokens.VerdictRotate, nil},
		{"§2.2 the active token rotates just before its expiry", withGrace, func(p *tokens.Presentation) {
			p.Token.ExpiresAt = at.Add(time.Microsecond)
		}, tokens.VerdictRotate, nil},
		{"§2.5 the active token at its expiry is refused", withGrace, func(p *tokens.Presentation) {
			p.Token.ExpiresAt = at
		}, 0, tokens.RefusalTokenExpired},
		{"§2.5 the active token after its expiry is refused", withGrace, func(p *tokens.Presentation) {
			p.Token.ExpiresAt = at.Add(-time.Hour)
		}, 0, tokens.RefusalTokenExpired},

		{"§2.3 the predecessor inside the window replays its successor", withGrace, presentPrev, tokens.VerdictReplay, nil},
		{"§2.3 the grace clock is the rotation time: just inside", withGrace, then(presentPrev, now(grace-time.Microsecond)), tokens.VerdictReplay, nil},
		{"§2.3 the predecessor at the instant of its rotation replays", withGrace, then(presentPrev, now(0)), tokens.VerdictReplay, nil},
		{"§2.4 §2.8 the predecessor at the end of the window is reuse", withGrace, then(presentPrev, now(grace)), tokens.VerdictReuse, nil},
		{"§2.4 §2.8 the predecessor after the window is reuse", withGrace, then(presentPrev, now(time.Minute)), tokens.VerdictReuse, nil},
		{"§2.3 §2.4 no replay once the successor expired: a used, unexpired token is reuse", withGrace, then(presentPrev, func(p *tokens.Presentation) {
			p.State.Session.Chain.ActiveExpiresAt = at
		}), tokens.VerdictReuse, nil},
		{"§2.3 §2.5 no replay once the successor expired: the predecessor, expired before it, is refused", withGrace, then(presentPrev, func(p *tokens.Presentation) {
			p.State.Session.Chain.ActiveExpiresAt = at
			p.Token.ExpiresAt = at.Add(-time.Second)
		}), 0, tokens.RefusalTokenExpired},
		{"§2.3 strict mode: the predecessor is reuse at once", strict, presentPrev, tokens.VerdictReuse, nil},
		{"§2.3 strict mode: the predecessor at the instant of its rotation is reuse", strict, then(presentPrev, now(0)), tokens.VerdictReuse, nil},
		{"§2.3 strict mode: no window, so a clock behind the rotation's is no replay", strict, then(presentPrev, now(-time.Millisecond)), tokens.VerdictReuse, nil},
		{"§2.3 strict mode: no window, so no clock is too far behind", strict, then(presentPrev, now(-time.Hour)), tokens.VerdictReuse, nil},
		{"§2.8 only the immediate predecessor: an older ancestor inside the window is reuse", withGrace, presentAncestor, tokens.VerdictReuse, nil},
		{"§2.8 an older ancestor at the instant of the rotation is reuse", withGrace, then(presentAncestor, now(0)), tokens.VerdictReuse, nil},

		{"§2.5 an expired used token changes nothing (not reuse)", withGrace, then(presentAncestor, func(p *tokens.Presentation) {
			p.Token.ExpiresAt = at
		}), 0, tokens.RefusalTokenExpired},
		{"§2.5 an expired predecessor after the window changes nothing (not reuse)", withGrace, then(presentPrev, now(grace), func(p *tokens.Presentation) {
			p.Token.ExpiresAt = p.Now
		}), 0, tokens.RefusalTokenExpired},
		{"§2.5 strict mode: an expired predecessor changes nothing (not reuse)", strict, then(presentPrev, func(p *tokens.Presentation) {
			p.Token.ExpiresAt = at
		}), 0, tokens.RefusalTokenExpired},
		{"§2.3 over §2.5: the predecessor inside the window replays even if it expired since its rotation", withGrace, then(presentPrev, func(p *tokens.Presentation) {
			p.Token.ExpiresAt = at.Add(-time.Second)
		}), tokens.VerdictReplay, nil},

		{"§2.5 a token that is not authentic is unknown", withGrace, func(p *tokens.Presentation) {
			p.Token = tokens.TokenCheck{ExpiresAt: at.Add(time.Hour)}
		}, 0, tokens.RefusalUnknownToken},
		{"§2.5 not authentic is unknown whatever else the check says", withGrace, func(p *tokens.Presentation) {
			p.Token = tokens.TokenCheck{Active: true, Predecessor: true, ExpiresAt: at.Add(time.Hour)}
		}, 0, tokens.RefusalUnknownToken},
		{"RFC 6749 §6 another client's active token is refused", withGrace, func(p *tokens.Presentation) {
			p.ClientID = "other-app"
		}, 0, tokens.RefusalWrongClient},
		{"RFC 6749 §6 another client's token is refused, even its reuse", withGrace, then(presentAncestor, func(p *tokens.Presentation) {
			p.ClientID = "other-app"
		}), 0, tokens.RefusalWrongClient},
		{"RFC 6749 §6 the default client's token presented by a named client is refused", withGrace, func(p *tokens.Presentation) {
			p.State.Session.ClientID, p.ClientID = "", "other-app"
		}, 0, tokens.RefusalWrongClient},
		{"RFC 6749 §6 a named client's own token rotates", withGrace, func(p *tokens.Presentation) {
			p.State.Session.ClientID, p.ClientID = "app", "app"
		}, tokens.VerdictRotate, nil},

		{"§2.7 revoked is terminal: no rotation", withGrace, revoke, 0, tokens.RefusalSessionRevoked},
		{"§2.7 revoked is terminal: no grace for the predecessor inside the window", withGrace, then(presentPrev, revoke), 0, tokens.RefusalSessionRevoked},
		{"§2.7 revoked is terminal: no second revocation for reuse", withGrace, then(presentAncestor, revoke), 0, tokens.RefusalSessionRevoked},
		{"§2.5 a token of a session at its expiry is refused", withGrace, func(p *tokens.Presentation) {
			p.State.Session.ExpiresAt = at
		}, 0, tokens.RefusalSessionExpired},
		{"§2.5 an expired session gives no grace", withGrace, then(presentPrev, func(p *tokens.Presentation) {
			p.State.Session.ExpiresAt = at.Add(-time.Second)
		}), 0, tokens.RefusalSessionExpired},
		{"§2.5 an expired session's used token is not reuse", withGrace, then(presentAncestor, func(p *tokens.Presentation) {
			p.State.Session.ExpiresAt = at
		}), 0, tokens.RefusalSessionExpired},
		{"§3 a disabled user's token is refused", withGrace, func(p *tokens.Presentation) {
			p.State.User.Disabled = true
		}, 0, tokens.RefusalUserUnavailable},
		{"§3 a disabled user's used token is not reuse", withGrace, then(presentAncestor, func(p *tokens.Presentation) {
			p.State.User.Disabled = true
		}), 0, tokens.RefusalUserUnavailable},

		{"§2.9 a negative elapsed time within the tolerated skew is a replay, never reuse", withGrace, then(presentPrev, now(-time.Millisecond)), tokens.VerdictReplay, nil},
		{"§2.9 a negative elapsed time of exactly MaxClockSkew is a replay", withGrace, then(presentPrev, now(-tokens.MaxClockSkew)), tokens.VerdictReplay, nil},
		{"§2.9 a clock further behind refuses as unavailable, never reuse", withGrace, then(presentPrev, now(-tokens.MaxClockSkew-time.Microsecond)), 0, tokens.ErrClockSkew},
		{"§2.9 a clock far behind refuses as unavailable, even for an expired predecessor", withGrace, then(presentPrev, now(-time.Hour), func(p *tokens.Presentation) {
			p.Token.ExpiresAt = at.Add(-2 * time.Hour)
		}), 0, tokens.ErrClockSkew},
	}
	for _, r := range rows {
		t.Run(r.rule, func(t *testing.T) {
			p := base()
			r.change(&p)
			v, err := tokens.Decide(r.policy, p)
			if r.err != nil {
				if !errors.Is(err, r.err) || v != 0 {
					t.Fatalf("Decide = %v, %v; want a refusal that is %v", v, err, r.err)
				}
				if tokens.IsReuse(err) {
					t.Fatal("a refusal reported as reuse")
				}
				switch {
				case errors.Is(r.err, tokens.ErrClockSkew):
					if !errors.Is(err, tokens.ErrUnavailable) || errors.Is(err, tokens.ErrInvalidGrant) {
						t.Fatalf("clock skew %v must be ErrUnavailable (retry), not ErrInvalidGrant", err)
					}
				case !errors.Is(err, tokens.ErrInvalidGrant):
					t.Fatalf("refusal %v is not ErrInvalidGrant", err)
				}
				return
			}
			if err != nil || v != r.want {
				t.Fatalf("Decide = %v, %v; want %v", v, err, r.want)
			}
		})
	}
}

// TestDecideRefusalsDistinct: the rows above tell the refusals apart only
// if the reasons are distinct errors (except the disabled user's, which
// looks unknown on purpose).
func TestDecideRefusalsDistinct(t *testing.T) {
	reasons := map[string]error{
		"unknown": tokens.RefusalUnknownToken, "token expired": tokens.RefusalTokenExpired,
		"session expired": tokens.RefusalSessionExpired, "session revoked": tokens.RefusalSessionRevoked,
		"wrong client": tokens.RefusalWrongClient, "clock skew": tokens.ErrClockSkew,
	}
	for a, ea := range reasons {
		for b, eb := range reasons {
			if a != b && errors.Is(ea, eb) {
				t.Errorf("%s Is %s", a, b)
			}
		}
	}
	if !errors.Is(tokens.RefusalUserUnavailable, tokens.RefusalUnknownToken) {
		t.Error("a disabled user's refusal must look like an unknown token")
	}
}
