package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rotorauth/rotor/internal/api"
	"github.com/rotorauth/rotor/internal/store/memory"
	"github.com/rotorauth/rotor/internal/store/storetest"
	"github.com/rotorauth/rotor/internal/tokens"
)

// Rate-limit tests drive the handler in process: every request comes from
// the proxy 192.0.2.1 (httptest's peer address), which is trusted, so
// X-Forwarded-For names the client.

const rlProxy = "192.0.2.1"

type rlServer struct {
	t   *testing.T
	h   http.Handler
	svc *tokens.Service
}

func newRLServer(t *testing.T, opts api.Options) *rlServer {
	return newRLServerOn(t, memory.New(), opts)
}

func newRLServerOn(t *testing.T, store tokens.Store, opts api.Options) *rlServer {
	t.Helper()
	opts.TrustedProxies = append(opts.TrustedProxies, netip.MustParsePrefix(rlProxy+"/32"))
	svc := newService(t, store)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	return &rlServer{t: t, h: api.NewHandler(svc, log, opts), svc: svc}
}

// do sends body (JSON) to path from client address from ("" is the proxy
// itself).
func (s *rlServer) do(path, body, from string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	if from != "" {
		r.Header.Set("X-Forwarded-For", from)
	}
	w := httptest.NewRecorder()
	s.h.ServeHTTP(w, r)
	return w
}

func (s *rlServer) login(email, password, from string) *httptest.ResponseRecorder {
	return s.do("/token", mustJSON(map[string]string{"username": email, "password": password}), from)
}

func (s *rlServer) user(password string) string {
	s.t.Helper()
	email := storetest.Email()
	if _, err := s.svc.Signup(context.Background(), email, password, nil); err != nil {
		s.t.Fatal(err)
	}
	return email
}

func errCode(w *httptest.ResponseRecorder) string {
	var m struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(w.Body.Bytes(), &m)
	return m.Error
}

// want429 asserts a 429 too_many_requests with a sane Retry-After.
func want429(t *testing.T, w *httptest.ResponseRecorder, what string) {
	t.Helper()
	if w.Code != http.StatusTooManyRequests || errCode(w) != "too_many_requests" {
		t.Fatalf("%s: %d %s, want 429 too_many_requests", what, w.Code, w.Body)
	}
	if n, err := strconv.Atoi(w.Header().Get("Retry-After")); err != nil || n < 1 || n > 3600 {
		t.Fatalf("%s: Retry-After = %q", what, w.Header().Get("Retry-After"))
	}
}

func wantStatus(t *testing.T, w *httptest.ResponseRecorder, status int, what string) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("%s: %d %s, want %d", what, w.Code, w.Body, status)
	}
}

const (
	goodPW = "user password 1"
	badPW  = "wrong password!"
)

