package api_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/rotorauth/rotor/internal/api"
	"github.com/rotorauth/rotor/internal/tokens"
)

// TestRouteGuards: the route table shows each route's guard, and the guard
// holds for every route: no token is 401 on every User and Role route, a
// user's token without the role is 403 on every Role route.
func TestRouteGuards(t *testing.T) {
	ts := newTestServer(t, api.Options{SignupEnabled: true})
	_, plain := ts.newUser()
	for _, r := range api.RouteTable() {
		path := strings.NewReplacer("{id}", "00000000-0000-4000-8000-000000000000").Replace(r.Path)
		switch {
		case strings.HasPrefix(r.Path, "/admin/"):
			if r.Guard != api.Role || !slices.Equal(r.Roles, []string{"admin"}) {
				t.Errorf("%s %s: guard %s %v, want role admin", r.Method, r.Path, r.Guard, r.Roles)
			}
		case slices.Contains([]string{"/me", "/sessions", "/sessions/{id}", "/password"}, r.Path):
			if r.Guard != api.User {
				t.Errorf("%s %s: guard %s, want user", r.Method, r.Path, r.Guard)
			}
		}
		if r.Guard == api.Public {
			continue
		}
		ts.do(req{method: r.Method, path: path, body: "{}"}).wantError(t, 401, "invalid_token")
		if r.Guard == api.Role {
			ts.do(req{method: r.Method, path: path, body: "{}", bearer: plain.AccessToken}).wantError(t, 403, "insufficient_scope")
		}
	}
}

// TestRoleRoutesTakeOnlyRotorsAudience: an admin's token obtained through
// another client (for that client's API) cannot be replayed at Rotor's
// role-protected endpoints by that API's servers; the same admin's token
// for Rotor's own audience can.
func TestRoleRoutesTakeOnlyRotorsAudience(t *testing.T) {
	ts := newTestServer(t, api.Options{SignupEnabled: true})
	aud := "bank-api"
	if _, _, err := ts.svc.CreateClient(context.Background(), tokens.ClientSpec{ID: "bank", Type: tokens.ClientPublic, Audience: &aud}, "test", tokens.ClientInfo{}); err != nil {
		t.Fatal(err)
	}
	bank := ts.tokens(ts.post("/token", mustJSON(map[string]string{"username": adminEmail, "password": adminPassword, "client_id": "bank"}), ""))
	for _, path := range []string{"/admin/clients", "/revocations"} {
		ts.get(path, bank.AccessToken).wantError(t, 403, "insufficient_scope")
		if r := ts.get(path, ts.adminToken()); r.status != 200 {
			t.Fatalf("GET %s with a token for Rotor: %d", path, r.status)
		}
	}
	// User endpoints take any client's token.
	if r := ts.get("/me", bank.AccessToken); r.status != 200 {
		t.Fatalf("GET /me with the bank's token: %d", r.status)
	}
}
