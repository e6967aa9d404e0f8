package api

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rotorauth/rotor/internal/store/memory"
	"github.com/rotorauth/rotor/internal/store/storetest"
	"github.com/rotorauth/rotor/internal/tokens"
)

// heapInUse is the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

const mib = 1 << 20

// Defect 3: a flood of 1,000,000 unique keys, each charged once (so each
// keeps debt), grows the live heap by a bounded amount (a limiter's table
// is 1 MiB at most) and needs no sweep.
func TestLimiterMemoryIsBoundedUnderUniqueKeys(t *testing.T) {
	const keys = 1_000_000
	before := heapInUse()
	l := newLimiter(10)
	now := time.Now()
	var key []byte
	for i := range keys {
		key = strconv.AppendInt(append(key[:0], "acct:flood-"...), int64(i), 10)
		if ok, _ := l.allow(string(key), now); !ok {
			t.Fatalf("key %d refused on its first event", i)
		}
	}
	after := heapInUse()
	runtime.KeepAlive(l)
	growth := int64(after) - int64(before)
	t.Logf("%d unique keys: live heap %.1f MiB -> %.1f MiB (growth %.2f MiB)", keys,
		float64(before)/mib, float64(after)/mib, float64(growth)/mib)
	if growth > 64*mib {
		t.Fatalf("heap grew by %.1f MiB for %d unique keys; the limiter is not bounded", float64(growth)/mib, keys)
	}
}

// Defect 3, every limit of a server at once: failed logins, each from a new
// address with a new email, plus failed refreshes and revokes from new
// addresses; half as many again as a table holds (the test is slow under
// -race, so not a million).
func TestServerLimitsMemoryIsBounded(t *testing.T) {
	const n = 100_000
	before := heapInUse()
	s := bareServer(10)
	r := httptest.NewRequest(http.MethodPost, "/token", nil)
	var addr, email []byte
	for i := range n {
		addr = fmt.Appendf(addr[:0], "10.%d.%d.%d:1", byte(i>>16), byte(i>>8), byte(i))
		if i%2 == 1 {
			addr = fmt.Appendf(addr[:0], "[2001:db8:%x:%x::1]:1", uint16(i>>16), uint16(i))
		}
		r.RemoteAddr = string(addr)
		email = strconv.AppendInt(append(email[:0], "flood"...), int64(i), 10)
		a, err := s.startLogin(r, string(append(email, "@example.test"...)))
		if err != nil {
			t.Fatalf("login %d refused: %v", i, err)
		}
		a.done(true)
		if i%4 == 0 {
			_ = s.refreshFailed(r, nil)
			s.revokeLimit.allow(s.subject(r).key("revoke"), s.now())
		}
	}
	after := heapInUse()
	runtime.KeepAlive(s)
	growth := int64(after) - int64(before)
	t.Logf("%d failed logins from unique addresses and emails: live heap %.1f MiB -> %.1f MiB (growth %.2f MiB; bound %d tables x %d slots x 16 B = %d MiB)",
		n, float64(before)/mib, float64(after)/mib, float64(growth)/mib, 5, tableSlots, 5*tableSlots*16/mib)
	if growth > 64*mib {
		t.Fatalf("heap grew by %.1f MiB", float64(growth)/mib)
	}
	if s.loginLimits.pair.tab.evictions.Load() == 0 {
		t.Fatal("no eviction: the flood did not fill the table")
	}
}

// bareServer is a server with rate limits and no service, for limiter tests.
func bareServer(l int) *server {
	now := time.Now()
	return &server{
		metrics: newMetrics(nil), loginLimits: newLoginLimits(l),
		refreshLimit: newLimiter(6 * l), revokeLimit: newLimiter(6 * l),
		v6bits: 64, now: func() time.Time { return now },
	}
}

