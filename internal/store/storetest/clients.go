package storetest

// OAuth clients (RFC 6749 §2, RFC 9068): registration, authentication,
// client-bound sessions, client_credentials tokens and their revocation.

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"github.com/google/uuid"
	"slices"
	"testing"
	"time"

	"github.com/rotorauth/rotor/internal/tokens"
)

// ClientID returns a client id no other test uses.
func ClientID(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%x", prefix, b)
}

func ptr[T any](v T) *T { return &v }

// mustClient registers a client.
func (f *Fixture) mustClient(spec tokens.ClientSpec) (tokens.Client, string) {
	f.T.Helper()
	c, secret, err := f.Svc.CreateClient(ctx, spec, "test", tokens.ClientInfo{})
	if err != nil {
		f.T.Fatalf("CreateClient %s: %v", spec.ID, err)
	}
	return c, secret
}

func testClientRegistration(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store)
	pub, secret := f.mustClient(tokens.ClientSpec{ID: ClientID("spa"), Type: tokens.ClientPublic,
		AllowedOrigins: ptr([]string{"https://bank.example"}), Audience: ptr("bank-api")})
	if secret != "" || pub.SecretHash != nil || !slices.Equal(pub.GrantTypes, []string{tokens.GrantPassword, tokens.GrantRefreshToken}) {
		t.Fatalf("public client: secret %q, hash %v, grants %v", secret, pub.SecretHash != nil, pub.GrantTypes)
	}
	conf, secret := f.mustClient(tokens.ClientSpec{ID: ClientID("rs"), Type: tokens.ClientConfidential, Roles: ptr([]string{"introspect"})})
	if len(secret) < 40 || secret[:3] != tokens.ClientSecretPrefix {
		t.Fatalf("confidential client secret of %d bytes", len(secret))
	}
	stored, err := store.Client(ctx, conf.ID)
	if err != nil || len(stored.SecretHash) != 32 || bytes.Contains(stored.SecretHash, []byte(secret)) {
		t.Fatalf("stored client: %v, hash of %d bytes", err, len(stored.SecretHash))
	}
	if !slices.Equal(stored.GrantTypes, []string{tokens.GrantClientCredentials}) || !slices.Equal(stored.Roles, []string{"introspect"}) || stored.Audience != f.Cfg.Audience {
		t.Fatalf("stored client %+v", stored)
	}
	if _, _, err := f.Svc.CreateClient(ctx, tokens.ClientSpec{ID: conf.ID, Type: tokens.ClientPublic}, "test", tokens.ClientInfo{}); !errors.Is(err, tokens.ErrConflict) {
		t.Fatalf("duplicate id: %v", err)
	}
	for _, bad := range []tokens.ClientSpec{
		{ID: "", Type: tokens.ClientPublic},
		{ID: "has space", Type: tokens.ClientPublic},
		{ID: "0b7a1c3e-0f9e-4f4e-9d0b-0a1b2c3d4e5f", Type: tokens.ClientPublic}, // looks like a user id
		{ID: ClientID("x"), Type: "trusted"},
		{ID: ClientID("x"), Type: tokens.ClientPublic, GrantTypes: ptr([]string{tokens.GrantClientCredentials})},
		{ID: ClientID("x"), Type: tokens.ClientPublic, Roles: ptr([]string{"admin"})},
		{ID: ClientID("x"), Type: tokens.ClientPublic, AllowedOrigins: ptr([]string{"https://a.example/"})},
		{ID: ClientID("x"), Type: tokens.ClientPublic, GrantTypes: ptr([]string{"implicit"})},
		{ID: ClientID("x"), Type: tokens.ClientPublic, Secret: "a secret for a public client, 32+"},
		{ID: ClientID("x"), Type: tokens.ClientConfidential, Secret: "short"},
	} {
		if _, _, err := f.Svc.CreateClient(ctx, bad, "test", tokens.ClientInfo{}); !errors.Is(err, tokens.ErrInvalidInput) {
			t.Errorf("CreateClient(%+v) = %v, want invalid input", bad, err)
		}
	}
	rotated, err := f.Svc.RotateClientSecret(ctx, conf.ID, "test", tokens.ClientInfo{})
	if err != nil || rotated == secret {
		t.Fatalf("rotate: %v", err)
	}
	if _, err := f.Svc.AuthenticateClient(ctx, tokens.ClientAuth{ID: conf.ID, Secret: secret, HasSecret: true}); !errors.Is(err, tokens.ErrInvalidClient) {
		t.Fatalf("the old secret after rotation: %v", err)
	}
	if _, err := f.Svc.AuthenticateClient(ctx, tokens.ClientAuth{ID: conf.ID, Secret: rotated, HasSecret: true}); err != nil {
		t.Fatalf("the new secret: %v", err)
	}
	if err := f.Svc.DeleteClient(ctx, f.Svc.Config().DefaultClientID, "test", tokens.ClientInfo{}); !errors.Is(err, tokens.ErrInvalidInput) {
		t.Fatalf("deleting the default client: %v", err)
	}
}

