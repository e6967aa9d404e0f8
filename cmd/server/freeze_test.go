package main

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rotorauth/rotor/internal/store/postgres/pgtest"
	"github.com/rotorauth/rotor/internal/tokens"
)

const (
	poolApp     = "rotor"
	listenerApp = "rotor-listener"
	// revocationBound is the contract's second plus a scheduling margin:
	// past it, no instance may accept a revoked token.
	revocationBound = tokens.MaxRevocationLag + 500*time.Millisecond

	msgListenerLost = "revocation listener lost its connection"
	msgFailClosed   = "access-token checks fail closed"
)

// smallPool adds pool_max_conns=4 to a database URL (max_connections is
// shared by every test on the machine).
func smallPool(t *testing.T, dbURL string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("pool_max_conns", "4")
	u.RawQuery = q.Encode()
	return u.String()
}

// probe is one /me answer and when its request started.
type probe struct {
	at     time.Duration // since the reference instant
	status int
	code   string
}

// waitLog waits until in's log contains msg and returns how long after
// since it was found (at most within, or the test fails).
func waitLog(t *testing.T, in *instance, since time.Time, within time.Duration, msg string) time.Duration {
	t.Helper()
	eventually(t, within-time.Since(since), "log line "+strconv.Quote(msg), func() bool {
		return strings.Contains(in.logs.String(), msg)
	})
	return time.Since(since)
}

func me(t *testing.T, base, at string, since time.Time) probe {
	t.Helper()
	began := time.Since(since)
	st, body := call(t, "GET", base+"/me", "", at)
	code, _ := body["error"].(string)
	return probe{at: began, status: st, code: code}
}

