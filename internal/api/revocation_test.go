package api_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestLogoutAndSessions(t *testing.T) {
	ts := newTestServer(t, defaults)
	email, a := ts.newUser()
	b := ts.login(email, "user password 1")
	c := ts.login(email, "user password 1")

	list := ts.get("/sessions", a.AccessToken)
	if list.status != 200 || strings.Count(string(list.body), `"id"`) != 3 || strings.Count(string(list.body), `"current":true`) != 1 {
		t.Fatalf("/sessions: %d %s", list.status, list.body)
	}
	// Delete one's own other session; another user's session is 404.
	if r := ts.do(req{method: "DELETE", path: "/sessions/" + b.SessionID, bearer: a.AccessToken}); r.status != 204 {
		t.Fatalf("DELETE own session: %d %s", r.status, r.body)
	}
	ts.get("/me", b.AccessToken).wantError(t, 401, "invalid_token")
	_, stranger := ts.newUser()
	ts.do(req{method: "DELETE", path: "/sessions/" + c.SessionID, bearer: stranger.AccessToken}).wantError(t, 404, "not_found")
	ts.do(req{method: "DELETE", path: "/sessions/nope", bearer: stranger.AccessToken}).wantError(t, 400, "invalid_request")

	// Logout with the access token ends this session only.
	if r := ts.post("/logout", "", a.AccessToken); r.status != 204 {
		t.Fatalf("logout: %d %s", r.status, r.body)
	}
	ts.get("/me", a.AccessToken).wantError(t, 401, "invalid_token")
	ts.post("/refresh", mustJSON(map[string]string{"refresh_token": a.RefreshToken}), "").wantError(t, 400, "invalid_grant")
	if ts.get("/me", c.AccessToken).status != 200 {
		t.Fatal("logout ended another session")
	}
	// Logout by refresh token alone, then global logout.
	d := ts.login(email, "user password 1")
	if r := ts.post("/logout", mustJSON(map[string]string{"refresh_token": d.RefreshToken}), ""); r.status != 204 {
		t.Fatalf("logout by refresh token: %d %s", r.status, r.body)
	}
	ts.get("/me", d.AccessToken).wantError(t, 401, "invalid_token")
	if r := ts.post("/logout", `{"scope":"global"}`, c.AccessToken); r.status != 204 {
		t.Fatalf("global logout: %d %s", r.status, r.body)
	}
	ts.get("/me", c.AccessToken).wantError(t, 401, "invalid_token")
	ts.post("/logout", "", "").wantError(t, 401, "invalid_token")
	ts.post("/logout", `{"scope":"everything"}`, stranger.AccessToken).wantError(t, 400, "invalid_request")
	if ts.get("/me", stranger.AccessToken).status != 200 {
		t.Fatal("global logout of one user ended another user's session")
	}
}

func TestPasswordChangeOverHTTP(t *testing.T) {
	ts := newTestServer(t, defaults)
	email, a := ts.newUser()
	b := ts.login(email, "user password 1")
	ts.remember("new password 22")
	ts.post("/password", `{"current_password":"wrong one!","new_password":"new password 22"}`, a.AccessToken).wantError(t, 400, "invalid_grant")
	if r := ts.post("/password", `{"current_password":"user password 1","new_password":"new password 22"}`, a.AccessToken); r.status != 204 {
		t.Fatalf("password change: %d %s", r.status, r.body)
	}
	ts.get("/me", b.AccessToken).wantError(t, 401, "invalid_token")
	if ts.get("/me", a.AccessToken).status != 200 {
		t.Fatal("the session that changed the password was revoked")
	}
	ts.login(email, "new password 22")
}

