package verify

// Key rotation, feed outages, a large feed, introspection and the
// lifecycle, against the real Rotor binary.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// TestKeyRotation rotates Rotor's key the documented way, restarting it on
// PostgreSQL each time: a new key first with the old one kept (new tokens
// are accepted at once, through the unknown-kid refetch, and old ones still
// are), then a file without the old key (after the next periodic refresh its
// tokens are refused). Two resource servers follow without a restart.
func TestKeyRotation(t *testing.T) {
	db := scratchDB(t)
	oldKey, newKey := newKey(t), newKey(t)
	r := startRotor(t, rotorOpts{keys: writeKeys(t, oldKey), dbURL: db})
	ts := r.serviceSource()
	edit := func(c *Config) { c.KeyRefreshInterval = time.Second; c.StaleAfter = 15 * time.Second }
	bankV, _ := newVerifier(t, r, ts, edit)
	retireV, _ := newVerifier(t, r, ts, edit)
	bank, retire := resourceServer(t, "bank", bankV), resourceServer(t, "retirement", retireV)
	both := []*httptest.Server{bank, retire}
	accepted := func(what, token string) {
		t.Helper()
		for _, s := range both {
			if st, _, body := get(t, s.URL+"/whoami", token); st != 200 {
				t.Fatalf("%s refused by %s: %d %s", what, s.URL, st, body)
			}
		}
	}
	kid := func(token string) string {
		var h map[string]any
		decodeSegment(t, token, 0, &h)
		return h["kid"].(string)
	}

	before := r.user("jo@example.test")
	if kid(before.Access) != oldKey.kid {
		t.Fatalf("kid %s is not the RFC 7638 thumbprint %s of the signing key", kid(before.Access), oldKey.kid)
	}
	accepted("a token of the old key", before.Access)
	if st := bankV.Status(); !slices.Equal(st.KeyIDs, []string{oldKey.kid}) {
		t.Fatalf("keys before rotation: %v", st.KeyIDs)
	}

	r.restart(writeKeys(t, newKey, oldKey))
	after := r.login("jo@example.test", "user password 1")
	if kid(after.Access) != newKey.kid {
		t.Fatalf("after rotation the token's kid is %s, want the new key's %s", kid(after.Access), newKey.kid)
	}
	accepted("a token of the new key, right after the rotation", after.Access)
	accepted("a token of the old key, kept in the file", before.Access)
	for _, v := range []*Verifier{bankV, retireV} {
		if st := v.Status(); !slices.Equal(st.KeyIDs, []string{newKey.kid, oldKey.kid}) {
			t.Fatalf("keys after rotation: %v, want new then old", st.KeyIDs)
		}
	}

	r.restart(writeKeys(t, newKey))
	for _, s := range both {
		d := eventually(t, 5*time.Second, "a token of the removed key refused by "+s.URL, func() bool {
			st, _, _ := get(t, s.URL+"/whoami", before.Access)
			return st == 401
		})
		t.Logf("removed key dropped by %s after %s", s.URL, d.Round(time.Millisecond))
	}
	_, hdr, _ := get(t, bank.URL+"/whoami", before.Access)
	if !strings.Contains(hdr, "is not in the issuer's key set") {
		t.Errorf("WWW-Authenticate for the removed key: %q", hdr)
	}
	accepted("a token of the new key, after the old one was removed", after.Access)
	for _, v := range []*Verifier{bankV, retireV} {
		if st := v.Status(); !slices.Equal(st.KeyIDs, []string{newKey.kid}) {
			t.Fatalf("keys after removal: %v", st.KeyIDs)
		}
	}
	// The feed kept working across both restarts.
	r.must(204, "POST", "/logout", after.Access, nil, nil)
	refusedByBoth(t, "a logout after the restarts", after.Access, bank, retire)
}

