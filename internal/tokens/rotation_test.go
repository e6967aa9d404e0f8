package tokens_test

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rotorauth/rotor/internal/tokens"
)

// chainStore is a Store that holds sessions (and v1 token rows) in memory
// and applies refresh outcomes as Store.Refresh documents. It has what a
// login, a refresh and a revocation by refresh token need; any other call
// panics.
type chainStore struct {
	tokens.Store // nil
	mu           sync.Mutex
	users        map[uuid.UUID]tokens.User
	sessions     map[uuid.UUID]tokens.Session
	legacy       map[string]tokens.RefreshRecord // v1 rows by selector
	audit        []tokens.AuditEvent
	refreshes    int // Refresh calls
	nextRev      int64
}

func newChainStore() *chainStore {
	return &chainStore{users: map[uuid.UUID]tokens.User{}, sessions: map[uuid.UUID]tokens.Session{},
		legacy: map[string]tokens.RefreshRecord{}}
}

func (s *chainStore) UserByEmail(_ context.Context, norm string) (tokens.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range s.users {
		if n, _ := tokens.NormalizeEmail(u.Email); n == norm {
			return u, nil
		}
	}
	return tokens.User{}, tokens.ErrNotFound
}

func (s *chainStore) CreateSession(_ context.Context, ns tokens.NewSession) (tokens.User, []tokens.Revocation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[ns.Session.UserID]
	if !ok || u.Disabled || u.PasswordHash != ns.PasswordHash {
		return tokens.User{}, nil, tokens.ErrNotFound
	}
	s.sessions[ns.Session.ID] = ns.Session
	s.audit = append(s.audit, ns.Event)
	u.PasswordHash = ""
	return u, nil, nil
}

func (s *chainStore) AddAudit(_ context.Context, ev tokens.AuditEvent) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.audit = append(s.audit, ev)
	return nil
}

func (s *chainStore) Refresh(_ context.Context, ref tokens.TokenRef, decide func(tokens.RefreshState) (tokens.RefreshOutcome, error)) ([]tokens.Revocation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refreshes++
	var st tokens.RefreshState
	id := ref.SessionID
	if ref.LegacySelector != nil {
		rec, ok := s.legacy[string(ref.LegacySelector)]
		if !ok {
			return nil, tokens.ErrNotFound
		}
		st.Legacy, id = rec, rec.SessionID
	}
	sess, ok := s.sessions[id]
	if !ok {
		return nil, tokens.ErrNotFound
	}
	st.Session, st.User = sess, s.users[sess.UserID]
	st.User.PasswordHash = ""
	out, err := decide(st)
	if err != nil {
		return nil, err
	}
	switch out.Kind {
	case tokens.OutcomeRotate:
		if out.Chain.Generation != sess.Chain.Generation+1 || sess.RevokedAt != nil || !out.Chain.RotatedAt.Equal(out.Now) {
			return nil, errors.New("chainStore: rotation breaks the contract")
		}
		sess.Chain, sess.LastUsedAt, sess.RefreshCount = out.Chain, out.Now, sess.RefreshCount+1
		sess.LastIP, sess.LastUserAgent = out.Client.IP, out.Client.UserAgent
		s.sessions[id] = sess
		s.addEvents(sess, out.Events...)
	case tokens.OutcomeRevoke:
		return s.revoke(out.Revoke), nil
	}
	return nil, nil
}

func (s *chainStore) revoke(r tokens.SessionRevocation) []tokens.Revocation {
	sess, ok := s.sessions[r.SessionID]
	if !ok || sess.RevokedAt != nil {
		return nil
	}
	at := r.At
	sess.RevokedAt, sess.RevokedReason = &at, r.Reason
	s.sessions[sess.ID] = sess
	s.addEvents(sess, r.Event)
	s.nextRev++
	return []tokens.Revocation{{ID: s.nextRev, Kind: tokens.RevokeSession, Subject: sess.ID, Until: r.DenyUntil}}
}