func testClientAuthentication(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store)
	pub, _ := f.mustClient(tokens.ClientSpec{ID: ClientID("spa"), Type: tokens.ClientPublic})
	conf, secret := f.mustClient(tokens.ClientSpec{ID: ClientID("rs"), Type: tokens.ClientConfidential})
	off, offSecret := f.mustClient(tokens.ClientSpec{ID: ClientID("off"), Type: tokens.ClientConfidential, Disabled: ptr(true)})
	if c, err := f.Svc.AuthenticateClient(ctx, tokens.ClientAuth{}); err != nil || c.ID != tokens.DefaultClientID {
		t.Fatalf("no client named: %v %v", c.ID, err)
	}
	if c, err := f.Svc.AuthenticateClient(ctx, tokens.ClientAuth{ID: pub.ID}); err != nil || c.ID != pub.ID {
		t.Fatalf("public client by id: %v %v", c.ID, err)
	}
	if c, err := f.Svc.AuthenticateClient(ctx, tokens.ClientAuth{ID: conf.ID, Secret: secret, HasSecret: true}); err != nil || c.ID != conf.ID {
		t.Fatalf("confidential client: %v %v", c.ID, err)
	}
	for name, a := range map[string]tokens.ClientAuth{
		"unknown client":                    {ID: "nobody"},
		"unknown client with a secret":      {ID: "nobody", Secret: secret, HasSecret: true},
		"wrong secret":                      {ID: conf.ID, Secret: secret + "x", HasSecret: true},
		"empty secret":                      {ID: conf.ID, HasSecret: true},
		"confidential client, no secret":    {ID: conf.ID},
		"a secret for a public client":      {ID: pub.ID, Secret: secret, HasSecret: true},
		"a secret without a client id":      {Secret: secret, HasSecret: true},
		"disabled client":                   {ID: off.ID, Secret: offSecret, HasSecret: true},
		"a malformed id":                    {ID: "bad id\x00"},
		"another client's secret (default)": {ID: tokens.DefaultClientID, Secret: secret, HasSecret: true},
	} {
		if _, err := f.Svc.AuthenticateClient(ctx, a); !errors.Is(err, tokens.ErrInvalidClient) {
			t.Errorf("%s: %v, want invalid_client", name, err)
		}
	}
	if _, err := f.Svc.LoginClient(ctx, conf, f.MustUser().Email, Password, tokens.ClientInfo{}); !errors.Is(err, tokens.ErrUnauthorizedClient) {
		t.Fatalf("password grant for a client_credentials-only client: %v, want unauthorized_client", err)
	}
	if _, err := f.Svc.ClientCredentials(ctx, pub); !errors.Is(err, tokens.ErrUnauthorizedClient) {
		t.Fatalf("client_credentials for a public client: %v, want unauthorized_client", err)
	}
}