// Eviction is no way around a limit: a key charged to its limit survives a
// flood of one-off keys that fills the table several times over.
func TestEvictionSparesKeysUnderAttack(t *testing.T) {
	l := newLimiter(10)
	now := time.Now()
	for range 10 {
		if ok, _ := l.allow("victim", now); !ok {
			t.Fatal("refused within the burst")
		}
	}
	for i := range 5 * tableSlots {
		l.allow("one-off-"+strconv.Itoa(i), now)
	}
	if l.tab.evictions.Load() == 0 {
		t.Fatal("the flood evicted nothing")
	}
	if ok, wait := l.allow("victim", now); ok || wait <= 0 {
		t.Fatalf("the key under attack was reset by the flood (allowed %v, wait %v)", ok, wait)
	}
}

// sameSet returns n keys that share a table set.
func sameSet(tab *table, n int) []string {
	bySet := map[uint64][]string{}
	for i := 0; ; i++ {
		k := "k" + strconv.Itoa(i)
		sh, h, _ := tab.lock(k, time.Time{})
		sh.mu.Unlock()
		set := h%tableShards<<32 | (h/tableShards)%shardSets
		bySet[set] = append(bySet[set], k)
		if len(bySet[set]) == n {
			return bySet[set]
		}
	}
}

// The eviction order inside a set: full buckets first (nothing lost), then
// the bucket with the least debt.
func TestEvictionOrder(t *testing.T) {
	l := newLimiter(10) // 6 s an event, 10 in a burst
	now := time.Now()
	keys := sameSet(l.tab, setWays+2)
	for range 10 {
		l.allow(keys[0], now) // the key under attack: 60 s of debt
	}
	for _, k := range keys[1:setWays] {
		l.allow(k, now)
		l.allow(k, now) // 12 s of debt each
	}
	l.allow(keys[setWays], now.Add(time.Second)) // the set is full: evicts one of keys[1:8]
	if l.tab.evictions.Load() != 1 {
		t.Fatalf("evictions = %d, want 1", l.tab.evictions.Load())
	}
	if d := debtOf(l.tab, keys[0], now.Add(time.Second)); d != 59*time.Second {
		t.Fatalf("the most indebted key was evicted (debt %v)", d)
	}
	// Later every bucket but keys[0] is full again: a new key takes one of
	// them, with no eviction.
	l.allow(keys[setWays+1], now.Add(20*time.Second))
	if l.tab.evictions.Load() != 1 {
		t.Fatalf("a full bucket counted as an eviction")
	}
	if d := debtOf(l.tab, keys[0], now.Add(20*time.Second)); d != 40*time.Second {
		t.Fatalf("the indebted key was dropped for a new one (debt %v)", d)
	}
}

// debtOf is what key still owes at now.
func debtOf(tab *table, key string, now time.Time) time.Duration {
	sh, h, n := tab.lock(key, now)
	defer sh.mu.Unlock()
	if s := sh.find(h); s != nil && s.tat > n {
		return time.Duration(s.tat - n)
	}
	return 0
}

// GCRA arithmetic: a burst, then one event per interval; refunds give back.
func TestLimiterBurstRefillRefund(t *testing.T) {
	l := newLimiter(10)
	now := time.Now()
	for i := range 10 {
		if ok, _ := l.allow("k", now); !ok {
			t.Fatalf("event %d of the burst refused", i+1)
		}
	}
	ok, wait := l.allow("k", now)
	if ok || wait != 6*time.Second {
		t.Fatalf("11th event: %v, wait %v; want refused, 6s", ok, wait)
	}
	if ok, _ := l.allow("k", now.Add(6*time.Second)); !ok {
		t.Fatal("refused after one interval")
	}
	l.refund("k", now)
	if ok, _ := l.allow("k", now.Add(6*time.Second)); !ok {
		t.Fatal("a refund did not give the event back")
	}
	if ok, _ := l.allow("other", now); !ok {
		t.Fatal("another key refused")
	}
	var off *limiter = newLimiter(0)
	if ok, _ := off.allow("k", now); !ok {
		t.Fatal("limit 0 is not off")
	}
	// force never goes past its ceiling.
	tab := newTable()
	var charged, debt time.Duration
	for range 10 {
		charged, debt = tab.force("f", now, time.Minute, 5*time.Minute)
	}
	if charged != 0 || debt != 5*time.Minute {
		t.Fatalf("force past the ceiling: charged %v, debt %v", charged, debt)
	}
}