// TestFeedOutage cuts the way to Rotor (a proxy in between) for longer than
// StaleAfter: the default verifier fails closed (ErrStale, 503, Status.Stale,
// one log line), a FailOpen one keeps accepting but still refuses what it
// knew, and both keep the last good key set while the JWKS is unreachable.
// A logout during the outage is refused by both once the way is back, and
// each logs the recovery once.
func TestFeedOutage(t *testing.T) {
	r := startRotor(t, rotorOpts{})
	p := newProxy(t, r.base)
	ts := r.serviceSource()
	via := func(failOpen bool) func(*Config) {
		return func(c *Config) {
			c.JWKSURL = p.URL + "/.well-known/jwks.json"
			c.RevocationsURL = p.URL + "/revocations"
			c.PollInterval, c.StaleAfter = 250*time.Millisecond, 1500*time.Millisecond
			c.FailOpen = failOpen
		}
	}
	closed, closedLog := newVerifier(t, r, ts, via(false))
	open, openLog := newVerifier(t, r, ts, via(true))
	srv := resourceServer(t, "bank", closed)
	gone, stays := r.user("kay@example.test"), r.user("lee@example.test")
	r.must(204, "POST", "/logout", gone.Access, nil, nil)
	for _, v := range []*Verifier{closed, open} {
		eventually(t, 3*time.Second, "the logout before the outage", func() bool {
			_, err := v.Verify(context.Background(), gone.Access)
			return errors.Is(err, ErrRevoked)
		})
	}
	keysBefore := closed.Status().KeyIDs

	p.setCut(true)
	cutAt := time.Now()
	eventually(t, 4*time.Second, "fail closed", func() bool {
		_, err := closed.Verify(context.Background(), stays.Access)
		return errorsIs(err, ErrStale, ErrUnavailable)
	})
	t.Logf("failing closed %s after the cut (StaleAfter 1.5 s)", time.Since(cutAt).Round(time.Millisecond))
	_, err := closed.Verify(context.Background(), stays.Access)
	if isRefused(err) || !strings.Contains(err.Error(), "revocations are stale: the last successful poll of "+p.URL+"/revocations began") {
		t.Errorf("the stale error: %v", err)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/whoami", nil)
	req.Header.Set("Authorization", "Bearer "+stays.Access)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || resp.Header.Get("WWW-Authenticate") != "" {
		t.Errorf("Middleware while stale: %d %v", resp.StatusCode, resp.Header)
	}
	if !strings.Contains(string(body), `"error":"temporarily_unavailable"`) || strings.Contains(string(body), p.URL) {
		t.Errorf("the 503 body names the cause or the feed's URL: %s", body)
	}
	st := closed.Status()
	if !st.Stale || st.FeedError == "" || st.FailOpen || !st.Ready {
		t.Errorf("Status while stale: %+v", st)
	}
	// Fail open: accepted, but what it knew is still refused.
	eventually(t, 4*time.Second, "FailOpen stale too", func() bool { return open.Status().Stale })
	if _, err := open.Verify(context.Background(), stays.Access); err != nil {
		t.Errorf("FailOpen while stale: %v", err)
	}
	if _, err := open.Verify(context.Background(), gone.Access); !errors.Is(err, ErrRevoked) {
		t.Errorf("FailOpen forgot a revocation: %v", err)
	}
	if st := open.Status(); !st.Stale || !st.FailOpen {
		t.Errorf("FailOpen Status while stale: %+v", st)
	}
	// Keys: a refresh fails, the last good set stays.
	c, err := open.keys.refresh(false)
	if err != nil {
		t.Fatal(err)
	}
	<-c.done
	if c.err == nil {
		t.Fatal("a JWKS fetch through the cut proxy succeeded")
	}
	if st := open.Status(); !slices.Equal(st.KeyIDs, keysBefore) || st.KeysError == "" {
		t.Errorf("keys after a failed refresh: %+v", st)
	}

	r.must(204, "POST", "/logout", stays.Access, nil, nil) // while the resource servers cannot see the feed
	time.Sleep(500 * time.Millisecond)
	p.setCut(false)
	restoredAt := time.Now()
	for _, v := range []*Verifier{closed, open} {
		eventually(t, 5*time.Second, "the logout made during the outage", func() bool {
			_, err := v.Verify(context.Background(), stays.Access)
			return errors.Is(err, ErrRevoked)
		})
		if st := v.Status(); st.Stale || st.FeedError != "" {
			t.Errorf("Status after recovery: %+v", st)
		}
	}
	t.Logf("recovered %s after the way back", time.Since(restoredAt).Round(time.Millisecond))
	fresh := r.user("max@example.test")
	if _, err := closed.Verify(context.Background(), fresh.Access); err != nil {
		t.Errorf("after recovery: %v", err)
	}
	time.Sleep(300 * time.Millisecond) // the watcher's next look
	for name, log := range map[string]*lockedBuffer{"closed": closedLog, "open": openLog} {
		l := log.String()
		if n := strings.Count(l, "revocations are stale"); n != 1 {
			t.Errorf("%s: %d stale transitions logged, want 1:\n%s", name, n, l)
		}
		if n := strings.Count(l, "revocations are current again"); n != 1 {
			t.Errorf("%s: %d recoveries logged, want 1:\n%s", name, n, l)
		}
	}
	if !strings.Contains(closedLog.String(), "failing closed") || !strings.Contains(openLog.String(), "FAILING OPEN") {
		t.Errorf("the logs do not say which way they fail")
	}
}

// TestLargeFeed creates thousands of revocations (access tokens revoked one
// by one at /revoke, and the sessions logged out) while one verifier polls,
// then starts another that pages through them all with limit 50. Both refuse
// every revoked token; the second's requests all carry limit=50 and follow
// has_more; full resynchronisations repeat entries without growing the
// denylist.
func TestLargeFeed(t *testing.T) {
	for _, store := range []string{"memory", "postgres"} {
		t.Run(store, func(t *testing.T) {
			o := rotorOpts{}
			if store == "postgres" {
				o.dbURL, o.keys = scratchDB(t), writeKeys(t, newKey(t))
			}
			r := startRotor(t, o)
			p := newProxy(t, r.base)
			ts := r.serviceSource()
			early, _ := newVerifier(t, r, ts, func(c *Config) {
				c.PageLimit = 100
				c.FullResyncInterval = time.Second
				c.StaleAfter = 30 * time.Second
			})
			const workers, perWorker = 6, 500
			var mu sync.Mutex
			var revoked []string
			var wg sync.WaitGroup
			errs := make(chan error, workers)
			for w := range workers {
				tk := r.user(fmt.Sprintf("bulk%d@example.test", w))
				wg.Add(1)
				go func() {
					defer wg.Done()
					var mine []string
					for range perWorker {
						var next tokens
						if st, err := call("POST", r.base+"/refresh", "", map[string]string{"refresh_token": tk.Refresh}, &next); err != nil || st != 200 {
							errs <- fmt.Errorf("refresh: %d %v", st, err)
							return
						}
						if st, err := call("POST", r.base+"/revoke", "", map[string]string{"token": tk.Access}, nil); err != nil || st != 200 {
							errs <- fmt.Errorf("revoke: %d %v", st, err)
							return
						}
						mine = append(mine, tk.Access)
						tk = next
					}
					if st, err := call("POST", r.base+"/logout", tk.Access, nil, nil); err != nil || st != 204 {
						errs <- fmt.Errorf("logout: %d %v", st, err)
						return
					}
					mu.Lock()
					revoked = append(revoked, append(mine, tk.Access)...)
					mu.Unlock()
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			// Every access token revoked at /revoke has a jti entry; the last
			// one of each session is refused by the session's entry (Rotor
			// writes no jti entry for a token its session already denies).
			want := workers * perWorker
			late, _ := newVerifier(t, r, ts, func(c *Config) {
				c.RevocationsURL = p.URL + "/revocations"
				c.PageLimit = 50
				c.StaleAfter = 30 * time.Second
			})
			for name, v := range map[string]*Verifier{"polling all along": early, "paging from 0": late} {
				eventually(t, 20*time.Second, name+": every revocation", func() bool {
					st := v.Status()
					return st.DeniedTokens >= want && st.DeniedSessions >= workers
				})
				for _, tok := range revoked {
					if _, err := v.Verify(context.Background(), tok); !errors.Is(err, ErrRevoked) {
						t.Fatalf("%s: a revoked token: %v", name, err)
					}
				}
			}
			qs := p.feedQueries()
			paging := regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+$`)
			pages := 0
			for _, q := range qs {
				if q.Get("limit") != "50" {
					t.Fatalf("a feed request without limit=50: %v", q)
				}
				if paging.MatchString(q.Get("since")) {
					pages++
				}
			}
			if min := want/50 - 1; pages < min {
				t.Errorf("%d requests with a paging cursor, want at least %d for %d entries", pages, min, want)
			}
			t.Logf("%d entries: %d feed requests by the late verifier, %d of them continuing a page sequence", want, len(qs), pages)
			// Full resyncs of the early verifier read everything again.
			st := early.Status()
			time.Sleep(2500 * time.Millisecond)
			if again := early.Status(); again.DeniedTokens != st.DeniedTokens || again.DeniedSessions != st.DeniedSessions {
				t.Errorf("repeated entries changed the denylist: %+v then %+v", st, again)
			}
		})
	}
}

// TestIntrospect: Introspect asks the issuer, so it refuses a logged-out
// token at once even when the feed would only tell later; answers are
// reused for IntrospectionTTL; a bad token never reaches the issuer; an
// unreachable issuer is ErrUnavailable.
func TestIntrospect(t *testing.T) {
	r := startRotor(t, rotorOpts{})
	p := newProxy(t, r.base)
	v, _ := newVerifier(t, r, r.serviceSource(), func(c *Config) {
		c.PollInterval, c.StaleAfter = 30*time.Second, time.Minute // the feed lags on purpose
		c.IntrospectionURL = p.URL + "/introspect"
		c.IntrospectionTTL = 300 * time.Millisecond
	})
	tk := r.user("ned@example.test")
	ctx := context.Background()
	for range 3 {
		if c, err := v.Introspect(ctx, tk.Access); err != nil || c.SessionID != tk.SessionID {
			t.Fatalf("an active token: %+v %v", c, err)
		}
	}
	if n := p.count("/introspect"); n != 1 {
		t.Errorf("3 introspections within the TTL asked the issuer %d times", n)
	}
	if _, err := v.Introspect(ctx, "x.y.z"); !isRefused(err) || p.count("/introspect") != 1 {
		t.Errorf("garbage: %v, %d issuer calls", err, p.count("/introspect"))
	}
	r.must(204, "POST", "/logout", tk.Access, nil, nil)
	time.Sleep(350 * time.Millisecond)
	if _, err := v.Verify(ctx, tk.Access); err != nil {
		t.Logf("the feed already knew (poll 30 s): %v", err)
	}
	if _, err := v.Introspect(ctx, tk.Access); !errorsIs(err, ErrRevoked, ErrInvalidToken) || !strings.Contains(err.Error(), "not active") {
		t.Errorf("a logged-out token: %v", err)
	}
	other := r.user("ola@example.test")
	p.setCut(true)
	if _, err := v.Introspect(ctx, other.Access); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "introspection") {
		t.Errorf("issuer unreachable: %v", err)
	}
}

// TestWaitReady: a verifier started before Rotor says what it waits for
// when its context ends, and becomes ready once Rotor is up, without a
// restart.
func TestWaitReady(t *testing.T) {
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	log, buf := testLogger()
	src := &loginSource{user: svcEmail, password: svcPassword}
	src.cfg.Endpoint.TokenURL, src.cfg.Endpoint.AuthStyle = base+"/token", oauth2.AuthStyleInParams
	v, err := New(context.Background(), Config{Issuer: base, Audience: "rotor", TokenSource: src, Logger: log, AllowMissingClientID: true})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	err = v.WaitReady(ctx)
	cancel()
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) ||
		!strings.Contains(err.Error(), "no keys loaded yet") || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("WaitReady before Rotor: %v", err)
	}
	t.Logf("before Rotor: %v", err)
	if st := v.Status(); st.Ready || !st.Stale {
		t.Errorf("Status before Rotor: %+v", st)
	}
	r := startRotor(t, rotorOpts{port: port})
	r.serviceSource() // creates the feed's user
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := v.WaitReady(ctx); err != nil {
		t.Fatalf("after Rotor started: %v\n%s", err, buf.String())
	}
	if st := v.Status(); !st.Ready || st.Stale || len(st.KeyIDs) != 1 {
		t.Errorf("Status when ready: %+v", st)
	}
	if _, err := v.Verify(context.Background(), r.user("pia@example.test").Access); err != nil {
		t.Error(err)
	}
}

// TestCloseStopsBackgroundWork: Close returns promptly even while requests
// hang, and ending New's context stops the goroutines too; afterwards
// Verify is ErrUnavailable.
func TestCloseStopsBackgroundWork(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	}()
	base := "http://" + ln.Addr().String()
	cfg := func() Config {
		log, _ := testLogger()
		return Config{Issuer: base, Audience: "rotor", TokenSource: &loginSource{}, Logger: log}
	}
	v, err := New(context.Background(), cfg())
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the first fetch is hanging now
	start := time.Now()
	v.Close()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %s", d)
	}
	if _, err := v.Verify(context.Background(), "a.b.c"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Verify after Close: %v", err)
	}
	v.Close() // idempotent

	ctx, cancel := context.WithCancel(context.Background())
	v2, err := New(ctx, cfg())
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	cancel()
	stopped := make(chan struct{})
	go func() { v2.wg.Wait(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(2 * time.Second):
		t.Error("goroutines still running 2 s after New's context ended")
	}
	if err := v2.WaitReady(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Errorf("WaitReady after the context ended: %v", err)
	}
}

// TestVerifiedCache: a token verified once is served from the cache, yet
// it still expires (clock moved past exp + leeway), callers get copies, and
// the denylist still refuses it. (TestKeyRotation shows a cached token of a
// removed key refused.)
func TestVerifiedCache(t *testing.T) {
	r := startRotor(t, rotorOpts{})
	var offset atomic.Int64
	v, _ := newVerifier(t, r, r.serviceSource(), func(c *Config) {
		c.now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
		c.StaleAfter = time.Hour
	})
	tk := r.user("uma@example.test", "customer")
	ctx := context.Background()
	c1, err := v.Verify(ctx, tk.Access)
	if err != nil {
		t.Fatal(err)
	}
	c1.Roles[0] = "admin" // a caller scribbling on its claims
	if _, ok := v.cachedClaims(tk.Access); !ok {
		t.Fatal("a verified token is not cached")
	}
	c2, err := v.Verify(ctx, tk.Access)
	if err != nil || c2.Roles[0] != "customer" || c2 == c1 {
		t.Fatalf("a cache hit: %+v %v", c2, err)
	}
	offset.Store(int64(15*time.Minute + 20*time.Second)) // inside exp + 30 s leeway
	if _, err := v.Verify(ctx, tk.Access); err != nil {
		t.Fatalf("within the leeway: %v", err)
	}
	offset.Store(int64(15*time.Minute + 31*time.Second))
	if _, err := v.Verify(ctx, tk.Access); !isRefused(err) || !strings.Contains(err.Error(), "token expired at") {
		t.Fatalf("a cached token past exp + leeway: %v", err)
	}
	offset.Store(0)
	other := r.user("val@example.test")
	if _, err := v.Verify(ctx, other.Access); err != nil {
		t.Fatal(err)
	}
	r.must(204, "POST", "/logout", other.Access, nil, nil)
	eventually(t, 4*time.Second, "a cached token after logout", func() bool {
		_, err := v.Verify(ctx, other.Access)
		return errors.Is(err, ErrRevoked)
	})
}

// TestInMemoryRotorRestart: an in-memory Rotor that restarts numbers its
// revocations from 0 again, so the cursor a verifier holds skips the new
// instance's first entries; the periodic full resync still brings them.
func TestInMemoryRotorRestart(t *testing.T) {
	keys := writeKeys(t, newKey(t)) // tokens stay verifiable across the restart
	r := startRotor(t, rotorOpts{keys: keys})
	v, _ := newVerifier(t, r, r.serviceSource(), func(c *Config) { c.FullResyncInterval = 2 * time.Second; c.StaleAfter = 10 * time.Second })
	for i := range 3 {
		tk := r.user(fmt.Sprintf("old%d@example.test", i))
		r.must(204, "POST", "/logout", tk.Access, nil, nil)
	}
	eventually(t, 4*time.Second, "three logouts", func() bool { return v.Status().DeniedSessions == 3 })
	r.restart(keys)
	tk := r.user("new@example.test")
	if _, err := v.Verify(context.Background(), tk.Access); err != nil {
		t.Fatal(err)
	}
	r.must(204, "POST", "/logout", tk.Access, nil, nil)
	d := eventually(t, 6*time.Second, "a logout at the restarted Rotor", func() bool {
		_, err := v.Verify(context.Background(), tk.Access)
		return errors.Is(err, ErrRevoked)
	})
	t.Logf("refused %s after the logout (full resync every 2 s; cursor %q)", d.Round(time.Millisecond), v.Status().Cursor)
}
