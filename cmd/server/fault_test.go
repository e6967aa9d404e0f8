package main

import (
	"strings"
	"testing"
	"time"

	"github.com/rotorauth/rotor/internal/store/postgres/pgtest"
)

func eventually(t *testing.T, within time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDatabaseOutage stops a private PostgreSQL under a running server:
// liveness stays up, readiness goes down, token endpoints answer 503
// temporarily_unavailable with Retry-After (never invalid_grant, which would
// make a client throw away a good token), access-token checks fail closed
// once revocations cannot be followed, and when the database returns the
// service resumes without a restart and the token presented during the
// outage still rotates, with no false reuse detection.
func TestDatabaseOutage(t *testing.T) {
	cluster := pgtest.NewCluster(t)
	in := start(t, map[string]string{
		"DATABASE_URL": cluster.URL, "JWT_KEYS": writeKeys(t), "TOKEN_SECRET": "outage test secret of 32+ bytes!!",
		"LOGIN_RATE_LIMIT": "0", "QUIET_ACCESS_LOG": "true", "REFRESH_REUSE_GRACE": "0",
		"BOOTSTRAP_ADMIN_EMAIL": "ops@example.test", "BOOTSTRAP_ADMIN_PASSWORD": "ops password 1",
	})
	_, admin := call(t, "POST", in.base+"/token", `{"username":"ops@example.test","password":"ops password 1"}`, "")
	adminAT := admin["access_token"].(string)
	call(t, "POST", in.base+"/users", `{"email":"u@example.test","password":"user password"}`, "")
	st, tok := call(t, "POST", in.base+"/token", `{"username":"u@example.test","password":"user password"}`, "")
	if st != 200 {
		t.Fatalf("login %d", st)
	}
	rt := tok["refresh_token"].(string)

	cluster.Stop("fast")

	if st, _ := call(t, "GET", in.base+"/healthz", "", ""); st != 200 {
		t.Fatalf("/healthz during the outage: %d", st)
	}
	if st, _ := call(t, "GET", in.base+"/readyz", "", ""); st != 503 {
		t.Fatalf("/readyz during the outage: %d", st)
	}
	for _, c := range []struct{ path, body string }{
		{"/refresh", `{"refresh_token":"` + rt + `"}`},
		{"/token", `{"username":"u@example.test","password":"user password"}`},
		{"/users", `{"email":"v@example.test","password":"user password"}`},
	} {
		st, h, body := callFull(t, "POST", in.base+c.path, c.body, "")
		if st != 503 || !strings.Contains(body, `"temporarily_unavailable"`) || h.Get("Retry-After") == "" {
			t.Fatalf("%s during the outage: %d %s (Retry-After %q)", c.path, st, body, h.Get("Retry-After"))
		}
		if strings.Contains(body, "127.0.0.1") || strings.Contains(strings.ToLower(body), "sql") {
			t.Fatalf("%s leaks internals: %s", c.path, body)
		}
	}
	// Once revocations cannot be followed, token checks fail closed.
	eventually(t, 10*time.Second, "/introspect fails closed", func() bool {
		st, _ := call(t, "POST", in.base+"/introspect", `{"token":"`+adminAT+`"}`, adminAT)
		return st == 503
	})
	if st, _ := call(t, "GET", in.base+"/me", "", tok["access_token"].(string)); st != 503 {
		t.Fatalf("/me with a stale denylist: %d, want 503", st)
	}

	cluster.Start()

	eventually(t, 20*time.Second, "/readyz back to 200", func() bool {
		st, _ := call(t, "GET", in.base+"/readyz", "", "")
		return st == 200
	})
	st, next := call(t, "POST", in.base+"/refresh", `{"refresh_token":"`+rt+`"}`, "")
	if st != 200 {
		t.Fatalf("the token presented during the outage, after it: %d %v (strict mode: a false reuse would be 400)", st, next)
	}
	eventually(t, 10*time.Second, "token checks resume", func() bool {
		st, _ := call(t, "GET", in.base+"/me", "", next["access_token"].(string))
		return st == 200
	})
	if st, _ := call(t, "POST", in.base+"/refresh", `{"refresh_token":"`+next["refresh_token"].(string)+`"}`, ""); st != 200 {
		t.Fatalf("rotation after the outage: %d", st)
	}
	// The outage was logged without SQL, stacks, the connection string or
	// any token or password, and every request's error line has its id.
	logs := in.logs.String()
	for _, bad := range []string{"postgres://", "SELECT", "INSERT", "goroutine ", rt, adminAT, "user password", "ops password 1"} {
		if strings.Contains(logs, bad) {
			t.Fatalf("the log contains %.20q", bad)
		}
	}
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, `"msg":"request failed"`) && !strings.Contains(line, `"request_id":"`) {
			t.Fatalf("an error line without a request id: %s", line)
		}
	}
}