// Defect 5, exactly: 2,000 concurrent takes on a budget of 60 at a frozen
// instant: exactly 60 pass.
func TestLimiterTakeIsAtomic(t *testing.T) {
	l := newLimiter(60)
	now := time.Now()
	var passed atomic.Int64
	var wg sync.WaitGroup
	for range 2000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, _ := l.allow("k", now); ok {
				passed.Add(1)
			}
		}()
	}
	wg.Wait()
	if passed.Load() != 60 {
		t.Fatalf("%d of 2,000 concurrent takes passed a budget of 60", passed.Load())
	}
}

// Defect 5 through the handler with a frozen clock: of 2,000 concurrent
// failed refreshes (LOGIN_RATE_LIMIT=10: 60 a minute) exactly 60 are 400,
// the rest 429; then a valid token still rotates.
func TestRefreshFailuresConcurrentFrozenClock(t *testing.T) {
	f := storetest.NewFixture(t, memory.New())
	s := newServer(f.Svc, slog.New(slog.NewTextHandler(io.Discard, nil)), Options{LoginRateLimit: 10})
	frozen := time.Now()
	s.now = func() time.Time { return frozen }
	h := s.handler()
	call := func(body string) int {
		r := httptest.NewRequest(http.MethodPost, "/refresh", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	var n400, n429 atomic.Int64
	var wg sync.WaitGroup
	bogus := `{"refresh_token":"rt_` + strings.Repeat("D", 64) + `"}`
	for range 2000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch c := call(bogus); c {
			case 400:
				n400.Add(1)
			case 429:
				n429.Add(1)
			default:
				t.Errorf("status %d", c)
			}
		}()
	}
	wg.Wait()
	if n400.Load() != 60 || n429.Load() != 1940 {
		t.Fatalf("400: %d, 429: %d; want 60 and 1940", n400.Load(), n429.Load())
	}
	if _, err := f.Svc.Signup(t.Context(), "frozen@example.test", "user password 1", nil); err != nil {
		t.Fatal(err)
	}
	pair, err := f.Svc.Login(t.Context(), "frozen@example.test", "user password 1", tokens.ClientInfo{IP: "192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	if c := call(`{"refresh_token":"` + pair.RefreshToken + `"}`); c != 200 {
		t.Fatalf("a valid token from the throttled address: %d", c)
	}
}

// Concurrent guesses cannot overshoot the login limits either: the
// reservation is the charge.
func TestLoginReservationsAreAtomic(t *testing.T) {
	const l = 5
	s := bareServer(l)
	var passed atomic.Int64
	var wg sync.WaitGroup
	for range 500 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := httptest.NewRequest(http.MethodPost, "/token", nil)
			if a, err := s.startLogin(r, "victim@example.test"); err == nil {
				passed.Add(1)
				a.done(true)
			}
		}()
	}
	wg.Wait()
	if passed.Load() != l {
		t.Fatalf("%d of 500 concurrent guesses were let through for one account and prefix, want %d", passed.Load(), l)
	}
	// Successes give their reservations back.
	s = bareServer(l)
	r := httptest.NewRequest(http.MethodPost, "/token", nil)
	for i := range 100 {
		a, err := s.startLogin(r, "user@example.test")
		if err != nil {
			t.Fatalf("login %d refused: %v", i+1, err)
		}
		a.done(false)
	}
}