func (s *chainStore) addEvents(sess tokens.Session, evs ...tokens.AuditEvent) {
	for _, ev := range evs {
		uid, sid := sess.UserID, sess.ID
		ev.UserID, ev.SessionID = &uid, &sid
		s.audit = append(s.audit, ev)
	}
}

func (s *chainStore) session(t testing.TB, id uuid.UUID) tokens.Session {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[id]
	if !ok {
		t.Fatalf("no session %v", id)
	}
	return sess
}

// events returns the audit events written since the last call.
func (s *chainStore) events(from *int) []tokens.AuditEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	evs := slices.Clone(s.audit[*from:])
	*from = len(s.audit)
	return evs
}

// fastStore adds a FastRotator to chainStore that does what
// FastRotator.RotateActive documents, and records its calls.
type fastStore struct {
	*chainStore
	calls []tokens.ActiveRotation
}

func (s *fastStore) RotateActive(_ context.Context, r tokens.ActiveRotation) (tokens.RefreshState, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, r)
	now := r.Now()
	sess, ok := s.sessions[r.SessionID]
	u := s.users[sess.UserID]
	ch := sess.Chain
	if !ok || ch.Generation != r.Generation || ch.VerifierHash == nil ||
		subtle.ConstantTimeCompare(ch.VerifierHash, r.VerifierHash) != 1 ||
		!now.Before(ch.ActiveExpiresAt) || !now.Before(sess.ExpiresAt) || sess.ClientID != r.ClientID ||
		sess.RevokedAt != nil || u.Disabled || now.Before(ch.RotatedAt) {
		return tokens.RefreshState{}, false, nil
	}
	var evs []tokens.AuditEvent
	if r.EveryRefresh {
		evs = append(evs, tokens.AuditEvent{At: now, Kind: tokens.EventRefresh, IP: r.Client.IP})
	}
	if sess.LastIP != r.Client.IP || sess.LastUserAgent != r.Client.UserAgent {
		evs = append(evs, tokens.MovedEvent(sess, now, r.Client))
	}
	exp := now.Add(r.RefreshTTL)
	if sess.ExpiresAt.Before(exp) {
		exp = sess.ExpiresAt
	}
	sess.Chain = tokens.Chain{Generation: ch.Generation + 1, VerifierHash: r.SuccessorHash, ActiveExpiresAt: exp, RotatedAt: now}
	sess.LastUsedAt, sess.RefreshCount = now, sess.RefreshCount+1
	sess.LastIP, sess.LastUserAgent = r.Client.IP, r.Client.UserAgent
	s.sessions[sess.ID] = sess
	s.addEvents(sess, evs...)
	u.PasswordHash = ""
	return tokens.RefreshState{Session: sess, User: u}, true, nil
}

const (
	rotTTL     = time.Hour
	rotGrace   = 10 * time.Second
	rotEmail   = "ada@example.com"
	rotPass    = "correct horse battery"
	rotSession = 24 * time.Hour
)

// rotationRig is a Service over a store, with a clock the test moves.
type rotationRig struct {
	svc   *tokens.Service
	codec *tokens.RefreshCodec
	store *chainStore
	user  tokens.User
	mu    sync.Mutex
	clock time.Time
	seen  int // audit events already looked at
}

func (r *rotationRig) now() time.Time { r.mu.Lock(); defer r.mu.Unlock(); return r.clock }
func (r *rotationRig) advance(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clock = r.clock.Add(d)
}