func testClientSessions(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store)
	bank, _ := f.mustClient(tokens.ClientSpec{ID: ClientID("bank"), Type: tokens.ClientPublic, Audience: ptr("bank-api")})
	u := f.MustUser()
	p, err := f.Svc.LoginClient(ctx, bank, u.Email, Password, tokens.ClientInfo{})
	if err != nil {
		t.Fatal(err)
	}
	got := f.MustAuthenticate(p.AccessToken)
	if got.ClientID != bank.ID || !slices.Equal(got.Audience, []string{"bank-api"}) || got.UserID != u.ID {
		t.Fatalf("bank token: client %q aud %v user %v", got.ClientID, got.Audience, got.UserID)
	}
	def := f.MustLogin(u)
	if got := f.MustAuthenticate(def.AccessToken); got.ClientID != tokens.DefaultClientID || !slices.Equal(got.Audience, []string{f.Cfg.Audience}) {
		t.Fatalf("default token: client %q aud %v", got.ClientID, got.Audience)
	}
	byID := map[string]string{}
	list, err := f.Svc.Sessions(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range list {
		byID[s.ID.String()] = f.Svc.SessionClientID(s)
	}
	if byID[p.SessionID.String()] != bank.ID || byID[def.SessionID.String()] != tokens.DefaultClientID {
		t.Fatalf("sessions' clients: %v", byID)
	}
	next, err := f.Svc.RefreshClient(ctx, bank, p.RefreshToken, tokens.ClientInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.MustAuthenticate(next.AccessToken); got.ClientID != bank.ID || !slices.Equal(got.Audience, []string{"bank-api"}) {
		t.Fatalf("refreshed bank token: client %q aud %v", got.ClientID, got.Audience)
	}
}

func testRefreshByAnotherClient(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store)
	bank, _ := f.mustClient(tokens.ClientSpec{ID: ClientID("bank"), Type: tokens.ClientPublic})
	portal, _ := f.mustClient(tokens.ClientSpec{ID: ClientID("portal"), Type: tokens.ClientPublic})
	u := f.MustUser()
	p, err := f.Svc.LoginClient(ctx, bank, u.Email, Password, tokens.ClientInfo{})
	if err != nil {
		t.Fatal(err)
	}
	before := f.Session(p.SessionID)
	for name, c := range map[string]tokens.Client{"another client": portal, "the default client": f.Svc.DefaultClient()} {
		if _, err := f.Svc.RefreshClient(ctx, c, p.RefreshToken, tokens.ClientInfo{}); !errors.Is(err, tokens.ErrInvalidGrant) || tokens.IsReuse(err) {
			t.Fatalf("%s presenting bank's active token: %v, want invalid_grant", name, err)
		}
	}
	if after := f.Session(p.SessionID); after.RevokedAt != nil || after.Chain.Generation != before.Chain.Generation {
		t.Fatal("another client's presentation changed the session")
	}
	next, err := f.Svc.RefreshClient(ctx, bank, p.RefreshToken, tokens.ClientInfo{})
	if err != nil {
		t.Fatal(err)
	}
	// The grace predecessor, and a used token past the window, are not
	// another client's to replay or to revoke.
	if _, err := f.Svc.RefreshClient(ctx, portal, p.RefreshToken, tokens.ClientInfo{}); !errors.Is(err, tokens.ErrInvalidGrant) {
		t.Fatalf("another client replaying inside the window: %v", err)
	}
	f.Clock.Advance(time.Minute)
	if _, err := f.Svc.RefreshClient(ctx, portal, p.RefreshToken, tokens.ClientInfo{}); !errors.Is(err, tokens.ErrInvalidGrant) || tokens.IsReuse(err) {
		t.Fatalf("another client presenting a used token: %v, want a plain invalid_grant", err)
	}
	if s := f.Session(p.SessionID); s.RevokedAt != nil {
		t.Fatalf("another client's presentation revoked the session as %q", s.RevokedReason)
	}
	f.MustAuthenticate(next.AccessToken)
}

