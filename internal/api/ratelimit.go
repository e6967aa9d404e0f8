package api

import (
	"hash/maphash"
	"math"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rotorauth/rotor/internal/tokens"
)

// Rate limits.
//
// Every limit is a GCRA (generic cell rate algorithm) bucket: a key's whole
// state is one instant, its theoretical arrival time (tat). A rule of n events
// a minute in bursts of b charges interval = 1m/n per event and refuses an
// event that would put tat more than b intervals past now; debt = tat - now
// is what a key still owes. A key whose tat has passed is a full bucket, the
// same as a key never seen, so forgetting it loses nothing.
//
// Buckets live in a table of fixed size (table below): memory does not grow
// with the number of keys, whatever a flood of unique keys does.
//
// Keys are client address prefixes (clientPrefix: an IPv4 address, an IPv6
// /64 by default), accounts, and pairs of both; see rateSubject.

// table is a fixed-size store of GCRA states: tableShards shards, each with
// its own mutex, of shardSets sets of setWays slots (a set-associative
// cache). A key lives in the one set its hash names. A new key takes an
// empty slot or a full bucket of its set if there is one (no state lost);
// otherwise it evicts the bucket of the set with the least debt, the one
// that would have been full again soonest. So a flood of one-off keys evicts
// other one-off keys, while a key under attack, charged up to its limit,
// carries the most debt of its set and is the last to go: evicting it needs
// its whole set filled with keys at least as indebted, that is keys that
// each spent their own whole budget (and the hash is keyed by a per-process
// seed, so nobody can aim keys at one set).
//
// Memory: tableSlots slots of 16 bytes, 1 MiB per table at most, allocated
// shard by shard on the first charge, plus 4 KiB of shard headers.
type table struct {
	seed   maphash.Seed
	epoch  time.Time
	shards [tableShards]shard
	// evictions counts buckets dropped while they still had debt.
	evictions atomic.Int64
}

const (
	tableShards = 64
	shardSets   = 128
	setWays     = 8
	tableSlots  = tableShards * shardSets * setWays // 65,536
)

type slot struct {
	key uint64 // the key's hash; 0 is an empty slot
	tat int64  // nanoseconds since the table's epoch
}

type shard struct {
	mu   sync.Mutex
	sets *[shardSets][setWays]slot
	_    [48]byte // one shard per cache line
}

func newTable() *table { return &table{seed: maphash.MakeSeed(), epoch: time.Now()} }

// lock locks key's shard and returns it with key's hash and now in table
// time. The caller unlocks.
func (t *table) lock(key string, now time.Time) (*shard, uint64, int64) {
	h := maphash.String(t.seed, key)
	if h == 0 {
		h = 1
	}
	sh := &t.shards[h%tableShards]
	sh.mu.Lock()
	return sh, h, int64(now.Sub(t.epoch))
}

// find returns h's slot, nil if it has none.
func (sh *shard) find(h uint64) *slot {
	if sh.sets == nil {
		return nil
	}
	set := &sh.sets[(h/tableShards)%shardSets]
	for i := range set {
		if set[i].key == h {
			return &set[i]
		}
	}
	return nil
}

// claim returns a slot for a new key h: an empty slot or a full bucket of
// its set if there is one, else the bucket with the least debt.
func (t *table) claim(sh *shard, h uint64, now int64) *slot {
	if sh.sets == nil {
		sh.sets = new([shardSets][setWays]slot)
	}
	set := &sh.sets[(h/tableShards)%shardSets]
	v := &set[0]
	for i := range set {
		if set[i].key == 0 || set[i].tat <= now {
			v = &set[i]
			break
		}
		if set[i].tat < v.tat {
			v = &set[i]
		}
	}
	if v.key != 0 && v.tat > now {
		t.evictions.Add(1)
	}
	v.key, v.tat = h, now
	return v
}

// take charges cost to key if its debt afterwards is at most limit, in one
// step under the shard's lock, so concurrent takes never overshoot. Refused,
// it charges nothing and reports how long until the charge would fit.
func (t *table) take(key string, now time.Time, cost, limit time.Duration) (bool, time.Duration) {
	sh, h, n := t.lock(key, now)
	defer sh.mu.Unlock()
	s := sh.find(h)
	tat := n
	if s != nil && s.tat > n {
		tat = s.tat
	}
	next := tat + int64(cost)
	if over := next - n - int64(limit); over > 0 {
		return false, time.Duration(over)
	}
	if s == nil {
		s = t.claim(sh, h, n)
	}
	s.tat = next
	return true, 0
}