// Defect 2: what a client address is keyed by.
func TestClientPrefix(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("fe80::/10")}
	cases := []struct {
		remote, xff string
		v6bits      int
		want        string
	}{
		{"198.51.100.7:1", "", 64, "198.51.100.7"},
		{"[::ffff:198.51.100.7]:1", "", 64, "198.51.100.7"},
		{"[2001:db8:1:2:3:4:5:6]:1", "", 64, "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:3:4:5:6]:1", "", 48, "2001:db8:1::/48"},
		{"[2001:db8:1:2:3:4:5:6]:1", "", 128, "2001:db8:1:2:3:4:5:6/128"},
		{"[fe80::1%eth0]:1", "", 64, "fe80::/64"},
		{"[fe80::1%eth0]:1", "2001:db8::1", 64, "2001:db8::/64"}, // a zoned trusted proxy is trusted
		{"192.0.2.1:1", "fe80::9%x, fe80::8%y", 64, "192.0.2.1"}, // zoned trusted hops are trusted
		{"192.0.2.1:1", "2001:db8:9::1%a", 64, "2001:db8:9::/64"},
		{"192.0.2.1:1", "::ffff:203.0.113.1", 64, "203.0.113.1"},
		{"192.0.2.1:1", "203.0.113.1, 192.0.2.7", 64, "203.0.113.1"},
		{"@", "", 64, "peer:@"},
	}
	for _, c := range cases {
		s := &server{opts: Options{TrustedProxies: proxies}, v6bits: c.v6bits}
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = c.remote
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		if got := s.clientPrefix(r); got != c.want {
			t.Errorf("%s (X-Forwarded-For %q), /%d: %q, want %q", c.remote, c.xff, c.v6bits, got, c.want)
		}
		if _, ip := s.peer(r); strings.Contains(ip, "%") {
			t.Errorf("%s: client IP %q keeps a zone", c.remote, ip)
		}
	}
	for in, want := range map[int]int{0: 64, 48: 48, 128: 128, 129: 64, -1: 64} {
		if got := ipv6Bits(Options{RateLimitIPv6Prefix: in}); got != want {
			t.Errorf("ipv6Bits(%d) = %d, want %d", in, got, want)
		}
	}
	k := rateSubject{prefix: "2001:db8::/64"}
	if k.key("revoke") == (rateSubject{prefix: "2001:db8::/64", clientID: "spa"}).key("revoke") || k.key("revoke") == k.key("refresh") {
		t.Fatal("rate-limit keys collide")
	}
}

// Defect 6: request ids are 16 hex digits, unique over 100k, not a
// counter, and share no per-process prefix.
func TestRequestIDsAreRandom(t *testing.T) {
	format := regexp.MustCompile(`^[0-9a-f]{16}$`)
	const n = 100_000
	seen := make(map[string]struct{}, n)
	prefixes := map[string]struct{}{}
	var prev uint64
	near := 0
	for i := range n {
		id := newRequestID()
		if !format.MatchString(id) {
			t.Fatalf("request id %q does not match %s", id, format)
		}
		if _, dup := seen[id]; dup {
			t.Fatalf("request id %q repeated after %d", id, i)
		}
		seen[id] = struct{}{}
		prefixes[id[:8]] = struct{}{}
		v, _ := strconv.ParseUint(id, 16, 64)
		if i > 0 && (v-prev < 1<<32 || prev-v < 1<<32) {
			near++
		}
		prev = v
	}
	if near > 2 {
		t.Fatalf("%d consecutive ids within 2^32 of each other: sequential", near)
	}
	if len(prefixes) < n/2 {
		t.Fatalf("only %d distinct 32-bit prefixes in %d ids: a per-process prefix", len(prefixes), n)
	}
	// Concurrent callers (the pool hands each its own generator).
	var wg sync.WaitGroup
	var mu sync.Mutex
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]string, 1000)
			for i := range local {
				local[i] = newRequestID()
			}
			mu.Lock()
			defer mu.Unlock()
			for _, id := range local {
				if _, dup := seen[id]; dup {
					t.Errorf("request id %q repeated", id)
				}
				seen[id] = struct{}{}
			}
		}()
	}
	wg.Wait()
}

func BenchmarkRequestID(b *testing.B) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = newRequestID()
		}
	})
}

// BenchmarkLimiterUniqueKeys floods unique keys and reports the live heap
// the limiter holds afterwards.
func BenchmarkLimiterUniqueKeys(b *testing.B) {
	before := heapInUse()
	l := newLimiter(10)
	now := time.Now()
	b.ResetTimer()
	for i := range b.N {
		l.allow("k"+strconv.Itoa(i), now)
	}
	b.StopTimer()
	b.ReportMetric(float64(int64(heapInUse())-int64(before))/mib, "MiB-heap")
	runtime.KeepAlive(l)
}