func testClientCredentials(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store)
	rs, secret := f.mustClient(tokens.ClientSpec{ID: ClientID("rs"), Type: tokens.ClientConfidential,
		Roles: ptr([]string{"introspect", "reports"}), Audience: ptr("rotor-feed")})
	auth := tokens.ClientAuth{ID: rs.ID, Secret: secret, HasSecret: true}
	c, err := f.Svc.AuthenticateClient(ctx, auth)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := f.Svc.ClientCredentials(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if tok.RefreshToken != "" {
		t.Fatal("client_credentials issued a refresh token")
	}
	p := f.MustAuthenticate(tok.AccessToken)
	if !p.IsClient() || p.Subject() != rs.ID || p.ClientID != rs.ID || !slices.Equal(p.Roles, []string{"introspect", "reports"}) || !slices.Equal(p.Audience, []string{"rotor-feed"}) {
		t.Fatalf("client token: %+v", p)
	}
	// Revocable by jti, idempotently.
	other, _ := f.Svc.ClientCredentials(ctx, c)
	if err := f.Svc.RevokeTokenFor(ctx, c, other.AccessToken, "", tokens.ClientInfo{}); err != nil {
		t.Fatal(err)
	}
	f.MustBeDenied(other.AccessToken, "a revoked client_credentials token")
	f.MustAuthenticate(tok.AccessToken)

	// Taking a role away ends the tokens that carry it.
	if _, err := f.Svc.UpdateClient(ctx, tokens.ClientSpec{ID: rs.ID, Roles: ptr([]string{"introspect"})}, "test", tokens.ClientInfo{}); err != nil {
		t.Fatal(err)
	}
	f.MustBeDenied(tok.AccessToken, "a client token after one of its roles was taken away")
	c, _ = f.Svc.AuthenticateClient(ctx, auth)
	tok, _ = f.Svc.ClientCredentials(ctx, c)
	f.MustAuthenticate(tok.AccessToken)

	// Disabling ends them, and the client's sessions; re-enabling starts a
	// new family.
	pub, _ := f.mustClient(tokens.ClientSpec{ID: ClientID("spa"), Type: tokens.ClientPublic})
	u := f.MustUser()
	sess, err := f.Svc.LoginClient(ctx, pub, u.Email, Password, tokens.ClientInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Svc.UpdateClient(ctx, tokens.ClientSpec{ID: rs.ID, Disabled: ptr(true)}, "test", tokens.ClientInfo{}); err != nil {
		t.Fatal(err)
	}
	f.MustBeDenied(tok.AccessToken, "a disabled client's token")
	if _, err := f.Svc.AuthenticateClient(ctx, auth); !errors.Is(err, tokens.ErrInvalidClient) {
		t.Fatalf("a disabled client authenticates: %v", err)
	}
	if _, err := f.Svc.UpdateClient(ctx, tokens.ClientSpec{ID: pub.ID, Disabled: ptr(true)}, "test", tokens.ClientInfo{}); err != nil {
		t.Fatal(err)
	}
	f.MustBeDenied(sess.AccessToken, "an access token of a disabled client's session")
	if s := f.Session(sess.SessionID); s.RevokedAt == nil || s.RevokedReason != tokens.ReasonClientDisabled {
		t.Fatalf("a disabled client's session: %v %q", s.RevokedAt, s.RevokedReason)
	}
	if _, err := f.Svc.UpdateClient(ctx, tokens.ClientSpec{ID: rs.ID, Disabled: ptr(false)}, "test", tokens.ClientInfo{}); err != nil {
		t.Fatal(err)
	}
	c, err = f.Svc.AuthenticateClient(ctx, auth)
	if err != nil {
		t.Fatal(err)
	}
	fresh, _ := f.Svc.ClientCredentials(ctx, c)
	f.MustAuthenticate(fresh.AccessToken)
	f.MustBeDenied(tok.AccessToken, "a token from before the disable, after re-enabling")

	// Deleting ends them too; the client is gone.
	if err := f.Svc.DeleteClient(ctx, rs.ID, "test", tokens.ClientInfo{}); err != nil {
		t.Fatal(err)
	}
	f.MustBeDenied(fresh.AccessToken, "a deleted client's token")
	if _, err := f.Svc.AuthenticateClient(ctx, auth); !errors.Is(err, tokens.ErrInvalidClient) {
		t.Fatalf("a deleted client authenticates: %v", err)
	}
}

func testRevokeOwnTokensOnly(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store)
	bank, _ := f.mustClient(tokens.ClientSpec{ID: ClientID("bank"), Type: tokens.ClientPublic})
	portal, _ := f.mustClient(tokens.ClientSpec{ID: ClientID("portal"), Type: tokens.ClientPublic})
	u := f.MustUser()
	p, err := f.Svc.LoginClient(ctx, bank, u.Email, Password, tokens.ClientInfo{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{p.RefreshToken, p.AccessToken} {
		if err := f.Svc.RevokeTokenFor(ctx, portal, tok, "", tokens.ClientInfo{}); !errors.Is(err, tokens.ErrUnauthorizedClient) {
			t.Fatalf("another client revoking bank's token: %v, want unauthorized_client", err)
		}
	}
	f.MustAuthenticate(p.AccessToken)
	if err := f.Svc.RevokeTokenFor(ctx, bank, p.RefreshToken, "", tokens.ClientInfo{}); err != nil {
		t.Fatal(err)
	}
	f.MustBeDenied(p.AccessToken, "after bank revoked its own refresh token")
}

func testApplyClients(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store)
	id := ClientID("rs")
	secret := "a resource server secret of 32+ bytes"
	specs := []tokens.ClientSpec{{ID: id, Type: tokens.ClientConfidential, Roles: ptr([]string{"introspect"}), Secret: secret}}
	created, updated, err := f.Svc.ApplyClients(ctx, specs)
	if err != nil || created != 1 || updated != 0 {
		t.Fatalf("apply: %d created, %d updated, %v", created, updated, err)
	}
	if _, err := f.Svc.AuthenticateClient(ctx, tokens.ClientAuth{ID: id, Secret: secret, HasSecret: true}); err != nil {
		t.Fatalf("the file's secret: %v", err)
	}
	specs[0].Name = ptr("Resource server")
	created, updated, err = f.Svc.ApplyClients(ctx, specs)
	if err != nil || created != 0 || updated != 1 {
		t.Fatalf("apply again: %d created, %d updated, %v", created, updated, err)
	}
	if c, _ := f.Svc.Client(ctx, id); c.Name != "Resource server" {
		t.Fatalf("name after apply: %q", c.Name)
	}
	if _, _, err := f.Svc.ApplyClients(ctx, []tokens.ClientSpec{{ID: ClientID("rs"), Type: tokens.ClientConfidential}}); !errors.Is(err, tokens.ErrInvalidInput) {
		t.Fatalf("a confidential client without its secret in a file: %v", err)
	}
}

// testDefaultClientMustBePublic: a confidential client named as the default
// client would hand its powers to every request that names no client.
func testDefaultClientMustBePublic(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store)
	conf, _ := f.mustClient(tokens.ClientSpec{ID: ClientID("bot"), Type: tokens.ClientConfidential, Roles: ptr([]string{"admin"})})
	cfg := f.Cfg
	cfg.DefaultClientID = conf.ID
	svc, err := tokens.NewService(store, FastPasswords, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.EnsureDefaultClient(ctx); err == nil {
		t.Fatal("a confidential client was accepted as the default client")
	}
	if err := svc.RefreshClients(ctx); err != nil {
		t.Fatal(err)
	}
	if c, err := svc.AuthenticateClient(ctx, tokens.ClientAuth{}); !errors.Is(err, tokens.ErrInvalidClient) {
		t.Fatalf("a request naming no client got the confidential default client %q (%v)", c.ID, err)
	}
}

// testClientRevocationDeniesTheCurrentFamily: a revocation computed from a
// stale read of the client still denies the family the client has now.
func testClientRevocationDeniesTheCurrentFamily(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store)
	c, _ := f.mustClient(tokens.ClientSpec{ID: ClientID("rs"), Type: tokens.ClientConfidential})
	now := f.Clock.Now()
	yes := true
	_, revs, err := store.UpdateClient(ctx, tokens.ClientUpdate{ID: c.ID, Disabled: &yes, UpdatedAt: now,
		Revoke: &tokens.ClientRevocation{Family: uuid.New() /* stale */, NewFamily: uuid.New(), EndSessions: true,
			Sessions: tokens.SessionRevocation{Reason: tokens.ReasonClientDisabled, At: now, DenyUntil: now.Add(time.Hour),
				Event: tokens.AuditEvent{At: now, Kind: tokens.EventRevoked}}}})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range revs {
		found = found || r.Subject == c.TokenFamily
	}
	if !found {
		t.Fatalf("the client's current token family %s was not denied: %v", c.TokenFamily, revs)
	}
}