// TestFreezeInstanceDatabaseConnections puts a proxy between instance B and
// PostgreSQL that freezes connections without closing them (the listener's,
// the pool's, or both), revokes a session on instance A, and checks that B
// never accepts that session's token past the one-second bound: it refuses
// it (401, synced through a healthy pool) or fails closed (503
// temporarily_unavailable, cannot sync), says why in its log, answers
// /refresh with 503 within seconds instead of hanging, and recovers on its
// own once new connections flow again.
func TestFreezeInstanceDatabaseConnections(t *testing.T) {
	pgtest.Require(t, db)
	keys := writeKeys(t)
	target, err := url.Parse(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	aEnv := pgEnv(t, keys)
	aEnv["DATABASE_URL"] = smallPool(t, db.URL)
	a := start(t, aEnv)

	for _, c := range []struct {
		name           string
		listener, pool bool
	}{
		{"ListenerOnly", true, false},
		{"PoolOnly", false, true},
		{"Both", true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			proxy := newFreezeProxy(t, target.Host)
			bEnv := pgEnv(t, keys)
			bEnv["DATABASE_URL"] = smallPool(t, proxy.url(t, db.URL))
			b := start(t, bEnv)
			// Cleanups run last first: the partition ends (the proxy closes
			// every socket) before B stops, or pgx would give each frozen
			// connection its 15 s drain and B would take that long to stop.
			t.Cleanup(proxy.Close)
			eventually(t, 5*time.Second, "B's listener connects through the proxy", func() bool {
				return proxy.count(listenerApp) > 0 && proxy.count(poolApp) > 0
			})
			time.Sleep(200 * time.Millisecond) // LISTEN issued

			email := fmt.Sprintf("freeze-%s-%d@example.test", strings.ToLower(c.name), time.Now().UnixNano())
			pass := "freeze password " + c.name
			if st, _ := call(t, "POST", a.base+"/users", `{"email":"`+email+`","password":"`+pass+`"}`, ""); st != 201 {
				t.Fatalf("signup %d", st)
			}
			login := func() map[string]any {
				st, tok := call(t, "POST", a.base+"/token", `{"username":"`+email+`","password":"`+pass+`"}`, "")
				if st != 200 {
					t.Fatalf("login %d", st)
				}
				return tok
			}
			doomed, valid := login(), login()
			doomedAT, validAT := doomed["access_token"].(string), valid["access_token"].(string)
			validRT := valid["refresh_token"].(string)
			for _, at := range []string{doomedAT, validAT} {
				if st, _ := call(t, "GET", b.base+"/me", "", at); st != 200 {
					t.Fatalf("B refused a fresh token before the freeze: %d", st)
				}
			}

			var apps []string
			if c.listener {
				apps = append(apps, listenerApp)
			}
			if c.pool {
				apps = append(apps, poolApp)
			}
			frozeAt := time.Now()
			if n := proxy.Freeze(apps...); n == 0 {
				t.Fatalf("no open connection of %v to freeze", apps)
			}
			if st, _ := call(t, "POST", a.base+"/logout", "", doomedAT); st != 204 {
				t.Fatalf("logout on A: %d", st)
			}
			revokedAt := time.Now()

			// /refresh on B, concurrently: with the pool frozen it must
			// answer 503 within seconds, not hang.
			type refreshResult struct {
				status int
				code   string
				took   time.Duration
				err    error
			}
			refreshed := make(chan refreshResult, 1)
			if c.pool {
				go func() {
					began := time.Now()
					st, body, err := tryCall("POST", b.base+"/refresh", `{"refresh_token":"`+validRT+`"}`)
					code, _ := body["error"].(string)
					refreshed <- refreshResult{st, code, time.Since(began), err}
				}()
			}

			// Watch both tokens on B for two seconds past the logout.
			var refusedAfter, closedAfter, lostLogged, closedLogged time.Duration = -1, -1, -1, -1
			var lastAccepted, lastValid time.Duration = -1, -1 // the last 200s seen
			for time.Since(revokedAt) < revocationBound+500*time.Millisecond {
				logs := b.logs.String()
				if lostLogged < 0 && strings.Contains(logs, msgListenerLost) {
					lostLogged = time.Since(frozeAt)
				}
				if closedLogged < 0 && strings.Contains(logs, msgFailClosed) {
					closedLogged = time.Since(frozeAt)
				}
				p := me(t, b.base, doomedAT, revokedAt)
				switch {
				case p.status == 200:
					if p.at > revocationBound {
						t.Fatalf("B accepted a revoked session's token %v after the logout on A", p.at.Round(time.Millisecond))
					}
					if refusedAfter >= 0 {
						t.Fatalf("B accepted a revoked token again at %v after refusing it at %v", p.at, refusedAfter)
					}
					lastAccepted = p.at
				case p.status == 401 || (p.status == 503 && p.code == "temporarily_unavailable"):
					if refusedAfter < 0 {
						refusedAfter = p.at
					}
				default:
					t.Fatalf("revoked token on B: %d %q", p.status, p.code)
				}
				v := me(t, b.base, validAT, frozeAt)
				switch {
				case v.status == 200:
					if c.pool && v.at > revocationBound {
						t.Fatalf("B, unable to sync, still accepts tokens %v after the freeze", v.at.Round(time.Millisecond))
					}
					if c.pool && closedAfter >= 0 {
						t.Fatalf("B accepted a valid token at %v after failing closed at %v, its pool still frozen", v.at, closedAfter)
					}
					lastValid = v.at
				case c.pool && v.status == 503 && v.code == "temporarily_unavailable":
					if closedAfter < 0 {
						closedAfter = v.at
					}
				default:
					t.Fatalf("valid token on B during the freeze: %d %q", v.status, v.code)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if refusedAfter < 0 {
				t.Fatal("B never refused the revoked token")
			}
			t.Logf("B refused the revoked token %v after the logout on A (last accepted at %v)",
				refusedAfter.Round(time.Millisecond), lastAccepted.Round(time.Millisecond))
			if c.pool {
				if closedAfter < 0 {
					t.Fatal("B never failed closed")
				}
				t.Logf("B failed closed (valid token 503) %v after the freeze (last accepted at %v)",
					closedAfter.Round(time.Millisecond), lastValid.Round(time.Millisecond))
				r := <-refreshed
				if r.err != nil || r.status != 503 || r.code != "temporarily_unavailable" || r.took >= 5*time.Second {
					t.Fatalf("/refresh on B with the pool frozen: %d %q after %v (err %v); want 503 within 5s", r.status, r.code, r.took, r.err)
				}
				t.Logf("/refresh on B answered 503 in %v", r.took.Round(time.Millisecond))
				if closedLogged < 0 {
					closedLogged = waitLog(t, b, frozeAt, 5*time.Second, msgFailClosed)
				}
				t.Logf("B logged why it fails closed %v after the freeze", closedLogged.Round(time.Millisecond))
			} else {
				// A healthy pool keeps B syncing: no reason to fail closed.
				if st, _ := call(t, "GET", b.base+"/me", "", validAT); st != 200 {
					t.Fatalf("B with a healthy pool refused a valid token: %d", st)
				}
				if strings.Contains(b.logs.String(), msgFailClosed) {
					t.Fatal("B failed closed although its pool was healthy")
				}
			}
			if c.listener {
				if lostLogged < 0 {
					lostLogged = waitLog(t, b, frozeAt, 5*time.Second, msgListenerLost)
				}
				t.Logf("B logged the frozen listener %v after the freeze", lostLogged.Round(time.Millisecond))
			}

			proxy.Unfreeze()
			unfrozeAt := time.Now()
			eventually(t, 10*time.Second, "B accepts a valid token again", func() bool {
				st, _ := call(t, "GET", b.base+"/me", "", validAT)
				return st == 200
			})
			t.Logf("B accepts valid tokens again %v after the unfreeze", time.Since(unfrozeAt).Round(time.Millisecond))
			if st, _ := call(t, "GET", b.base+"/me", "", doomedAT); st != 401 {
				t.Fatalf("revoked token on B after recovery: %d, want 401", st)
			}
			var next map[string]any
			eventually(t, 10*time.Second, "/refresh on B works again", func() bool {
				var st int
				st, next = call(t, "POST", b.base+"/refresh", `{"refresh_token":"`+validRT+`"}`, "")
				return st == 200
			})
			t.Logf("/refresh on B works again %v after the unfreeze", time.Since(unfrozeAt).Round(time.Millisecond))
			if st, _ := call(t, "GET", b.base+"/me", "", next["access_token"].(string)); st != 200 {
				t.Fatalf("the refreshed token on B: %d", st)
			}
			if c.listener {
				d := waitLog(t, b, unfrozeAt, 10*time.Second, "revocation listener reconnected")
				t.Logf("B's listener reconnected %v after the unfreeze", d.Round(time.Millisecond))
			}
			if c.pool {
				waitLog(t, b, unfrozeAt, 5*time.Second, "access-token checks resume")
			}
			// A logout on A after the recovery reaches B within the bound.
			if st, _ := call(t, "POST", a.base+"/logout", "", next["access_token"].(string)); st != 204 {
				t.Fatalf("second logout on A: %d", st)
			}
			after := time.Now()
			for {
				p := me(t, b.base, next["access_token"].(string), after)
				if p.status == 401 {
					break
				}
				if p.at > revocationBound {
					t.Fatalf("after recovery B still accepts a revoked token: %d at %v", p.status, p.at)
				}
				time.Sleep(10 * time.Millisecond)
			}

			logs := b.logs.String()
			for _, secret := range []string{pass, doomedAT, validAT, validRT, next["refresh_token"].(string), "postgres://"} {
				if strings.Contains(logs, secret) {
					t.Fatalf("B's log contains %.12q…", secret)
				}
			}
		})
	}
}
