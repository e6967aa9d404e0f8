package tokens_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rotorauth/rotor/internal/tokens"
)

// TestDecide is SPEC §2 as a table: one row per rule, on hand-made state.
func TestDecide(t *testing.T) {
	const grace = 10 * time.Second
	at := t0
	prev, active, ancestor := []byte("prev-selector"), []byte("active-selector"), []byte("ancestor")
	// A session rotated 3 s ago: prev -> active.
	base := func() tokens.Presentation {
		revoked := (*time.Time)(nil)
		return tokens.Presentation{
			State: tokens.RefreshState{
				Token: tokens.RefreshRecord{Selector: active, ExpiresAt: at.Add(time.Hour)},
				Session: tokens.Session{ID: uuid.New(), ExpiresAt: at.Add(24 * time.Hour), RevokedAt: revoked,
					Chain: tokens.Chain{ActiveSelector: active, ActiveExpiresAt: at.Add(time.Hour), PrevSelector: prev, RotatedAt: at.Add(-3 * time.Second)}},
			},
			VerifierOK: true, Successor: active, Now: at,
		}
	}
	presentPrev := func(p *tokens.Presentation) { p.State.Token.Selector = prev }
	revokedAt := at.Add(-time.Minute)
	rows := []struct {
		rule   string
		policy tokens.Policy
		change func(p *tokens.Presentation)
		want   tokens.Verdict
		err    error // errors.Is target; nil for a verdict
	}{
		{"§2.2 the active token rotates", tokens.Policy{ReuseGrace: grace}, func(*tokens.Presentation) {}, tokens.VerdictRotate, nil},
		{"§2.3 the predecessor inside the window replays its successor", tokens.Policy{ReuseGrace: grace}, presentPrev, tokens.VerdictReplay, nil},
		{"§2.3 the grace clock is the rotation time: just inside", tokens.Policy{ReuseGrace: grace}, func(p *tokens.Presentation) {
			presentPrev(p)
			p.Now = p.State.Session.Chain.RotatedAt.Add(grace - time.Microsecond)
		}, tokens.VerdictReplay, nil},
		{"§2.4 the predecessor at the end of the window is reuse", tokens.Policy{ReuseGrace: grace}, func(p *tokens.Presentation) {
			presentPrev(p)
			p.Now = p.State.Session.Chain.RotatedAt.Add(grace)
		}, tokens.VerdictReuse, nil},
		{"§2.3 no replay once the successor expired", tokens.Policy{ReuseGrace: grace}, func(p *tokens.Presentation) {
			presentPrev(p)
			p.State.Session.Chain.ActiveExpiresAt = at
		}, tokens.VerdictReuse, nil},
		{"§2.3 no replay for a successor not derived from the presented token", tokens.Policy{ReuseGrace: grace}, func(p *tokens.Presentation) {
			presentPrev(p)
			p.Successor = []byte("another")
		}, tokens.VerdictReuse, nil},
		{"§2.3 strict mode: the predecessor is reuse at once", tokens.Policy{}, presentPrev, tokens.VerdictReuse, nil},
		{"§2.8 an older ancestor inside the window is reuse", tokens.Policy{ReuseGrace: grace}, func(p *tokens.Presentation) {
			p.State.Token.Selector = ancestor
		}, tokens.VerdictReuse, nil},
		{"§2.9 a negative elapsed time within the tolerated skew is a replay, never reuse", tokens.Policy{ReuseGrace: grace}, func(p *tokens.Presentation) {
			presentPrev(p)
			p.Now = p.State.Session.Chain.RotatedAt.Add(-tokens.MaxClockSkew + time.Millisecond)
		}, tokens.VerdictReplay, nil},
		{"§2.9 a clock further behind refuses as unavailable, never reuse", tokens.Policy{ReuseGrace: grace}, func(p *tokens.Presentation) {
			presentPrev(p)
			p.Now = p.State.Session.Chain.RotatedAt.Add(-tokens.MaxClockSkew - time.Millisecond)
		}, 0, tokens.ErrUnavailable},
		{"§2.5 a forged verifier is unknown", tokens.Policy{ReuseGrace: grace}, func(p *tokens.Presentation) { p.VerifierOK = false }, 0, tokens.ErrInvalidGrant},
		{"§2.5 an expired token is refused, even the active one", tokens.Policy{ReuseGrace: grace}, func(p *tokens.Presentation) {
			p.State.Token.ExpiresAt = at
		}, 0, tokens.ErrInvalidGrant},
		{"§2.3 over §2.5: the predecessor inside the window replays even if it expired since its rotation", tokens.Policy{ReuseGrace: grace}, func(p *tokens.Presentation) {
			presentPrev(p)
			p.State.Token.ExpiresAt = at.Add(-time.Second)
		}, tokens.VerdictReplay, nil},
		{"§2.5 an expired used token changes nothing (not reuse)", tokens.Policy{ReuseGrace: grace}, func(p *tokens.Presentation) {
			p.State.Token.Selector, p.State.Token.ExpiresAt = ancestor, at
		}, 0, tokens.ErrInvalidGrant},
		{"§2.5 a token of an expired session is refused", tokens.Policy{ReuseGrace: grace}, func(p *tokens.Presentation) {
			p.State.Session.ExpiresAt = at
		}, 0, tokens.ErrInvalidGrant},
		{"§2.7 revoked is terminal: no rotation", tokens.Policy{ReuseGrace: grace}, func(p *tokens.Presentation) {
			p.State.Session.RevokedAt = &revokedAt
		}, 0, tokens.ErrInvalidGrant},
		{"§2.7 revoked is terminal: no grace, no second revocation", tokens.Policy{ReuseGrace: grace}, func(p *tokens.Presentation) {
			presentPrev(p)
			p.State.Session.RevokedAt = &revokedAt
		}, 0, tokens.ErrInvalidGrant},
		{"§3 a disabled user's token is refused", tokens.Policy{ReuseGrace: grace}, func(p *tokens.Presentation) {
			p.State.User.Disabled = true
		}, 0, tokens.ErrInvalidGrant},
		{"RFC 6749 §6 another client's token is refused, even its reuse", tokens.Policy{ReuseGrace: grace}, func(p *tokens.Presentation) {
			p.State.Token.Selector = ancestor
			p.ClientID = "other-app"
		}, 0, tokens.ErrInvalidGrant},
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
				if errors.Is(err, tokens.ErrInvalidGrant) && tokens.IsReuse(err) {
					t.Fatal("a refusal reported as reuse")
				}
				return
			}
			if err != nil || v != r.want {
				t.Fatalf("Decide = %v, %v; want %v", v, err, r.want)
			}
		})
	}
}
