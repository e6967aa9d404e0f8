package verify

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// maxFeedBytes bounds one page (10,000 entries are about 1 MB).
	maxFeedBytes = 16 << 20
	// maxPagesPerPoll stops a poll that keeps being told has_more (the
	// next poll, an interval later, goes on from the cursor reached).
	maxPagesPerPoll = 100
	// sweepEvery is how often expired denylist entries are dropped.
	sweepEvery = 30 * time.Second
)

// denylist holds revoked sessions and tokens until their until (plus the
// leeway, so a token accepted by the leeway is still refused).
type denylist struct {
	mu       sync.RWMutex
	sessions map[string]time.Time
	tokens   map[string]time.Time
}

func newDenylist() *denylist {
	return &denylist{sessions: map[string]time.Time{}, tokens: map[string]time.Time{}}
}

// add records entries; a repeated entry keeps the later until.
func (d *denylist) add(sessions, tokens []feedEntry) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, e := range sessions {
		if e.Until.After(d.sessions[e.Sid]) {
			d.sessions[e.Sid] = e.Until
		}
	}
	for _, e := range tokens {
		if e.Until.After(d.tokens[e.Jti]) {
			d.tokens[e.Jti] = e.Until
		}
	}
}

// check says which entry, if any, refuses a token of session sid with id jti.
func (d *denylist) check(sid, jti string) (what string, until time.Time, denied bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if u, ok := d.sessions[sid]; ok {
		return "session", u, true
	}
	if u, ok := d.tokens[jti]; ok {
		return "token", u, true
	}
	return "", time.Time{}, false
}

// sweep drops entries whose until is before cutoff and says how many.
func (d *denylist) sweep(cutoff time.Time) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for k, u := range d.sessions {
		if u.Before(cutoff) {
			delete(d.sessions, k)
			n++
		}
	}
	for k, u := range d.tokens {
		if u.Before(cutoff) {
			delete(d.tokens, k)
			n++
		}
	}
	return n
}

func (d *denylist) size() (sessions, tokens int) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return len(d.sessions), len(d.tokens)
}

// feedEntry is one entry of GET /revocations.
type feedEntry struct {
	Sid   string    `json:"sid"`
	Jti   string    `json:"jti"`
	Until time.Time `json:"until"`
}

// feedPage is one answer of GET /revocations.
type feedPage struct {
	Cursor   *string     `json:"cursor"`
	HasMore  bool        `json:"has_more"`
	Sessions []feedEntry `json:"sessions"`
	Tokens   []feedEntry `json:"tokens"`
}

// poller keeps the denylist current from the revocation feed.
type poller struct {
	v        *Verifier
	url      string
	client   *http.Client // authenticated with Config.TokenSource
	limit    int
	interval time.Duration
	full     time.Duration

	mu       sync.Mutex
	cursor   string    // where the next poll starts ("0": everything)
	seqStart time.Time // when the page sequence cursor belongs to began
	lastSync time.Time // seqStart of the last sequence read to has_more=false
	// lastSyncNano is lastSync for readers that take no lock.
	lastSyncNano atomic.Int64
	lastFull     time.Time // when the last complete read from 0 began
	// The full resynchronisation is a sequence of its own, read a few pages
	// per poll beside the incremental one (which alone keeps the verifier
	// fresh), from fullCursor, begun at fullStart; fullCursor "" when none
	// is under way.
	fullCursor string
	fullStart  time.Time
	lastErr    error
	synced     chan struct{} // closed at the first complete sequence
}

