package main

import (
	"fmt"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// stats counts everything the soak did and saw. The counters are safe for
// concurrent use; the maps are guarded by mu.
type stats struct {
	mu        sync.Mutex
	endpoints map[string]map[string]int // endpoint → outcome ("200", "400 invalid_grant", "network error") → requests
	refreshes map[string]int            // outcome of the tabs' refreshes, expected refusals told apart
	samples   map[string]*sampleList    // problems by kind, for the violation list

	// Refreshes by tabs.
	bursts       atomic.Int64 // tabs woken by a burst (all tabs of a browser at once)
	graceReplays atomic.Int64 // 200 for a token whose successor was already seen, with that same successor
	// Lost replies: scheduled retries and what they got.
	lostRetried     atomic.Int64
	retrySame       atomic.Int64 // 200 with the byte-identical successor
	retryMismatch   atomic.Int64 // 200 with another successor
	retryRefused    atomic.Int64 // refused although the session was live
	retryFailed     atomic.Int64 // 5xx, other status or transport error
	retryAfterEnd   atomic.Int64 // refused because the simulation had ended the session meanwhile (not eligible)
	clientTwoSucc   atomic.Int64 // one presented token answered with two different successors
	wrongSession    atomic.Int64 // a refresh answered with another session's id
	unexpectedGrant atomic.Int64 // invalid_grant on a session the simulation had not ended
	unexplained     atomic.Int64 // any other answer the simulation cannot explain (429, 400 other, 401 on a live session...)

	// Sessions.
	logins       atomic.Int64
	relogins     atomic.Int64 // logins of a browser after its session ended
	loginFailed  atomic.Int64
	logouts      atomic.Int64
	passwords    atomic.Int64
	pwEnded      atomic.Int64 // sessions ended by password changes
	adminSession atomic.Int64
	adminUser    atomic.Int64
	adminEnded   atomic.Int64 // sessions ended by DELETE /admin/users/{id}/sessions
	attacks      atomic.Int64 // grandparent presentations answered with reuse detection
	attackMissed atomic.Int64 // attacks that found the session already revoked
	eventSkipped atomic.Int64 // events whose target had no live session at the time
	eventFailed  atomic.Int64 // events the server refused (the session had ended unseen)

	// Spot checks of revocations during the run.
	spotChecks atomic.Int64
	spotLate   atomic.Int64
	spotMaxNS  atomic.Int64
}

// sampleList keeps the first few descriptions of one kind of problem.
type sampleList struct {
	n     int
	first []string
}

const maxSamples = 12

func newStats() *stats {
	return &stats{endpoints: map[string]map[string]int{}, refreshes: map[string]int{}, samples: map[string]*sampleList{}}
}

// request records one request's outcome; 5xx answers and transport errors
// are also kept as samples.
func (s *stats) request(endpoint, inst string, r reply, err error) {
	outcome := "network error"
	if err == nil {
		outcome = strconv.Itoa(r.status)
		if r.code != "" && r.status >= 400 && r.status < 500 {
			outcome += " " + r.code
		}
	}
	s.mu.Lock()
	m := s.endpoints[endpoint]
	if m == nil {
		m = map[string]int{}
		s.endpoints[endpoint] = m
	}
	m[outcome]++
	s.mu.Unlock()
	switch {
	case err != nil:
		s.note("transport", fmt.Sprintf("%s on %s: %v", endpoint, inst, err))
	case r.status >= 500:
		s.note("5xx", fmt.Sprintf("%s on %s: %s", endpoint, inst, r))
	}
}

// refresh records the outcome of one tab refresh.
func (s *stats) refresh(outcome string) {
	s.mu.Lock()
	s.refreshes[outcome]++
	s.mu.Unlock()
}

// note keeps a sample of a problem of kind.
func (s *stats) note(kind, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.samples[kind]
	if l == nil {
		l = &sampleList{}
		s.samples[kind] = l
	}
	l.n++
	if len(l.first) < maxSamples {
		l.first = append(l.first, time.Now().Format("15:04:05.000")+" "+text)
	}
}

// sampled returns the number of problems of kind and their first samples.
func (s *stats) sampled(kind string) (int, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.samples[kind]
	if l == nil {
		return 0, nil
	}
	return l.n, append([]string(nil), l.first...)
}

// spot records one spot check that took d to see the revocation everywhere.
func (s *stats) spot(d time.Duration, late bool) {
	s.spotChecks.Add(1)
	if late {
		s.spotLate.Add(1)
	}
	for {
		old := s.spotMaxNS.Load()
		if int64(d) <= old || s.spotMaxNS.CompareAndSwap(old, int64(d)) {
			return
		}
	}
}

// endpointRows returns the endpoints in a stable order with their outcome
// counts.
func (s *stats) endpointRows() (names []string, counts map[string]map[string]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	counts = map[string]map[string]int{}
	for e, m := range s.endpoints {
		names = append(names, e)
		c := map[string]int{}
		for k, v := range m {
			c[k] = v
		}
		counts[e] = c
	}
	sort.Strings(names)
	return names, counts
}

// refreshRows returns the tab refresh outcomes, most frequent first.
func (s *stats) refreshRows() []countRow {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sortedCounts(s.refreshes)
}

// countRow is one outcome and its count.
type countRow struct {
	name string
	n    int
}

func sortedCounts(m map[string]int) []countRow {
	rows := make([]countRow, 0, len(m))
	for k, v := range m {
		rows = append(rows, countRow{k, v})
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].n != rows[j].n {
			return rows[i].n > rows[j].n
		}
		return rows[i].name < rows[j].name
	})
	return rows
}