func TestAdminEndpoints(t *testing.T) {
	ts := newTestServer(t, defaults)
	admin := ts.adminToken()
	_, user := ts.newUser()
	ts.get("/admin/users?email=x@example.test", user.AccessToken).wantError(t, 403, "insufficient_scope")
	ts.get("/admin/users?email=x@example.test", "").wantError(t, 401, "invalid_token")

	ts.remember("created password")
	r := ts.post("/admin/users", `{"email":"Ops@Example.test","password":"created password","roles":["introspect"]}`, admin)
	if r.status != 201 || r.json(t)["disabled"] != false {
		t.Fatalf("admin create: %d %s", r.status, r.body)
	}
	id := r.json(t)["id"].(string)
	found := ts.get("/admin/users?email="+url.QueryEscape("ops@example.test"), admin)
	if found.status != 200 || found.json(t)["id"] != id {
		t.Fatalf("find: %d %s", found.status, found.body)
	}
	ts.get("/admin/users?email=ghost@example.test", admin).wantError(t, 404, "not_found")
	ts.get("/admin/users", admin).wantError(t, 400, "invalid_request")

	ops1 := ts.login("ops@example.test", "created password")
	ops2 := ts.login("ops@example.test", "created password")
	sess := ts.get("/admin/users/"+id+"/sessions", admin)
	if sess.status != 200 || strings.Count(string(sess.body), `"id"`) != 2 {
		t.Fatalf("admin sessions: %d %s", sess.status, sess.body)
	}
	if r := ts.do(req{method: "DELETE", path: "/admin/sessions/" + ops1.SessionID, bearer: admin}); r.status != 204 {
		t.Fatalf("admin revoke session: %d %s", r.status, r.body)
	}
	ts.get("/me", ops1.AccessToken).wantError(t, 401, "invalid_token")
	r = ts.do(req{method: "DELETE", path: "/admin/users/" + id + "/sessions", bearer: admin})
	if r.status != 200 || r.json(t)["revoked"] != float64(1) {
		t.Fatalf("admin revoke all: %d %s", r.status, r.body)
	}
	ts.get("/me", ops2.AccessToken).wantError(t, 401, "invalid_token")

	ops3 := ts.login("ops@example.test", "created password")
	r = ts.do(req{method: "PATCH", path: "/admin/users/" + id, body: `{"disabled":true}`, bearer: admin})
	if r.status != 200 || r.json(t)["disabled"] != true {
		t.Fatalf("disable: %d %s", r.status, r.body)
	}
	ts.get("/me", ops3.AccessToken).wantError(t, 401, "invalid_token")
	ts.post("/token", `{"username":"ops@example.test","password":"created password"}`, "").wantError(t, 400, "invalid_grant")
	ts.do(req{method: "PATCH", path: "/admin/users/" + id, body: `{}`, bearer: admin}).wantError(t, 400, "invalid_request")
	ts.do(req{method: "PATCH", path: "/admin/users/" + id, body: `{"roles":["Not Valid"]}`, bearer: admin}).wantError(t, 400, "invalid_request")
	ts.do(req{method: "PATCH", path: "/admin/users/00000000-0000-0000-0000-000000000001", body: `{"disabled":false}`, bearer: admin}).wantError(t, 404, "not_found")

	audit := ts.get("/admin/audit?user_id="+id+"&limit=50", admin)
	for _, kind := range []string{`"login"`, `"revoked"`, `"user_disabled"`, `"login_failed"`} {
		if !strings.Contains(string(audit.body), kind) {
			t.Errorf("audit lacks %s: %s", kind, audit.body)
		}
	}
	ts.get("/admin/audit?limit=0", admin).wantError(t, 400, "invalid_request")
	ts.get("/admin/audit?user_id=x", admin).wantError(t, 400, "invalid_request")
}