// run polls every interval until the verifier stops.
func (p *poller) run() {
	defer p.v.wg.Done()
	for {
		err := p.poll(p.v.bg)
		if p.v.bg.Err() != nil {
			return
		}
		p.v.observe()
		if err != nil {
			p.v.log.Debug("verify: revocation poll failed", "err", err.Error())
		}
		t := time.NewTimer(p.interval)
		select {
		case <-p.v.bg.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// poll reads the incremental sequence from the cursor until has_more is
// false (its start time is what freshness means: everything committed
// before it has been read), then goes on with a full resynchronisation
// (from 0, every Config.FullResyncInterval) for at most maxPagesPerPoll
// pages. A sequence cut short keeps its cursor and goes on at the next poll,
// so no answer is ever too large to finish, and a full read never holds up
// the incremental one.
func (p *poller) poll(ctx context.Context) error {
	p.mu.Lock()
	now := p.v.now()
	cursor, seqStart := p.cursor, p.seqStart
	if seqStart.IsZero() {
		seqStart = now
	}
	p.mu.Unlock()
	fromZero := cursor == "0"
	done, err := p.readSeq(ctx, cursor, func(next string, more bool) {
		p.cursor, p.seqStart = next, seqStart
		if !more {
			p.seqStart = time.Time{}
			if seqStart.After(p.lastSync) {
				p.lastSync = seqStart
				p.lastSyncNano.Store(seqStart.UnixNano())
			}
			if fromZero && seqStart.After(p.lastFull) {
				p.lastFull = seqStart // a read from 0 is a full one
			}
		}
	})
	if err != nil {
		return p.failed(err)
	}
	if !done {
		return p.failed(fmt.Errorf("revocations: still has_more after %d pages; going on at the next poll", maxPagesPerPoll))
	}
	p.recovered()
	return p.fullStep(ctx)
}

// fullStep starts a full resynchronisation when one is due and reads up to
// maxPagesPerPoll of its pages. When it completes, the incremental cursor is
// replaced by the full sequence's: that heals a cursor the issuer no longer
// honours (an in-memory issuer that restarted), and skips nothing, since
// the full read covered everything before its start and its cursor covers
// everything after.
func (p *poller) fullStep(ctx context.Context) error {
	p.mu.Lock()
	now := p.v.now()
	if p.fullCursor == "" {
		if !p.lastFull.IsZero() && now.Sub(p.lastFull) < p.full {
			p.mu.Unlock()
			return nil
		}
		p.fullCursor, p.fullStart = "0", now
	}
	cursor, start := p.fullCursor, p.fullStart
	p.mu.Unlock()
	_, err := p.readSeq(ctx, cursor, func(next string, more bool) {
		p.fullCursor = next
		if !more {
			p.fullCursor, p.lastFull = "", start
			if p.seqStart.IsZero() { // no incremental sequence half-way
				p.cursor = next
			}
		}
	})
	if err != nil {
		return p.failed(err)
	}
	return nil
}

// readSeq reads pages from cursor until has_more is false or
// maxPagesPerPoll pages were read (done false), adding every page's entries
// at once and calling step, under the lock, with the cursor reached.
func (p *poller) readSeq(ctx context.Context, cursor string, step func(next string, more bool)) (done bool, err error) {
	for page := 0; page < maxPagesPerPoll; page++ {
		pctx, cancel := context.WithTimeout(ctx, p.v.cfg.StaleAfter)
		fp, err := p.fetch(pctx, cursor)
		cancel()
		if err != nil {
			return false, err
		}
		p.v.deny.add(fp.Sessions, fp.Tokens)
		cursor = *fp.Cursor
		p.mu.Lock()
		step(cursor, fp.HasMore)
		p.mu.Unlock()
		if !fp.HasMore {
			return true, nil
		}
	}
	return false, nil
}

// recovered notes a complete incremental read: the first one makes the
// verifier ready, a later one after failures is logged.
func (p *poller) recovered() {
	p.mu.Lock()
	first := p.synced != nil
	if p.lastErr != nil && !first {
		p.v.log.Info("verify: revocation feed reachable again", "url", p.url)
	}
	p.lastErr = nil
	if p.synced != nil {
		close(p.synced)
		p.synced = nil
	}
	p.mu.Unlock()
	if first {
		s, t := p.v.deny.size()
		p.v.log.Info("verify: revocations loaded", "url", p.url, "sessions", s, "tokens", t)
	}
}

// failed records err, logging it when the feed was fine before.
func (p *poller) failed(err error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lastErr == nil && p.v.bg.Err() == nil {
		p.v.log.Warn("verify: revocation poll failed", "url", p.url, "err", err.Error())
	}
	p.lastErr = err
	return err
}

func (p *poller) fetch(ctx context.Context, cursor string) (*feedPage, error) {
	q := url.Values{"since": {cursor}, "limit": {strconv.Itoa(p.limit)}}
	u := p.url
	if strings.Contains(u, "?") {
		u += "&" + q.Encode()
	} else {
		u += "?" + q.Encode()
	}
	var fp feedPage
	if err := p.v.getJSON(ctx, p.client, u, maxFeedBytes, &fp); err != nil {
		return nil, fmt.Errorf("revocations: %w", err)
	}
	if fp.Cursor == nil || *fp.Cursor == "" {
		return nil, fmt.Errorf("revocations: GET %s: the answer has no cursor", p.url)
	}
	for _, e := range fp.Sessions {
		if e.Sid == "" || e.Until.IsZero() {
			return nil, fmt.Errorf("revocations: GET %s: a session entry without sid or until", p.url)
		}
	}
	for _, e := range fp.Tokens {
		if e.Jti == "" || e.Until.IsZero() {
			return nil, fmt.Errorf("revocations: GET %s: a token entry without jti or until", p.url)
		}
	}
	return &fp, nil
}

// state is what Status and the staleness check read.
func (p *poller) state() (lastSync time.Time, cursor string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastSync, p.cursor, p.lastErr
}

// stale is staleErr(now) != nil without taking the lock (Verify's path).
func (p *poller) stale(now time.Time) bool {
	last := p.lastSyncNano.Load()
	return last == 0 || now.Sub(time.Unix(0, last)) > p.v.cfg.StaleAfter
}

// staleErr is nil while the last complete poll began within StaleAfter, and
// otherwise an ErrStale that says how old it is and why.
func (p *poller) staleErr(now time.Time) error {
	last, _, err := p.state()
	if !last.IsZero() && now.Sub(last) <= p.v.cfg.StaleAfter {
		return nil
	}
	why := ""
	if err != nil {
		why = ": " + err.Error()
	}
	if last.IsZero() {
		return fmt.Errorf("verify: %w: no successful poll of %s yet%s", ErrStale, p.url, why)
	}
	return fmt.Errorf("verify: %w: the last successful poll of %s began %s ago (bound %s)%s",
		ErrStale, p.url, now.Sub(last).Round(time.Millisecond), p.v.cfg.StaleAfter, why)
}

// staleness states, for logging each transition once.
const (
	stateStarting int32 = iota
	stateFresh
	stateStale
)

// observe logs a change between fresh and stale revocations, once per
// transition, whoever notices it first (the poller, the watcher, Verify,
// Status). While starting, staleness is not news until StaleAfter has
// passed.
func (v *Verifier) observe() bool {
	now := v.now()
	stale := v.poll.stale(now)
	cur := v.staleState.Load()
	switch {
	case stale && cur == stateStale, !stale && cur == stateFresh:
		return stale
	case stale && cur == stateStarting && now.Sub(v.started) <= v.cfg.StaleAfter:
		return stale
	}
	next := stateFresh
	if stale {
		next = stateStale
	}
	if !v.staleState.CompareAndSwap(cur, next) {
		return stale
	}
	serr := v.poll.staleErr(now)
	if serr == nil {
		serr = errors.New("-")
	}
	switch {
	case stale && v.cfg.FailOpen:
		v.log.Error("verify: revocations are stale; FAILING OPEN: tokens revoked since the last poll are accepted", "err", reasonOf(serr))
	case stale:
		v.log.Error("verify: revocations are stale; failing closed: every token is refused until a poll succeeds", "err", reasonOf(serr))
	case cur == stateStale:
		v.log.Info("verify: revocations are current again")
	}
	return stale
}

// watch notices staleness even while a poll hangs, and sweeps the denylist.
func (v *Verifier) watch() {
	defer v.wg.Done()
	tick := time.NewTicker(min(v.cfg.PollInterval, time.Second))
	defer tick.Stop()
	lastSweep := v.now()
	for {
		select {
		case <-v.bg.Done():
			return
		case <-tick.C:
		}
		v.observe()
		if now := v.now(); now.Sub(lastSweep) >= sweepEvery {
			lastSweep = now
			if n := v.deny.sweep(now.Add(-v.cfg.Leeway)); n > 0 {
				v.log.Debug("verify: expired denylist entries dropped", "count", n)
			}
		}
	}
}