func newRotationRig(t testing.TB, store tokens.Store, cs *chainStore, cfg tokens.Config) *rotationRig {
	t.Helper()
	ks, err := tokens.GenerateKeySet(tokens.AlgEdDSA)
	if err != nil {
		t.Fatal(err)
	}
	r := &rotationRig{store: cs, codec: newCodec(t, secretA), clock: t0.Add(123456789 * time.Nanosecond)}
	r.user = tokens.User{ID: uuid.New(), Email: rotEmail, PasswordHash: "plain:" + rotPass, Roles: []string{"reader"}, CreatedAt: t0}
	cs.users[r.user.ID] = r.user
	cfg.Issuer, cfg.Audience, cfg.AccessTTL = testIssuer, testAudience, testTTL
	cfg.RefreshTTL, cfg.SessionMaxLifetime, cfg.ReuseGrace = rotTTL, rotSession, rotGrace
	cfg.Keys, cfg.TokenSecret, cfg.Now = ks, []byte(secretA), r.now
	r.svc, err = tokens.NewService(store, plainHasher{}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// nowUTC is the service's clock reading: UTC, to the microsecond.
func (r *rotationRig) nowUTC() time.Time { return r.now().UTC().Truncate(time.Microsecond) }

func (r *rotationRig) login(t testing.TB, client tokens.ClientInfo) tokens.TokenPair {
	t.Helper()
	pair, err := r.svc.Login(context.Background(), rotEmail, rotPass, client)
	if err != nil {
		t.Fatal(err)
	}
	r.store.events(&r.seen)
	return pair
}

func (r *rotationRig) refresh(t testing.TB, token string, client tokens.ClientInfo) tokens.TokenPair {
	t.Helper()
	pair, err := r.svc.Refresh(context.Background(), token, client)
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	return pair
}

// wantEvents fails t unless the audit events written since the last look
// are of kinds, in order.
func (r *rotationRig) wantEvents(t testing.TB, kinds ...tokens.EventKind) []tokens.AuditEvent {
	t.Helper()
	evs := r.store.events(&r.seen)
	var got []tokens.EventKind
	for _, ev := range evs {
		got = append(got, ev.Kind)
	}
	if !slices.Equal(got, kinds) {
		t.Fatalf("audit events %v, want %v", got, kinds)
	}
	return evs
}

// wantRotated checks that pair is the rotation of the token prev (parsed)
// into generation gen at the rig's instant, and that the session's chain
// says so.
func (r *rotationRig) wantRotated(t testing.TB, pair tokens.TokenPair, prev tokens.ParsedRefresh, sid uuid.UUID, gen uint64, count int64) tokens.ParsedRefresh {
	t.Helper()
	now := r.nowUTC()
	if pair.SessionID != sid {
		t.Fatalf("pair of session %v, want %v", pair.SessionID, sid)
	}
	if want := r.codec.Mint(sid, gen, now, r.codec.SuccessorSecret(prev)).Token; pair.RefreshToken != want {
		t.Fatalf("refresh token %q, want the successor derived from the presented token %q", pair.RefreshToken, want)
	}
	p := mustParse(t, r.codec, pair.RefreshToken)
	if p.SessionID != sid || p.Generation != gen || !p.IssuedAt.Equal(now) {
		t.Fatalf("token of %v gen %d at %v; want %v, %d, %v", p.SessionID, p.Generation, p.IssuedAt, sid, gen, now)
	}
	sess := r.store.session(t, sid)
	ch := sess.Chain
	if ch.Generation != gen || !r.codec.Matches(p, ch.VerifierHash) || !ch.RotatedAt.Equal(now) ||
		!ch.ActiveExpiresAt.Equal(now.Add(rotTTL)) || ch.ActiveSelector != nil {
		t.Fatalf("chain %+v: want generation %d, the new token's hash, rotated at %v", ch, gen, now)
	}
	if sess.RefreshCount != count || !sess.LastUsedAt.Equal(now) {
		t.Fatalf("refresh count %d, last used %v; want %d, %v", sess.RefreshCount, sess.LastUsedAt, count, now)
	}
	if pair.RefreshExpiresIn != int64(rotTTL/time.Second) || pair.Principal.SessionID != sid || pair.Principal.UserID != r.user.ID {
		t.Fatalf("pair %+v", pair)
	}
	if _, err := r.svc.Authenticate(pair.AccessToken); err != nil {
		t.Fatalf("the new access token: %v", err)
	}
	return p
}

// TestRotationV2 drives login, rotation, grace replay, session_moved
// events and reuse through the Service's locked path (Store.Refresh).
func TestRotationV2(t *testing.T) {
	ctx := context.Background()
	cs := newChainStore()
	r := newRotationRig(t, cs, cs, tokens.Config{})
	home := tokens.ClientInfo{UserAgent: "app/1", IP: "192.0.2.1"}

	login := r.login(t, home)
	sid, now := login.SessionID, r.nowUTC()
	p0 := mustParse(t, r.codec, login.RefreshToken)
	if p0.Legacy || p0.SessionID != sid || p0.Generation != 0 || !p0.IssuedAt.Equal(now) {
		t.Fatalf("login token %+v: want session %v, generation 0, issued %v", p0, sid, now)
	}
	sess := cs.session(t, sid)
	if ch := sess.Chain; ch.Generation != 0 || !r.codec.Matches(p0, ch.VerifierHash) || ch.ActiveSelector != nil ||
		ch.PrevSelector != nil || !ch.RotatedAt.Equal(now) || !ch.ActiveExpiresAt.Equal(now.Add(rotTTL)) {
		t.Fatalf("login chain %+v", ch)
	}
	if sess.LastIP != home.IP || sess.LastUserAgent != home.UserAgent || sess.RefreshCount != 0 {
		t.Fatalf("login session: last %q %q, count %d", sess.LastIP, sess.LastUserAgent, sess.RefreshCount)
	}

	// An ordinary rotation writes no audit event.
	r.advance(time.Minute)
	pair1 := r.refresh(t, login.RefreshToken, home)
	p1 := r.wantRotated(t, pair1, p0, sid, 1, 1)
	r.wantEvents(t)
	chain1 := cs.session(t, sid).Chain

	// A retry of the rotated token inside the window gets the same
	// successor and writes nothing.
	r.advance(rotGrace - time.Second)
	replay := r.refresh(t, login.RefreshToken, home)
	if replay.RefreshToken != pair1.RefreshToken {
		t.Fatalf("grace replay %q, want the successor %q", replay.RefreshToken, pair1.RefreshToken)
	}
	if after := cs.session(t, sid); after.RefreshCount != 1 || !after.Chain.RotatedAt.Equal(chain1.RotatedAt) || after.Chain.Generation != 1 {
		t.Fatalf("a replay wrote: %+v", after)
	}
	if want := int64(chain1.ActiveExpiresAt.Sub(r.nowUTC()) / time.Second); replay.RefreshExpiresIn != want {
		t.Fatalf("replay: refresh_expires_in %d, want %d", replay.RefreshExpiresIn, want)
	}
	if _, err := r.svc.Authenticate(replay.AccessToken); err != nil {
		t.Fatalf("replay access token: %v", err)
	}
	r.wantEvents(t)

	// A rotation from another address writes session_moved.
	r.advance(time.Minute)
	away := tokens.ClientInfo{UserAgent: home.UserAgent, IP: "198.51.100.7"}
	pair2 := r.refresh(t, pair1.RefreshToken, away)
	p2 := r.wantRotated(t, pair2, p1, sid, 2, 2)
	ev := r.wantEvents(t, tokens.EventSessionMoved)[0]
	if ev.IP != away.IP || ev.UserID == nil || *ev.UserID != r.user.ID || ev.SessionID == nil || *ev.SessionID != sid ||
		!ev.At.Equal(r.nowUTC()) || ev.Detail["previous_ip"] != home.IP || ev.Detail["previous_user_agent"] != home.UserAgent ||
		ev.Detail["user_agent"] != away.UserAgent {
		t.Fatalf("session_moved event %+v (detail %v)", ev, ev.Detail)
	}
	if s := cs.session(t, sid); s.LastIP != away.IP || s.LastUserAgent != away.UserAgent || s.IP != home.IP {
		t.Fatalf("last caller %q %q, login %q", s.LastIP, s.LastUserAgent, s.IP)
	}

	// From there again: nothing to tell.
	r.advance(time.Minute)
	pair3 := r.refresh(t, pair2.RefreshToken, away)
	p3 := r.wantRotated(t, pair3, p2, sid, 3, 3)
	r.wantEvents(t)

	// Another user agent (cleaned as it is stored) is a move too.
	r.advance(time.Minute)
	newUA := tokens.ClientInfo{UserAgent: "app/2 \xff", IP: away.IP}
	pair4 := r.refresh(t, pair3.RefreshToken, newUA)
	r.wantRotated(t, pair4, p3, sid, 4, 4)
	ev = r.wantEvents(t, tokens.EventSessionMoved)[0]
	if ev.Detail["previous_user_agent"] != home.UserAgent || ev.Detail["user_agent"] != "app/2 \uFFFD" || ev.Detail["previous_ip"] != away.IP {
		t.Fatalf("session_moved detail %v", ev.Detail)
	}
	if s := cs.session(t, sid); s.LastUserAgent != "app/2 \uFFFD" {
		t.Fatalf("last user agent %q", s.LastUserAgent)
	}
	// The cleaned user agent is what the next rotation compares: the same
	// raw user agent again is no move.
	r.advance(time.Second)
	pair5 := r.refresh(t, pair4.RefreshToken, newUA)
	r.wantEvents(t)

	// A forged v2 token (valid shape, wrong tag) is refused before any
	// lookup.
	calls := cs.refreshes
	raw := decodeBody(t, pair5.RefreshToken)
	raw[len(raw)-1] ^= 1
	if _, err := r.svc.Refresh(ctx, encodeRaw(raw), newUA); !errors.Is(err, tokens.ErrInvalidGrant) || tokens.IsReuse(err) {
		t.Fatalf("forged token: %v", err)
	}
	if cs.refreshes != calls {
		t.Fatal("a forged token reached the store")
	}
	// Another session's token, or a generation the session never had,
	// is unknown and changes nothing.
	ahead := r.codec.Mint(sid, 9, r.nowUTC(), r.codec.SuccessorSecret(p3))
	if _, err := r.svc.Refresh(ctx, ahead.Token, newUA); !errors.Is(err, tokens.ErrInvalidGrant) || tokens.IsReuse(err) {
		t.Fatalf("a generation ahead: %v", err)
	}
	if _, err := r.svc.Refresh(ctx, r.codec.Mint(uuid.New(), 0, r.nowUTC(), r.codec.SuccessorSecret(p3)).Token, newUA); !errors.Is(err, tokens.ErrInvalidGrant) {
		t.Fatalf("no such session: %v", err)
	}
	r.wantEvents(t)

	// The immediate predecessor past the window, or an older ancestor, is
	// reuse: the session is revoked and its access tokens denied.
	r.advance(rotGrace)
	_, err := r.svc.Refresh(ctx, pair2.RefreshToken, newUA)
	if !tokens.IsReuse(err) || !errors.Is(err, tokens.ErrInvalidGrant) {
		t.Fatalf("an ancestor: %v, want reuse", err)
	}
	if s := cs.session(t, sid); s.RevokedAt == nil || s.RevokedReason != tokens.ReasonReuseDetected {
		t.Fatalf("session after reuse: revoked %v (%s)", s.RevokedAt, s.RevokedReason)
	}
	r.wantEvents(t, tokens.EventReuseDetected)
	if _, err := r.svc.Authenticate(pair5.AccessToken); !errors.Is(err, tokens.ErrInvalidToken) {
		t.Fatalf("access token of the revoked session: %v", err)
	}
	// Revoked is terminal: the active token is refused, and not as reuse.
	if _, err := r.svc.Refresh(ctx, pair5.RefreshToken, newUA); !errors.Is(err, tokens.ErrInvalidGrant) || tokens.IsReuse(err) {
		t.Fatalf("active token of a revoked session: %v", err)
	}
	r.wantEvents(t)
}

// TestRotationAuditEveryRefresh: with AuditEveryRefresh every rotation
// writes a refresh event (and a move its session_moved too); a replay
// still writes nothing.
func TestRotationAuditEveryRefresh(t *testing.T) {
	cs := newChainStore()
	r := newRotationRig(t, cs, cs, tokens.Config{AuditEveryRefresh: true})
	home := tokens.ClientInfo{UserAgent: "app/1", IP: "192.0.2.1"}
	login := r.login(t, home)
	r.advance(time.Minute)
	pair1 := r.refresh(t, login.RefreshToken, home)
	ev := r.wantEvents(t, tokens.EventRefresh)[0]
	if ev.IP != home.IP || !ev.At.Equal(r.nowUTC()) || ev.SessionID == nil || *ev.SessionID != login.SessionID {
		t.Fatalf("refresh event %+v", ev)
	}
	r.advance(time.Second)
	if again := r.refresh(t, login.RefreshToken, home); again.RefreshToken != pair1.RefreshToken {
		t.Fatal("replay gave another token")
	}
	r.wantEvents(t)
	r.advance(time.Minute)
	r.refresh(t, pair1.RefreshToken, tokens.ClientInfo{UserAgent: "app/1", IP: "203.0.113.9"})
	r.wantEvents(t, tokens.EventRefresh, tokens.EventSessionMoved)
}

// TestRotationLegacy: a session from before rotation v2, whose active token
// is a v1 token, answers a replay of its v1 predecessor with its v1
// successor, and rotates its active v1 token into a v2 token of generation
// 1, after which that v1 token is the grace-eligible predecessor.
func TestRotationLegacy(t *testing.T) {
	ctx := context.Background()
	cs := newChainStore()
	r := newRotationRig(t, cs, cs, tokens.Config{})
	home := tokens.ClientInfo{UserAgent: "app/1", IP: "192.0.2.1"}

	// A v1 session: z rotated into a (v1) two seconds ago.
	z := randomV1(t, secretA)
	a := handV1Successor(secretA, z.Raw)
	now := r.nowUTC()
	sid := uuid.New()
	rotated := now.Add(-2 * time.Second)
	sessEnd := now.Add(20 * time.Hour)
	cs.sessions[sid] = tokens.Session{
		ID: sid, UserID: r.user.ID, CreatedAt: now.Add(-time.Hour), LastUsedAt: rotated, ExpiresAt: sessEnd,
		UserAgent: home.UserAgent, IP: home.IP, LastUserAgent: home.UserAgent, LastIP: home.IP,
		Chain: tokens.Chain{ActiveSelector: a.Selector, ActiveExpiresAt: rotated.Add(rotTTL), PrevSelector: z.Selector, RotatedAt: rotated},
	}
	cs.legacy[string(z.Selector)] = tokens.RefreshRecord{Selector: z.Selector, SessionID: sid, VerifierHash: z.Hash,
		CreatedAt: now.Add(-time.Hour), ExpiresAt: now.Add(-time.Hour).Add(rotTTL)}
	cs.legacy[string(a.Selector)] = tokens.RefreshRecord{Selector: a.Selector, SessionID: sid, VerifierHash: a.Hash,
		ParentSelector: z.Selector, CreatedAt: rotated, ExpiresAt: rotated.Add(rotTTL)}

	// The v1 predecessor inside the window: the v1 successor, nothing written.
	replay := r.refresh(t, z.Token, home)
	if replay.RefreshToken != a.Token || replay.SessionID != sid {
		t.Fatalf("v1 replay %q, want the v1 successor %q", replay.RefreshToken, a.Token)
	}
	if s := cs.session(t, sid); s.RefreshCount != 0 || !bytes.Equal(s.Chain.ActiveSelector, a.Selector) {
		t.Fatalf("a v1 replay wrote: %+v", s.Chain)
	}
	r.wantEvents(t)

	// The active v1 token rotates into generation 1 of v2.
	r.advance(time.Minute)
	pa := mustParse(t, r.codec, a.Token)
	pair1 := r.refresh(t, a.Token, home)
	p1 := r.wantRotated(t, pair1, pa, sid, 1, 1)
	if ch := cs.session(t, sid).Chain; !bytes.Equal(ch.PrevSelector, a.Selector) {
		t.Fatalf("chain after the move to v2: PrevSelector %x, want the v1 token's %x", ch.PrevSelector, a.Selector)
	}
	r.wantEvents(t)

	// Its v1 predecessor replays the v2 successor inside the window.
	r.advance(rotGrace - time.Millisecond)
	if again := r.refresh(t, a.Token, home); again.RefreshToken != pair1.RefreshToken {
		t.Fatalf("replay of the v1 token after the move: %q, want %q", again.RefreshToken, pair1.RefreshToken)
	}
	r.wantEvents(t)

	// The v2 token rotates on: the v1 token is no longer the predecessor.
	r.advance(time.Minute)
	pair2 := r.refresh(t, pair1.RefreshToken, home)
	r.wantRotated(t, pair2, p1, sid, 2, 2)
	if ch := cs.session(t, sid).Chain; ch.PrevSelector != nil {
		t.Fatalf("PrevSelector %x kept after a v2 rotation", ch.PrevSelector)
	}
	r.advance(time.Second) // inside the window of the last rotation
	if _, err := r.svc.Refresh(ctx, a.Token, home); !tokens.IsReuse(err) {
		t.Fatalf("the v1 token two rotations back: %v, want reuse", err)
	}
	if s := cs.session(t, sid); s.RevokedReason != tokens.ReasonReuseDetected {
		t.Fatalf("revoked reason %q", s.RevokedReason)
	}
	// A v1 token with no row is unknown.
	if _, err := r.svc.Refresh(ctx, randomV1(t, secretA).Token, home); !errors.Is(err, tokens.ErrInvalidGrant) || tokens.IsReuse(err) {
		t.Fatalf("unknown v1 token: %v", err)
	}
}

// TestRotationLegacyAncestor: a v1 token older than the v1 predecessor is
// reuse even inside the window.
func TestRotationLegacyAncestor(t *testing.T) {
	cs := newChainStore()
	r := newRotationRig(t, cs, cs, tokens.Config{})
	y := randomV1(t, secretA)
	z := handV1Successor(secretA, y.Raw)
	a := handV1Successor(secretA, z.Raw)
	now := r.nowUTC()
	sid := uuid.New()
	cs.sessions[sid] = tokens.Session{ID: sid, UserID: r.user.ID, ExpiresAt: now.Add(time.Hour),
		Chain: tokens.Chain{ActiveSelector: a.Selector, ActiveExpiresAt: now.Add(time.Hour), PrevSelector: z.Selector, RotatedAt: now.Add(-time.Second)}}
	cs.legacy[string(y.Selector)] = tokens.RefreshRecord{Selector: y.Selector, SessionID: sid, VerifierHash: y.Hash, ExpiresAt: now.Add(time.Hour)}
	if _, err := r.svc.Refresh(context.Background(), y.Token, tokens.ClientInfo{}); !tokens.IsReuse(err) {
		t.Fatalf("v1 ancestor inside the window: %v, want reuse", err)
	}
}

// TestRotationFastPath: a store with a FastRotator gets the presented v2
// token's session, generation, hashes, client and audit flag in one call,
// and the Service mints the successor from the state it returns: the same
// token a grace replay derives on the locked path. v1 tokens never take
// the fast path.
func TestRotationFastPath(t *testing.T) {
	for _, every := range []bool{false, true} {
		cs := newChainStore()
		fs := &fastStore{chainStore: cs}
		r := newRotationRig(t, fs, cs, tokens.Config{AuditEveryRefresh: every})
		home := tokens.ClientInfo{UserAgent: "app/1 \xfe", IP: "192.0.2.1"}
		login := r.login(t, home)
		p0 := mustParse(t, r.codec, login.RefreshToken)
		sid := login.SessionID
		stored := cs.session(t, sid).Chain.VerifierHash

		r.advance(time.Minute)
		pair1 := r.refresh(t, login.RefreshToken, home)
		if len(fs.calls) != 1 || cs.refreshes != 0 {
			t.Fatalf("fast path calls %d, locked path calls %d; want 1, 0", len(fs.calls), cs.refreshes)
		}
		call := fs.calls[0]
		succ := r.codec.SuccessorSecret(p0)
		if call.SessionID != sid || call.Generation != 0 || !bytes.Equal(call.VerifierHash, stored) ||
			!bytes.Equal(call.VerifierHash, r.codec.VerifierHash(p0)) || !bytes.Equal(call.SuccessorHash, succ.Hash) ||
			call.RefreshTTL != rotTTL || call.ClientID != "" || call.EveryRefresh != every ||
			call.Client != (tokens.ClientInfo{UserAgent: "app/1 \uFFFD", IP: home.IP}) {
			t.Fatalf("ActiveRotation %+v", call)
		}
		r.wantRotated(t, pair1, p0, sid, 1, 1)
		if every {
			r.wantEvents(t, tokens.EventRefresh)
		} else {
			r.wantEvents(t)
		}

		// The replay is declined by the fast path (an earlier generation)
		// and decided on the locked path: the same token.
		r.advance(time.Second)
		if again := r.refresh(t, login.RefreshToken, home); again.RefreshToken != pair1.RefreshToken {
			t.Fatalf("locked-path replay %q, fast-path rotation %q", again.RefreshToken, pair1.RefreshToken)
		}
		if len(fs.calls) != 2 || cs.refreshes != 1 {
			t.Fatalf("fast path calls %d, locked path calls %d; want 2, 1", len(fs.calls), cs.refreshes)
		}

		// A v1 token goes straight to the locked path.
		v1 := randomV1(t, secretA)
		if _, err := r.svc.Refresh(context.Background(), v1.Token, home); !errors.Is(err, tokens.ErrInvalidGrant) {
			t.Fatalf("unknown v1 token: %v", err)
		}
		if len(fs.calls) != 2 || cs.refreshes != 2 {
			t.Fatalf("a v1 token: fast path calls %d, locked path calls %d; want 2, 2", len(fs.calls), cs.refreshes)
		}
	}
}

// TestRotationRevokeByRefresh: RFC 7009 revocation by refresh token follows
// the rotation rules: the grace-eligible predecessor speaks for its
// session; an ancestor is reuse.
func TestRotationRevokeByRefresh(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		wait   time.Duration
		reason tokens.Reason
	}{
		{"the predecessor inside the window revokes", time.Second, tokens.ReasonRevokeEndpoint},
		{"the predecessor after the window is reuse", rotGrace, tokens.ReasonReuseDetected},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := newChainStore()
			r := newRotationRig(t, cs, cs, tokens.Config{})
			login := r.login(t, tokens.ClientInfo{})
			r.advance(time.Minute)
			r.refresh(t, login.RefreshToken, tokens.ClientInfo{})
			r.advance(tc.wait)
			if err := r.svc.RevokeToken(ctx, login.RefreshToken, "refresh_token", tokens.ClientInfo{}); err != nil {
				t.Fatal(err)
			}
			if s := cs.session(t, login.SessionID); s.RevokedAt == nil || s.RevokedReason != tc.reason {
				t.Fatalf("revoked %v reason %q, want %q", s.RevokedAt, s.RevokedReason, tc.reason)
			}
		})
	}
}