func TestRevokeAndIntrospect(t *testing.T) {
	ts := newTestServer(t, defaults)
	admin := ts.adminToken()
	_, a := ts.newUser()
	_, b := ts.newUser()

	introspect := func(token, bearer string) map[string]any {
		t.Helper()
		r := ts.post("/introspect", mustJSON(map[string]string{"token": token}), bearer)
		if r.status != 200 {
			t.Fatalf("introspect: %d %s", r.status, r.body)
		}
		return r.json(t)
	}
	got := introspect(a.AccessToken, admin)
	if got["active"] != true || got["sid"] != a.SessionID || got["token_type"] != "Bearer" || got["client_id"] != "default" || got["roles"] == nil {
		t.Fatalf("introspect active: %v", got)
	}
	ts.post("/introspect", mustJSON(map[string]string{"token": a.AccessToken}), b.AccessToken).wantError(t, 403, "insufficient_scope")
	for _, bad := range []string{"garbage", a.RefreshToken, a.AccessToken + "x"} {
		if got := introspect(bad, admin); len(got) != 1 || got["active"] != false {
			t.Fatalf("introspect of an invalid token: %v", got)
		}
	}
	// RFC 7009: form, access token.
	form := url.Values{"token": {a.AccessToken}, "token_type_hint": {"access_token"}}.Encode()
	if r := ts.do(req{method: "POST", path: "/revoke", body: form, contentType: "application/x-www-form-urlencoded"}); r.status != 200 {
		t.Fatalf("revoke access token: %d %s", r.status, r.body)
	}
	if got := introspect(a.AccessToken, admin); got["active"] != false {
		t.Fatal("a revoked access token is still active")
	}
	// JSON, refresh token: the session goes.
	if r := ts.post("/revoke", mustJSON(map[string]string{"token": b.RefreshToken}), ""); r.status != 200 {
		t.Fatalf("revoke refresh token: %d %s", r.status, r.body)
	}
	ts.get("/me", b.AccessToken).wantError(t, 401, "invalid_token")
	if r := ts.post("/revoke", `{"token":"rt_unknown"}`, ""); r.status != 200 {
		t.Fatalf("revoke unknown token: %d", r.status)
	}
	ts.post("/revoke", `{}`, "").wantError(t, 400, "invalid_request")

	// The feed lists both, and a cursor skips what was seen.
	feed := ts.get("/revocations", admin)
	body := string(feed.body)
	if feed.status != 200 || !strings.Contains(body, b.SessionID) || !strings.Contains(body, `"jti"`) {
		t.Fatalf("feed: %d %s", feed.status, body)
	}
	cursor := feed.json(t)["cursor"].(string)
	next := ts.get("/revocations?since="+cursor, admin)
	if next.json(t)["cursor"] != cursor || strings.Contains(string(next.body), `"sid":"`+a.SessionID) {
		t.Fatalf("feed after the cursor with nothing new: %s", next.body)
	}
	// A new revocation shows up after the cursor, and moves it.
	_, c := ts.newUser()
	ts.post("/logout", "", c.AccessToken)
	later := ts.get("/revocations?since="+cursor, admin)
	if !strings.Contains(string(later.body), c.SessionID) || later.json(t)["cursor"] == cursor {
		t.Fatalf("feed after a new revocation: %s", later.body)
	}
	ts.get("/revocations?since=-1", admin).wantError(t, 400, "invalid_request")
	ts.get("/revocations", "").wantError(t, http.StatusUnauthorized, "invalid_token")
}

// A lapsed or revoked access token does not stop a logout that carries the
// refresh token too: the session still ends.
func TestLogoutWithDeadAccessTokenAndRefreshToken(t *testing.T) {
	ts := newTestServer(t, defaults)
	_, p := ts.newUser()
	if r := ts.post("/revoke", mustJSON(map[string]string{"token": p.AccessToken}), ""); r.status != 200 {
		t.Fatalf("revoke: %d", r.status)
	}
	r := ts.post("/logout", mustJSON(map[string]string{"refresh_token": p.RefreshToken}), p.AccessToken)
	if r.status != 204 {
		t.Fatalf("logout with a revoked access token and a live refresh token: %d %s", r.status, r.body)
	}
	ts.post("/refresh", mustJSON(map[string]string{"refresh_token": p.RefreshToken}), "").wantError(t, 400, "invalid_grant")
	// Without the refresh token, the dead access token is a 401.
	ts.post("/logout", "", p.AccessToken).wantError(t, 401, "invalid_token")
}