// force charges cost to key whatever its debt, though never beyond ceiling
// of debt. It returns what it charged (for refund) and the debt afterwards.
func (t *table) force(key string, now time.Time, cost, ceiling time.Duration) (charged, debt time.Duration) {
	sh, h, n := t.lock(key, now)
	defer sh.mu.Unlock()
	s := sh.find(h)
	if s == nil {
		s = t.claim(sh, h, n)
	}
	tat := max(s.tat, n)
	next := max(min(tat+int64(cost), n+int64(ceiling)), tat)
	s.tat = next
	return time.Duration(next - tat), time.Duration(next - n)
}

// refund gives back cost charged to key. A key forgotten meanwhile (a full
// bucket, or evicted) has nothing to give back.
func (t *table) refund(key string, now time.Time, cost time.Duration) {
	sh, h, _ := t.lock(key, now)
	defer sh.mu.Unlock()
	if s := sh.find(h); s != nil {
		s.tat -= int64(cost)
	}
}

// limiter is one rule over one table: events a period, in bursts of burst.
// A nil limiter, or one without events, allows everything.
type limiter struct {
	interval time.Duration // the cost of one event
	burst    int64
	tab      *table
}

// newLimiter allows perMinute events a minute per key, in bursts of up to
// perMinute; 0 turns it off.
func newLimiter(perMinute int) *limiter { return newRateLimiter(perMinute, time.Minute, perMinute) }

func newRateLimiter(events int, period time.Duration, burst int) *limiter {
	if events <= 0 || burst <= 0 {
		return nil
	}
	return &limiter{interval: period / time.Duration(events), burst: int64(burst), tab: newTable()}
}

func (l *limiter) limit() time.Duration { return time.Duration(l.burst) * l.interval }

// allow takes one event for key, atomically. When refused it reports how
// long to wait.
func (l *limiter) allow(key string, now time.Time) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	return l.tab.take(key, now, l.interval, l.limit())
}

// refund gives back one event taken by allow.
func (l *limiter) refund(key string, now time.Time) {
	if l != nil {
		l.tab.refund(key, now, l.interval)
	}
}

// retryAfterSeconds rounds a wait up to whole seconds, at least 1.
func retryAfterSeconds(d time.Duration) int {
	return int(math.Max(1, math.Ceil(d.Seconds())))
}

// rateSubject is who a per-client limit charges.
type rateSubject struct {
	// prefix is the client address's prefix (clientPrefix).
	prefix string
	// clientID is an authenticated OAuth client id, "" until client
	// authentication exists. Only ever set it from a client that proved
	// who it is: a client id anyone may claim would let a caller pick a
	// fresh bucket per request.
	clientID string
}

// key is subject's key in scope: the authenticated client if there is one
// (limited as itself, wherever it calls from), else the address prefix.
func (k rateSubject) key(scope string) string {
	if k.clientID != "" {
		return scope + "|client|" + k.clientID
	}
	return k.addrKey(scope)
}

// addrKey is subject's address-prefix key in scope, whatever the client.
func (k rateSubject) addrKey(scope string) string { return scope + "|addr|" + k.prefix }

func (s *server) subject(r *http.Request) rateSubject {
	return rateSubject{prefix: s.clientPrefix(r)}
}

// clientPrefix is what rate limits key an address by: an IPv4 address
// (IPv4-mapped IPv6 included: peer unmaps it) or the IPv6 prefix of
// RateLimitIPv6Prefix bits (64 by default: one customer's network, of which
// anyone holds 2^64 addresses), zone dropped. A peer that is no IP address
// (a Unix socket) is its own key.
func (s *server) clientPrefix(r *http.Request) string {
	info := infoOf(r.Context())
	if info == nil {
		info = &requestInfo{}
		info.addr, info.ip = s.peer(r)
	}
	if !info.addr.IsValid() {
		return "peer:" + info.ip
	}
	return prefixOf(info.addr, s.v6bits)
}

// ipv6Bits is the IPv6 prefix length of opts, 64 if unset.
func ipv6Bits(opts Options) int {
	if opts.RateLimitIPv6Prefix <= 0 || opts.RateLimitIPv6Prefix > 128 {
		return 64
	}
	return opts.RateLimitIPv6Prefix
}

func (s *server) tooMany(name, msg string, wait time.Duration) error {
	s.metrics.rateLimited.WithLabelValues(name).Inc()
	return &httpError{status: http.StatusTooManyRequests, code: codeTooManyRequests, msg: msg, retryAfter: retryAfterSeconds(wait)}
}