// Defect 1: /revoke is limited per client, at six times LOGIN_RATE_LIMIT a
// minute, with 429 and Retry-After; another client is not affected.
func TestRevokeIsRateLimitedPerClient(t *testing.T) {
	s := newRLServer(t, api.Options{LoginRateLimit: 1}) // 6 a minute
	body := `{"token":"rt_` + strings.Repeat("A", 64) + `"}`
	for i := range 6 {
		wantStatus(t, s.do("/revoke", body, "198.51.100.1"), 200, fmt.Sprintf("revoke %d", i+1))
	}
	want429(t, s.do("/revoke", body, "198.51.100.1"), "7th revoke")
	// Form bodies too, and the same limit for the same client.
	r := httptest.NewRequest(http.MethodPost, "/revoke", strings.NewReader("token=x"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("X-Forwarded-For", "198.51.100.1")
	w := httptest.NewRecorder()
	s.h.ServeHTTP(w, r)
	want429(t, w, "form revoke")
	wantStatus(t, s.do("/revoke", body, "198.51.100.2"), 200, "revoke from another client")
	// The address prefix is the client: another address of one IPv6 /64 is
	// the same client.
	for i := range 6 {
		wantStatus(t, s.do("/revoke", body, fmt.Sprintf("2001:db8:5::%x", i+1)), 200, "revoke v6")
	}
	want429(t, s.do("/revoke", body, "2001:db8:5::ffff"), "revoke from the same /64")
}

// Defect 2: 52 accounts tried from 52 addresses of one IPv6 /64 (a spray
// from one network) meet the per-prefix failure cap (2L a minute), and
// another /64 is not affected.
func TestLoginFailuresAreKeyedByIPv6Prefix(t *testing.T) {
	const l = 3
	s := newRLServer(t, api.Options{LoginRateLimit: l})
	first429 := 0
	for i := range 52 {
		w := s.login(fmt.Sprintf("spray%d@example.test", i), badPW, fmt.Sprintf("2001:db8:1:2:%x::%x", i, i+1))
		if w.Code == http.StatusTooManyRequests {
			if first429 == 0 {
				first429 = i + 1
				want429(t, w, "spray")
			}
			continue
		}
		wantStatus(t, w, 400, "spray guess")
		if first429 != 0 {
			t.Fatalf("guess %d after a 429 answered %d", i+1, w.Code)
		}
	}
	if first429 == 0 {
		t.Fatal("52 guesses from one /64 and no 429")
	}
	if first429 != 2*l+1 {
		t.Fatalf("first 429 at guess %d, want %d (2 x LOGIN_RATE_LIMIT failures per /64)", first429, 2*l+1)
	}
	wantStatus(t, s.login("other@example.test", badPW, "2001:db8:1:3::1"), 400, "another /64")
}

// Defect 2: IPv6 zone ids do not make new keys, and IPv4-mapped IPv6 is the
// IPv4 address.
func TestLoginKeysIgnoreZonesAndMapping(t *testing.T) {
	const l = 2
	s := newRLServer(t, api.Options{LoginRateLimit: l})
	for i := range 2 * l {
		w := s.login(fmt.Sprintf("zone%d@example.test", i), badPW, fmt.Sprintf("fe80::1%%z%d", i))
		wantStatus(t, w, 400, "zoned guess")
	}
	want429(t, s.login("zone-last@example.test", badPW, "fe80::1%another"), "zone ids are one client")

	for i := range 2 * l {
		from := "198.51.100.7"
		if i%2 == 1 {
			from = "::ffff:198.51.100.7"
		}
		wantStatus(t, s.login(fmt.Sprintf("mapped%d@example.test", i), badPW, from), 400, "guess")
	}
	want429(t, s.login("mapped-last@example.test", badPW, "::ffff:c633:6407"), "IPv4-mapped is IPv4")
	want429(t, s.login("mapped-last@example.test", badPW, "198.51.100.7"), "IPv4")
}

// Defect 4: successes are not counted: a user logging in again and again
// from one address is never refused.
func TestLoginSuccessesAreNotCounted(t *testing.T) {
	s := newRLServer(t, api.Options{LoginRateLimit: 2})
	email := s.user(goodPW)
	for i := range 12 {
		wantStatus(t, s.login(email, goodPW, "198.51.100.30"), 200, fmt.Sprintf("login %d", i+1))
	}
}

// Defect 4: L failures for one account from one prefix: that prefix is
// refused for that account, even with the right password; the account's
// owner elsewhere is not.
func TestLoginFailuresPerAccountAndPrefix(t *testing.T) {
	const l = 3
	s := newRLServer(t, api.Options{LoginRateLimit: l})
	email := s.user(goodPW)
	for range l {
		wantStatus(t, s.login(email, badPW, "203.0.113.5"), 400, "guess")
	}
	want429(t, s.login(email, goodPW, "203.0.113.5"), "the failing address")
	// A spoofed X-Forwarded-For from an untrusted peer changes nothing: the
	// proxy is trusted here, so spoof through a second, untrusted hop.
	want429(t, s.login(email, goodPW, "198.51.100.99, 203.0.113.5"), "still the failing address")
	wantStatus(t, s.login(email, goodPW, "198.51.100.40"), 200, "the owner from a clean address")
}

// Defect 4: failures from anywhere never refuse the right password from the
// victim's own clean address. Past the account's global failure budget (2L)
// every attacker address gets one guess per 10 minutes on it, so guesses
// stay bounded by addresses, not by time.
func TestLoginAttackDoesNotLockOutVictim(t *testing.T) {
	const l = 10
	s := newRLServer(t, api.Options{LoginRateLimit: l})
	victim := s.user(goodPW)
	// An attacker spreads wrong passwords over many addresses: L a minute
	// is enough to have locked the account before.
	var attack []*httptest.ResponseRecorder
	for i := range 4 * l {
		attack = append(attack, s.login(victim, badPW, fmt.Sprintf("203.0.%d.%d", i/200, i%200+1)))
	}
	wantStatus(t, s.login(victim, goodPW, "198.51.100.20"), 200, "victim from own address")
	// Each attacking address was a clean address: each guess was checked.
	for i, w := range attack {
		wantStatus(t, w, 400, fmt.Sprintf("attack %d", i+1))
	}
	// Past 2L failures the account is protected: an address that failed
	// against it is refused, whatever the password, before any check.
	want429(t, s.login(victim, badPW, "203.0.0.1"), "an attacking address again")
	// A new address gets one guess, then is refused for the account.
	wantStatus(t, s.login(victim, badPW, "203.0.113.200"), 400, "new attacking address")
	want429(t, s.login(victim, badPW, "203.0.113.200"), "its second guess")
	// And still the victim logs in, from its address or a new one.
	wantStatus(t, s.login(victim, goodPW, "198.51.100.20"), 200, "victim again")
	wantStatus(t, s.login(victim, goodPW, "2001:db8:42::1"), 200, "victim elsewhere")
	// Other accounts from the attacking addresses are untouched (below the
	// per-prefix cap).
	other := s.user(goodPW)
	wantStatus(t, s.login(other, goodPW, "203.0.0.2"), 200, "another account")
}

// Defect 5: bad refreshes from a shared address never refuse a valid
// refresh token from it; its failures get 429 once over budget.
func TestRefreshFailuresNeverRefuseValidTokens(t *testing.T) {
	const l = 10 // 60 failed refreshes a minute
	s := newRLServer(t, api.Options{LoginRateLimit: l})
	email := s.user(goodPW)
	const shared = "198.51.100.50"
	var pair struct {
		RefreshToken string `json:"refresh_token"`
	}
	w := s.login(email, goodPW, shared)
	wantStatus(t, w, 200, "login")
	_ = json.Unmarshal(w.Body.Bytes(), &pair)
	bogus := `{"refresh_token":"rt_` + strings.Repeat("B", 64) + `"}`
	for i := range 6 * l {
		wantStatus(t, s.do("/refresh", bogus, shared), 400, fmt.Sprintf("bad refresh %d", i+1))
	}
	want429(t, s.do("/refresh", bogus, shared), "bad refresh 61")
	for i := range 3 {
		w := s.do("/refresh", mustJSON(map[string]string{"refresh_token": pair.RefreshToken}), shared)
		wantStatus(t, w, 200, fmt.Sprintf("valid refresh %d from the throttled address", i+1))
		_ = json.Unmarshal(w.Body.Bytes(), &pair)
	}
	// The RFC 6749 grant at /token is the same.
	wantStatus(t, s.do("/token", mustJSON(map[string]string{"grant_type": "refresh_token", "refresh_token": pair.RefreshToken}), shared),
		200, "refresh grant at /token")
	want429(t, s.do("/refresh", bogus, shared), "bad refresh after")
	wantStatus(t, s.do("/refresh", bogus, "198.51.100.51"), 400, "bad refresh from another address")
}

// slowStore takes 20 ms to answer a rotation, as a database under load
// does: the window in which a check-then-charge limit lets concurrent
// failures through.
type slowStore struct{ tokens.Store }

func (s slowStore) Refresh(ctx context.Context, ref tokens.TokenRef, decide func(tokens.RefreshState) (tokens.RefreshOutcome, error)) ([]tokens.Revocation, error) {
	time.Sleep(20 * time.Millisecond)
	return s.Store.Refresh(ctx, ref, decide)
}

// Defect 5: the failure charge is one atomic take, so 2,000 concurrent
// failures against a budget of 60 get at most 60 answers other than 429
// (plus one per second the test ran, the budget's refill).
func TestRefreshFailureLimitIsAtomic(t *testing.T) {
	s := newRLServerOn(t, slowStore{memory.New()}, api.Options{LoginRateLimit: 10}) // 60 a minute: one a second
	bogus := `{"refresh_token":"rt_` + strings.Repeat("C", 64) + `"}`
	var passed, limited atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	began := time.Now()
	for range 2000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			switch w := s.do("/refresh", bogus, "198.51.100.60"); w.Code {
			case http.StatusTooManyRequests:
				limited.Add(1)
			case http.StatusBadRequest:
				passed.Add(1)
			default:
				t.Errorf("status %d %s", w.Code, w.Body)
			}
		}()
	}
	close(start)
	wg.Wait()
	refill := int64(time.Since(began)/time.Second) + 1
	t.Logf("2,000 concurrent failures: %d answered 400, %d 429 (in %v)", passed.Load(), limited.Load(), time.Since(began).Round(time.Millisecond))
	if passed.Load() > 60+refill {
		t.Fatalf("%d failures got through a budget of 60 (+%d refilled)", passed.Load(), refill)
	}
	if passed.Load() < 60 {
		t.Fatalf("only %d of a budget of 60 got through", passed.Load())
	}
}

// Defect 6: request ids over HTTP have the documented format and are not a
// counter.
func TestRequestIDsOverHTTP(t *testing.T) {
	s := newRLServer(t, api.Options{})
	seen := map[string]bool{}
	var prev uint64
	near := 0
	for i := range 2000 {
		r := httptest.NewRequest(http.MethodGet, "/healthz", nil)
		w := httptest.NewRecorder()
		s.h.ServeHTTP(w, r)
		id := w.Header().Get("X-Request-Id")
		v, err := strconv.ParseUint(id, 16, 64)
		if len(id) != 16 || err != nil || strings.ToLower(id) != id {
			t.Fatalf("X-Request-Id %q does not match ^[0-9a-f]{16}$", id)
		}
		if seen[id] {
			t.Fatalf("X-Request-Id %q repeated", id)
		}
		seen[id] = true
		if i > 0 && (v-prev < 1<<32 || prev-v < 1<<32) {
			near++
		}
		prev = v
	}
	if near > 2 {
		t.Fatalf("%d of 2000 consecutive request ids are within 2^32 of each other: a counter", near)
	}
}