// TestRotationCappedAtSessionEnd: a successor's idle expiry never passes
// its session's absolute expiry, on either path.
func TestRotationCappedAtSessionEnd(t *testing.T) {
	for _, fast := range []bool{false, true} {
		cs := newChainStore()
		var store tokens.Store = cs
		if fast {
			store = &fastStore{chainStore: cs}
		}
		r := newRotationRig(t, store, cs, tokens.Config{})
		login := r.login(t, tokens.ClientInfo{})
		end := r.nowUTC().Add(30 * time.Minute)
		sess := cs.session(t, login.SessionID)
		sess.ExpiresAt = end
		cs.sessions[sess.ID] = sess
		r.advance(time.Minute)
		pair := r.refresh(t, login.RefreshToken, tokens.ClientInfo{})
		if ch := cs.session(t, sess.ID).Chain; !ch.ActiveExpiresAt.Equal(end) || ch.Generation != 1 {
			t.Fatalf("fast %v: successor expires %v, want the session's end %v", fast, ch.ActiveExpiresAt, end)
		}
		if want := int64(end.Sub(r.nowUTC()) / time.Second); pair.RefreshExpiresIn != want {
			t.Fatalf("fast %v: refresh_expires_in %d, want %d", fast, pair.RefreshExpiresIn, want)
		}
	}
}