// Login limits count failed logins, never successes, with LOGIN_RATE_LIMIT
// = L:
//
//   - per address prefix, any account: 2L failures a minute (a password
//     spray from one network);
//   - per account and address prefix: L failures a minute;
//   - per account from anywhere: 2L failures, refilled at L per 10 minutes.
//     Past that the account is under attack ("protected"): a password is
//     checked only from a prefix with no unpaid failure against that
//     account, and a failure then bars that prefix from the account for
//     protectedPenalty. So a clean address, the victim's own, is still
//     checked and its right password accepted, while every address an
//     attacker uses gets one guess per protectedPenalty.
//
// An attempt reserves a failure in each bucket before the password check
// (one atomic take each, so concurrent guesses cannot overshoot) and gives
// the reservations back unless the credentials were refused.
type loginLimits struct {
	prefix, pair, account *limiter
}

const (
	accountRefill    = 10 * time.Minute
	protectedPenalty = 10 * time.Minute
)

func newLoginLimits(l int) loginLimits {
	return loginLimits{
		prefix:  newRateLimiter(2*l, time.Minute, 2*l),
		pair:    newLimiter(l),
		account: newRateLimiter(l, accountRefill, 2*l),
	}
}

// loginAttempt is one login's reservations, settled by done.
type loginAttempt struct {
	l                           *loginLimits
	now                         time.Time
	prefixKey, pairKey, acctKey string
	pairCost, acctCost          time.Duration
}

// startLogin reserves a failure for a login of username, or refuses it with
// 429 before the password is checked.
func (s *server) startLogin(r *http.Request, username string) (*loginAttempt, error) {
	l := &s.loginLimits
	if l.prefix == nil {
		return &loginAttempt{}, nil
	}
	now := s.now()
	subj := s.subject(r)
	a := &loginAttempt{l: l, now: now, prefixKey: subj.addrKey("login")}
	if ok, wait := l.prefix.allow(a.prefixKey, now); !ok {
		return nil, s.tooMany("login_ip", "too many failed logins from this network; retry later", wait)
	}
	// Junk usernames cannot match an account: the prefix bounds them.
	norm, err := tokens.NormalizeEmail(username)
	if err != nil {
		return a, nil
	}
	a.acctKey = "login|acct|" + norm
	a.pairKey = a.acctKey + "|" + subj.prefix
	var debt time.Duration
	a.acctCost, debt = l.account.tab.force(a.acctKey, now, l.account.interval, l.account.limit()+protectedPenalty)
	a.pairCost = l.pair.interval
	limit, name := l.pair.limit(), "login_account"
	if debt > l.account.limit() {
		a.pairCost, limit, name = protectedPenalty, protectedPenalty, "login_account_protected"
	}
	if ok, wait := l.pair.tab.take(a.pairKey, now, a.pairCost, limit); !ok {
		l.prefix.refund(a.prefixKey, now)
		l.account.tab.refund(a.acctKey, now, a.acctCost)
		return nil, s.tooMany(name, "too many failed logins for this account from this network; retry later", wait)
	}
	return a, nil
}

// done settles the attempt: a failure keeps its reservations, anything else
// (a success, a busy or unavailable server) gives them back.
func (a *loginAttempt) done(failed bool) {
	if failed || a.l == nil {
		return
	}
	a.l.prefix.refund(a.prefixKey, a.now)
	if a.acctKey != "" {
		a.l.account.tab.refund(a.acctKey, a.now, a.acctCost)
		a.l.pair.tab.refund(a.pairKey, a.now, a.pairCost)
	}
}

// refreshFailed charges a refused refresh (err Is ErrInvalidGrant) to the
// client, in one atomic take, and turns err into a 429 when the client is
// over its failure budget. It runs after the token was judged: a valid
// token always rotates, whoever else failed from the same address.
func (s *server) refreshFailed(r *http.Request, err error) error {
	if ok, wait := s.refreshLimit.allow(s.subject(r).key("refresh"), s.now()); !ok {
		return s.tooMany("refresh_failures_ip", "too many failed refresh attempts; retry later", wait)
	}
	return err
}

// prefixOf is addr's rate-limit prefix: addr itself for IPv4 (mapped or
// not), its first v6bits bits for IPv6, without a zone.
func prefixOf(addr netip.Addr, v6bits int) string {
	addr = addr.Unmap().WithZone("")
	if addr.Is4() {
		return addr.String()
	}
	p, _ := addr.Prefix(v6bits)
	return p.String()
}