// testClientsFileAllOrNothing: a file with one bad entry changes nothing,
// not even the entries before it.
func testClientsFileAllOrNothing(t *testing.T, store tokens.Store) {
	f := NewFixture(t, store)
	a, _ := f.mustClient(tokens.ClientSpec{ID: ClientID("a"), Type: tokens.ClientPublic})
	for name, bad := range map[string]tokens.ClientSpec{
		"a short secret":            {ID: ClientID("c"), Type: tokens.ClientConfidential, Secret: "short"},
		"a public client's secret":  {ID: ClientID("p"), Type: tokens.ClientPublic, Secret: "a secret of thirty-two bytes or more!"},
		"a type change":             {ID: a.ID, Type: tokens.ClientConfidential},
		"the default client off":    {ID: f.Svc.Config().DefaultClientID, Disabled: ptr(true)},
		"a bad origin on an update": {ID: a.ID, AllowedOrigins: ptr([]string{"not an origin"})},
	} {
		specs := []tokens.ClientSpec{{ID: a.ID, Disabled: ptr(true)}, bad}
		if _, _, err := f.Svc.ApplyClients(ctx, specs); err == nil {
			t.Errorf("%s: the file was accepted", name)
		}
		if got, _ := store.Client(ctx, a.ID); got.Disabled {
			t.Fatalf("%s: a rejected file still disabled client %s", name, a.ID)
		}
	}
}
