package api_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/rotorauth/rotor/internal/api"
	"github.com/rotorauth/rotor/internal/tokens"
)

// counterValue reads one series of a counter from reg (0 if absent).
func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue series
				}
			}
			return metricValue(m)
		}
	}
	return 0
}

func metricValue(m *dto.Metric) float64 { return m.GetCounter().GetValue() }

// TestMetricsCountEachEventOnce plays one scripted scenario and checks every
// domain counter against the number of events it caused: counted once,
// where the event happens, with its reason.
func TestMetricsCountEachEventOnce(t *testing.T) {
	reg := prometheus.NewRegistry()
	obs := api.NewDomainMetrics(reg)
	ts := newTestServer(t, api.Options{Registry: reg, SignupEnabled: true},
		func(c *tokens.Config) { c.Observer = obs })
	admin := ts.adminToken()

	email, a := ts.newUser()
	_, b := ts.newUser()
	r1 := ts.tokens(ts.post("/refresh", mustJSON(map[string]string{"refresh_token": a.RefreshToken}), ""))        // rotated
	ts.tokens(ts.post("/refresh", mustJSON(map[string]string{"refresh_token": a.RefreshToken}), ""))              // replayed
	ts.tokens(ts.post("/refresh", mustJSON(map[string]string{"refresh_token": r1.RefreshToken}), ""))             // rotated
	ts.post("/token", mustJSON(map[string]string{"username": email, "password": "wrong password"}), "")           // login failure
	ts.post("/token", mustJSON(map[string]string{"username": "nobody@example.test", "password": "x1234567"}), "") // login failure

	// Reuse: a grandparent revokes its session (1 reuse, 1 session).
	_, c := ts.newUser()
	c1 := ts.tokens(ts.post("/refresh", mustJSON(map[string]string{"refresh_token": c.RefreshToken}), ""))
	ts.tokens(ts.post("/refresh", mustJSON(map[string]string{"refresh_token": c1.RefreshToken}), ""))
	if r := ts.post("/refresh", mustJSON(map[string]string{"refresh_token": c.RefreshToken}), ""); r.status != 400 {
		t.Fatalf("reuse: %d", r.status)
	}

	// Logout of b's session with its access token: 1 session (its jti needs
	// no entry of its own: the session's covers it).
	if r := ts.post("/logout", "", b.AccessToken); r.status != http.StatusNoContent {
		t.Fatalf("logout: %d %s", r.status, r.body)
	}
	// Three more sessions of a's user, then log out everywhere: 4 sessions.
	for i := 0; i < 3; i++ {
		ts.login(email, "user password 1")
	}
	last := ts.login(email, "user password 1")
	if r := ts.post("/logout", mustJSON(map[string]string{"scope": "global"}), last.AccessToken); r.status != http.StatusNoContent {
		t.Fatalf("global logout: %d %s", r.status, r.body)
	}
	// A repeated revocation of an already revoked token writes (and counts)
	// nothing.
	ts.post("/revoke", mustJSON(map[string]string{"token": last.AccessToken}), "")
	ts.post("/revoke", mustJSON(map[string]string{"token": "rt_unknown"}), "")
	// RFC 7009 revocation of a live access token: one jti denied, its
	// session lives.
	_, g := ts.newUser()
	ts.post("/revoke", mustJSON(map[string]string{"token": g.AccessToken}), "")

	// Admin: revoke all of a new user's 2 sessions; disable another (1).
	dEmail, d := ts.newUser()
	dUser := ts.get("/me", d.AccessToken).json(t)["id"].(string)
	ts.login(dEmail, "user password 1")
	if r := ts.do(req{method: "DELETE", path: "/admin/users/" + dUser + "/sessions", bearer: admin}); r.status != 200 {
		t.Fatalf("admin revoke-all: %d %s", r.status, r.body)
	}
	_, e := ts.newUser()
	eUser := ts.get("/me", e.AccessToken).json(t)["id"].(string)
	if r := ts.do(req{method: "PATCH", path: "/admin/users/" + eUser, bearer: admin, body: `{"disabled":true}`}); r.status != 200 {
		t.Fatalf("disable: %d %s", r.status, r.body)
	}
	time.Sleep(10 * time.Millisecond)

	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"rotor_refresh_total", map[string]string{"outcome": "rotated"}, 4},
		{"rotor_refresh_total", map[string]string{"outcome": "replayed"}, 1},
		{"rotor_reuse_detections_total", nil, 1},
		{"rotor_revocations_total", map[string]string{"reason": string(tokens.ReasonReuseDetected)}, 1},
		{"rotor_revocations_total", map[string]string{"reason": string(tokens.ReasonLogout)}, 1},
		{"rotor_revocations_total", map[string]string{"reason": string(tokens.ReasonLogoutAll)}, 5},
		{"rotor_revocations_total", map[string]string{"reason": string(tokens.ReasonAdmin)}, 2},
		{"rotor_revocations_total", map[string]string{"reason": string(tokens.ReasonUserDisabled)}, 1},
		{"rotor_revocations_total", map[string]string{"reason": string(tokens.ReasonRevokeEndpoint)}, 0},
		{"rotor_tokens_denied_total", map[string]string{"reason": string(tokens.ReasonLogout)}, 0},
		{"rotor_tokens_denied_total", map[string]string{"reason": string(tokens.ReasonRevokeEndpoint)}, 1},
		{"rotor_login_failures_total", nil, 2},
	} {
		if got := counterValue(t, reg, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}
