package postgres_test

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/rotorauth/rotor/internal/store/postgres"
	"github.com/rotorauth/rotor/internal/store/postgres/pgtest"
	"github.com/rotorauth/rotor/internal/store/storetest"
	"github.com/rotorauth/rotor/internal/tokens"
	"github.com/rotorauth/rotor/migrations"
)

// v5AccessClaims are the claims of an access token as Rotor issued them at
// schema version 5, before clients existed: no client_id.
type v5AccessClaims struct {
	jwt.RegisteredClaims
	SessionID string   `json:"sid"`
	Roles     []string `json:"roles"`
	Email     string   `json:"email,omitempty"`
}

// TestUpgradeFromV5KeepsSessions migrates a scratch database to version 5
// (before clients), writes live sessions there in the v5 shape exactly as
// Login and Refresh wrote them (real split tokens and keyed hashes from
// tokens.NewRefreshCodec), migrates up to the latest version the way the
// server does at start, and checks that every old session carries on as a
// session of the default client: its token rotates, the new access token
// says client_id default, the session is listed with client default, reuse
// detection and revocations from before the upgrade still hold, and a v5
// access token (no client_id claim) still authenticates.
func TestUpgradeFromV5KeepsSessions(t *testing.T) {
	pgtest.Require(t, db) // the package's database is not used: this test needs one at version 5
	scratch, err := pgtest.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := scratch.Drop(); err != nil {
			t.Errorf("drop scratch database: %v", err)
		}
	})
	u, err := url.Parse(scratch.URL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("pool_max_conns", "4")
	u.RawQuery = q.Encode()
	ctx := context.Background()
	st, err := postgres.Open(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	pool := st.Pool()

	// Version 5, with goose as the store runs it.
	sqlDB := stdlib.OpenDBFromPool(pool)
	t.Cleanup(func() { _ = sqlDB.Close() })
	prov, err := goose.NewProvider(goose.DialectPostgres, sqlDB, migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	sources := prov.ListSources()
	latest := sources[len(sources)-1].Version
	if latest <= 5 {
		t.Fatalf("latest migration is %d: nothing to upgrade to", latest)
	}
	if _, err := prov.UpTo(ctx, 5); err != nil {
		t.Fatalf("migrate to 5: %v", err)
	}
	if v, err := prov.GetDBVersion(ctx); err != nil || v != 5 {
		t.Fatalf("version %d %v, want 5", v, err)
	}
	var hasClientID bool
	if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM information_schema.columns
		WHERE table_name = 'sessions' AND column_name = 'client_id')`).Scan(&hasClientID); err != nil || hasClientID {
		t.Fatalf("sessions.client_id at version 5: %v %v", hasClientID, err)
	}

	// The deployment's secrets and keys, shared by the v5 and the new code.
	secret := []byte("the deployment's TOKEN_SECRET, 32+ bytes")
	der, err := tokens.GeneratePrivateKeyDER(tokens.AlgEdDSA)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := tokens.ParsePrivateKeys(tokens.AlgEdDSA, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		t.Fatal(err)
	}
	priv := parsed.(ed25519.PrivateKey)
	const issuer, audience = "https://rotor.test", "rotor"
	v1 := newV1Codec(secret)
	codec, err := tokens.NewRefreshCodec(secret)
	if err != nil {
		t.Fatal(err)
	}
	generation := func(rt string) uint64 {
		t.Helper()
		p, err := codec.Parse(rt)
		if err != nil || p.Legacy {
			t.Fatalf("not a v2 token: %v", err)
		}
		return p.Generation
	}

	// v5 rows: one user and four sessions, written as v5 Login and
	// Refresh wrote them, with v1 refresh tokens.
	//   fresh:   one token, active, never rotated
	//   rotated: rotated an hour ago (t0 used, t1 active; outside the grace)
	//   recent:  rotated 2 s ago (t0 used, t1 active; t0 inside the grace)
	//   revoked: logged out, with its denylist entry
	now := time.Now().UTC().Truncate(time.Microsecond)
	const email, pw = "old-user@example.test", "an old password"
	hash, err := storetest.FastPasswords.Hash(pw)
	if err != nil {
		t.Fatal(err)
	}
	userID := uuid.New()
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", strings.Fields(sql)[0:3], err)
		}
	}
	exec(`INSERT INTO users (id, email, password_hash, roles, disabled, created_at, updated_at)
		VALUES ($1, $2, $3, '{}', false, $4, $4)`, userID, email, hash, now.Add(-48*time.Hour))
	type v5Session struct {
		id     uuid.UUID
		tokens []tokens.IssuedRefresh // oldest first; the last is active
	}
	newSession := func(rotations int, revoked bool, rotatedAgo time.Duration) v5Session {
		t.Helper()
		s := v5Session{id: uuid.New()}
		s.tokens = append(s.tokens, v1.New(t))
		for i := 0; i < rotations; i++ {
			s.tokens = append(s.tokens, v1.Successor(t, s.tokens[len(s.tokens)-1]))
		}
		created := now.Add(-24 * time.Hour)
		active := s.tokens[len(s.tokens)-1]
		var prev []byte
		var rotatedAt *time.Time
		if rotations > 0 {
			prev = s.tokens[len(s.tokens)-2].Selector
			at := now.Add(-rotatedAgo)
			rotatedAt = &at
		}
		var revokedAt *time.Time
		var reason *string
		if revoked {
			at, why := now.Add(-time.Hour), string(tokens.ReasonLogout)
			revokedAt, reason = &at, &why
		}
		exec(`INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, revoked_at, revoked_reason,
			user_agent, ip, active_selector, active_expires_at, prev_selector, rotated_at)
			VALUES ($1, $2, $3, $3, $4, $5, $6, 'v5 agent', '192.0.2.1', $7, $8, $9, $10)`,
			s.id, userID, created, created.Add(720*time.Hour), revokedAt, reason,
			active.Selector, now.Add(300*time.Hour), prev, rotatedAt)
		var parent []byte
		for _, tk := range s.tokens {
			exec(`INSERT INTO refresh_tokens (selector, session_id, verifier_hash, parent_selector, created_at, expires_at)
				VALUES ($1, $2, $3, $4, $5, $6)`, tk.Selector, s.id, tk.VerifierHash, parent, created, now.Add(300*time.Hour))
			parent = tk.Selector
		}
		return s
	}
	fresh, rotated, revoked := newSession(0, false, 0), newSession(1, false, time.Hour), newSession(0, true, 0)
	recent := newSession(1, false, 2*time.Second)
	exec(`INSERT INTO revocations (kind, subject, until, created_at) VALUES ('session', $1, $2, $3)`,
		revoked.id, now.Add(15*time.Minute+tokens.Leeway), now.Add(-time.Hour))
	// v5 access tokens: of the fresh session, of the revoked one, and one
	// denylisted by jti.
	v5Token := func(sid uuid.UUID) (string, uuid.UUID) {
		t.Helper()
		jti := uuid.New()
		iat := time.Now().Truncate(time.Second)
		tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, v5AccessClaims{
			RegisteredClaims: jwt.RegisteredClaims{
				Issuer: issuer, Subject: userID.String(), Audience: jwt.ClaimStrings{audience},
				ExpiresAt: jwt.NewNumericDate(iat.Add(15 * time.Minute)), NotBefore: jwt.NewNumericDate(iat),
				IssuedAt: jwt.NewNumericDate(iat), ID: jti.String(),
			},
			SessionID: sid.String(), Roles: []string{}, Email: email,
		})
		tok.Header["typ"] = tokens.AccessTokenType
		tok.Header["kid"] = keys.SigningKID()
		signed, err := tok.SignedString(priv)
		if err != nil {
			t.Fatal(err)
		}
		return signed, jti
	}
	oldAT, _ := v5Token(fresh.id)
	revokedAT, _ := v5Token(revoked.id)
	deniedAT, deniedJTI := v5Token(fresh.id)
	exec(`INSERT INTO revocations (kind, subject, until, created_at) VALUES ('token', $1, $2, $3)`,
		deniedJTI, now.Add(15*time.Minute+tokens.Leeway), now)
	if _, claims := claimsOf(t, oldAT); claims["client_id"] != nil {
		t.Fatalf("the v5 token has a client_id: %v", claims)
	}

	// Before the upgrade, legacy-tokens drop refuses: a release before v2
	// still writes a row per token there.
	if err := st.DropLegacyTokens(ctx, time.Now()); !errors.Is(err, postgres.ErrNotUpgraded) {
		t.Fatalf("legacy-tokens drop at version 5: %v, want ErrNotUpgraded", err)
	}

	// The upgrade, as the server runs it at start.
	if err := st.Migrate(ctx, "up", nil); err != nil {
		t.Fatalf("migrate up from 5: %v", err)
	}
	if v, err := prov.GetDBVersion(ctx); err != nil || v != latest {
		t.Fatalf("version %d %v after the upgrade, want %d", v, err, latest)
	}
	if err := st.Ping(ctx); err != nil {
		t.Fatalf("ready after the upgrade: %v", err)
	}
	nullClients := func() int {
		t.Helper()
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM sessions WHERE client_id IS NULL`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := nullClients(); n != 4 {
		t.Fatalf("%d sessions with client_id NULL after the upgrade, want all 4 (the upgrade rewrites no row)", n)
	}
	legacyRows := func() int {
		t.Helper()
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM refresh_tokens`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	rowsBefore := legacyRows()

	// The new code on the upgraded store, started as the server starts.
	svc, err := tokens.NewService(st, storetest.FastPasswords, tokens.Config{
		Issuer: issuer, Audience: audience, AccessTTL: 15 * time.Minute, RefreshTTL: 336 * time.Hour,
		SessionMaxLifetime: 720 * time.Hour, ReuseGrace: 10 * time.Second, Keys: keys, TokenSecret: secret,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.EnsureDefaultClient(ctx); err != nil {
		t.Fatal(err)
	}
	if err := svc.RefreshClients(ctx); err != nil {
		t.Fatal(err)
	}
	if err := svc.FullSyncRevocations(ctx); err != nil {
		t.Fatal(err)
	}
	def := svc.DefaultClient()
	if def.ID != tokens.DefaultClientID || def.Audience != audience {
		t.Fatalf("default client %+v", def)
	}

	// A v5 access token still authenticates, as the default client's; the
	// v5 denylist still holds.
	p, err := svc.Authenticate(oldAT)
	if err != nil {
		t.Fatalf("a v5 access token after the upgrade: %v", err)
	}
	if p.ClientID != tokens.DefaultClientID || p.UserID != userID || p.SessionID != fresh.id || p.Email != email {
		t.Errorf("v5 token principal %+v", p)
	}
	if _, err := svc.Authenticate(revokedAT); !errors.Is(err, tokens.ErrInvalidToken) {
		t.Errorf("a v5 token of a session revoked before the upgrade: %v", err)
	}
	if _, err := svc.Authenticate(deniedAT); !errors.Is(err, tokens.ErrInvalidToken) {
		t.Errorf("a v5 token denylisted before the upgrade: %v", err)
	}

	// Another client may not take over an old session.
	other, _, err := svc.CreateClient(ctx, tokens.ClientSpec{ID: "new-app", Type: tokens.ClientPublic}, "test", tokens.ClientInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.RefreshClient(ctx, other, fresh.tokens[0].Token, tokens.ClientInfo{}); !errors.Is(err, tokens.ErrInvalidGrant) {
		t.Errorf("another client refreshing a v5 session: %v, want invalid_grant", err)
	}

	// A grace replay of a v1 token rotated just before the upgrade gets
	// the byte-identical v1 successor, which the session still holds.
	info := tokens.ClientInfo{UserAgent: "after upgrade", IP: "192.0.2.2"}
	replayed, err := svc.Refresh(ctx, recent.tokens[0].Token, info)
	if err != nil || replayed.RefreshToken != recent.tokens[1].Token {
		t.Fatalf("a grace replay of a v1 token rotated before the upgrade: %v (same v1 successor: %v)", err, replayed.RefreshToken == recent.tokens[1].Token)
	}

	// Each live session's v1 token rotates into a v2 token, with the
	// default client.
	pairs := map[uuid.UUID]tokens.TokenPair{}
	for name, s := range map[string]v5Session{"fresh": fresh, "rotated": rotated, "recent": recent} {
		active := s.tokens[len(s.tokens)-1].Token
		var pair tokens.TokenPair
		if name == "fresh" {
			pair, err = svc.Refresh(ctx, active, info) // the default client, implicitly
		} else {
			pair, err = svc.RefreshClient(ctx, def, active, info) // named
		}
		if err != nil {
			t.Fatalf("%s v5 session: refresh after the upgrade: %v", name, err)
		}
		if pair.SessionID != s.id || len(pair.RefreshToken) != tokens.RefreshTokenLen {
			t.Errorf("%s: rotation answered session %s, a v2 token %v", name, pair.SessionID, len(pair.RefreshToken) == tokens.RefreshTokenLen)
		}
		// Its grace replay answers the same v2 token; the session now has
		// generation 1.
		again, err := svc.Refresh(ctx, active, info)
		if err != nil || again.RefreshToken != pair.RefreshToken {
			t.Errorf("%s: a grace replay of the v1 token that rotated into v2: %v (same: %v)", name, err, again.RefreshToken == pair.RefreshToken)
		}
		if g := generation(pair.RefreshToken); g != 1 {
			t.Errorf("%s: the first v2 token has generation %d, want 1", name, g)
		}
		hdr, claims := claimsOf(t, pair.AccessToken)
		if hdr["typ"] != tokens.AccessTokenType || claims["client_id"] != tokens.DefaultClientID || claims["sid"] != s.id.String() ||
			!slices.Equal(audList(claims["aud"]), []string{audience}) || claims["sub"] != userID.String() {
			t.Errorf("%s: new access token %v %v", name, hdr, claims)
		}
		ap, err := svc.Authenticate(pair.AccessToken)
		if err != nil || ap.ClientID != tokens.DefaultClientID {
			t.Errorf("%s: new access token: %+v %v", name, ap, err)
		}
		pairs[s.id] = pair
	}
	if n := legacyRows(); n != rowsBefore {
		t.Errorf("refresh_tokens has %d rows after v2 rotations, had %d: v2 inserts none", n, rowsBefore)
	}
	// The recent chain's oldest v1 token, two rotations back, is reuse.
	if _, err := svc.Refresh(ctx, recent.tokens[0].Token, info); !tokens.IsReuse(err) {
		t.Errorf("a v1 token two rotations back: %v, want reuse", err)
	}
	// The rotated chain kept its history: the token used before the
	// upgrade is reuse, which revokes that session.
	if _, err := svc.Refresh(ctx, rotated.tokens[0].Token, info); !tokens.IsReuse(err) {
		t.Errorf("a token used before the upgrade, presented after it: %v, want reuse", err)
	}
	if _, err := svc.Authenticate(pairs[rotated.id].AccessToken); !errors.Is(err, tokens.ErrInvalidToken) {
		t.Errorf("the access token of a session revoked for reuse: %v", err)
	}
	// The session revoked before the upgrade stays revoked.
	if _, err := svc.Refresh(ctx, revoked.tokens[0].Token, info); !errors.Is(err, tokens.ErrInvalidGrant) {
		t.Errorf("the token of a session revoked before the upgrade: %v", err)
	}
	// The fresh session rotates on, and a login after the upgrade opens a
	// default-client session stored as NULL too.
	next, err := svc.Refresh(ctx, pairs[fresh.id].RefreshToken, info)
	if err != nil {
		t.Fatalf("second rotation of the fresh v5 session: %v", err)
	}
	login, err := svc.Login(ctx, email, pw, info)
	if err != nil {
		t.Fatalf("login after the upgrade: %v", err)
	}
	if n := nullClients(); n != 5 {
		t.Errorf("%d sessions with client_id NULL, want 5: the default client's sessions are stored as NULL", n)
	}

	// Listed with client default, and the v5 details kept.
	list, err := svc.Sessions(ctx, userID)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[uuid.UUID]tokens.Session{}
	for _, s := range list {
		byID[s.ID] = s
		if c := svc.SessionClientID(s); c != tokens.DefaultClientID {
			t.Errorf("session %s listed with client %q, want default", s.ID, c)
		}
	}
	if len(list) != 2 {
		t.Errorf("%d active sessions, want the fresh v5 one and the new login (rotated and recent ended for reuse)", len(list))
	}
	old, ok := byID[fresh.id]
	if !ok {
		t.Fatalf("the fresh v5 session is not listed: %+v", list)
	}
	if old.UserAgent != "v5 agent" || old.IP != "192.0.2.1" || !old.CreatedAt.Equal(now.Add(-24*time.Hour)) {
		t.Errorf("the v5 session's details changed: %+v", old)
	}
	if _, ok := byID[login.SessionID]; !ok {
		t.Errorf("the new login's session is not listed")
	}
	if g := generation(next.RefreshToken); old.Chain.Generation != g || g != 2 || old.RefreshCount != 2 ||
		old.Chain.ActiveSelector != nil || old.LastIP != info.IP || old.LastUserAgent != info.UserAgent {
		t.Errorf("the listed v5 session after two rotations: generation %d (token %d), count %d, last %q %q",
			old.Chain.Generation, g, old.RefreshCount, old.LastIP, old.LastUserAgent)
	}
	// refresh_tokens stays while a v1 token is live, then goes by command;
	// a v1 token presented after that is unknown, and the purge carries on.
	if ls, err := st.LegacyTokens(ctx, time.Now()); err != nil || !ls.Present || ls.Live == 0 || ls.Rows != int64(rowsBefore) {
		t.Fatalf("legacy status with live v1 rows: %+v %v", ls, err)
	}
	if err := st.DropLegacyTokens(ctx, time.Now()); !errors.Is(err, postgres.ErrLegacyLive) {
		t.Fatalf("dropping refresh_tokens while v1 tokens are live: %v", err)
	}
	exec(`UPDATE refresh_tokens SET expires_at = $1`, time.Now().Add(-time.Minute))
	if ls, err := st.LegacyTokens(ctx, time.Now()); err != nil || ls.Live != 0 {
		t.Fatalf("legacy status once every v1 token expired: %+v %v", ls, err)
	}
	if err := st.DropLegacyTokens(ctx, time.Now()); err != nil {
		t.Fatalf("drop: %v", err)
	}
	if err := st.DropLegacyTokens(ctx, time.Now()); err != nil {
		t.Fatalf("a second drop: %v", err)
	}
	if ls, err := st.LegacyTokens(ctx, time.Now()); err != nil || ls.Present {
		t.Fatalf("legacy status after the drop: %+v %v", ls, err)
	}
	if _, err := svc.Refresh(ctx, fresh.tokens[0].Token, info); !errors.Is(err, tokens.ErrInvalidGrant) || tokens.IsReuse(err) {
		t.Errorf("a v1 token after the drop: %v, want unknown", err)
	}
	if st.HasLegacyTokens() {
		t.Error("the store still expects v1 tokens after the drop: each v1-shaped token would cost a transaction")
	}
	if _, err := svc.Purge(ctx, 100); err != nil {
		t.Errorf("purge after the drop: %v", err)
	}
	if _, err := svc.Refresh(ctx, next.RefreshToken, info); err != nil {
		t.Errorf("a v2 session after the drop: %v", err)
	}

	// The upgraded database lists the default client.
	cs, err := svc.Clients(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range cs {
		ids = append(ids, c.ID)
	}
	if !slices.Contains(ids, tokens.DefaultClientID) || !slices.Contains(ids, "new-app") {
		t.Errorf("clients after the upgrade: %v", ids)
	}
}

// claimsOf decodes a JWT's header and claims without verifying them.
func claimsOf(t *testing.T, tok string) (hdr, claims map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	for i, dst := range []*map[string]any{&hdr, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	return hdr, claims
}

// audList is an aud claim (a JSON string or array) as a list.
func audList(v any) []string {
	switch a := v.(type) {
	case string:
		return []string{a}
	case []any:
		var out []string
		for _, s := range a {
			str, _ := s.(string)
			out = append(out, str)
		}
		return out
	}
	return nil
}
