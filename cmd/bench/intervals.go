package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// The long-run report: a phase of at least longPhase (six intervals of the
// default -interval) prints, every -interval of its measured window, the
// interval's req/s, p50, p99 and errors (and its table's HOT ratio and
// size), and at its end how stable the interval rates were. A throughput
// that sinks as the run goes on (bloat, a growing index, a plan gone bad)
// shows as a falling series and a last ÷ first below 1, where the phase's
// average would hide it.

// longPhase is the -duration from which the default -interval reports.
const longPhase = time.Minute

// interval is one interval of a phase's measured window.
type interval struct {
	end              time.Duration // since the measured window began
	requests, errors int           // started in the window and ended in the interval; failed in it
	rate             float64       // requests ÷ the interval's length
	p50, p99         time.Duration
	others           float64   // share of the CPUs other processes took; -1 unknown
	table            *tableUse // its table's counters, read unsettled at both ends; nil: none
}

// intervalsOn reports whether a phase of o reports intervals.
func intervalsOn(o options) bool {
	return o.interval > 0 && o.duration >= 6*o.interval
}

// intervalMeter samples the workers' tallies at every interval's end.
type intervalMeter struct {
	name     string
	conc     int
	stats    []workerStats
	table    string
	every    time.Duration
	from     time.Time // the measured window's start
	end      time.Time
	log      io.Writer
	cpu      chan *cpuMeter // the phase's CPU meter, once the measured window starts
	done     chan struct{}  // closed when the phase's workers are done
	finished chan struct{}
	out      []interval
}

// startIntervals starts sampling stats from the start of the measured
// window; stop ends it.
func startIntervals(o options, name string, stats []workerStats, from, end time.Time, log io.Writer) *intervalMeter {
	m := &intervalMeter{name: name, conc: len(stats), stats: stats, table: o.table, every: o.interval,
		from: from, end: end, log: log, cpu: make(chan *cpuMeter, 1), done: make(chan struct{}), finished: make(chan struct{})}
	go m.run()
	return m
}

// stop waits for the last interval (whose end the phase reached) and
// returns them all.
func (m *intervalMeter) stop() []interval {
	close(m.done)
	<-m.finished
	return m.out
}

// tally is one worker's counters at an instant.
type tally struct{ requests, errors, lat int }

// until waits for t; false when the phase ended before t.
func (m *intervalMeter) until(t time.Time) bool {
	select {
	case <-time.After(time.Until(t)):
		return true
	case <-m.done:
		return !time.Now().Before(t)
	}
}

func (m *intervalMeter) run() {
	defer close(m.finished)
	if !m.until(m.from) {
		return
	}
	prev := make([]tally, len(m.stats))
	m.sample(prev, nil, nil)
	prevAt := time.Now()
	cpu := <-m.cpu // started at the window's start: its usage so far starts from zero
	prevCPU := cpuUsage{ok: cpu != nil}
	var prevTbl relStats
	tblOK := false
	if m.table != "" && relStatsOf != nil {
		prevTbl, tblOK = relStatsOf(m.table)
	}
	var lat []time.Duration
	for k := 1; ; k++ {
		tick := m.from.Add(time.Duration(k) * m.every)
		if tick.After(m.end) || !m.until(tick) {
			return
		}
		cur := make([]tally, len(m.stats))
		lat = m.sample(cur, prev, lat[:0])
		now := time.Now()
		iv := interval{end: now.Sub(m.from)}
		for w := range cur {
			iv.requests += cur[w].requests - prev[w].requests
			iv.errors += cur[w].errors - prev[w].errors
		}
		iv.rate = float64(iv.requests) / now.Sub(prevAt).Seconds()
		curCPU := cpu.sofar()
		iv.others, prevCPU = othersShare(prevCPU, curCPU), curCPU
		slices.Sort(lat)
		r := result{lat: lat}
		iv.p50, iv.p99 = r.pct(50), r.pct(99)
		if tblOK {
			if s, ok := relStatsOf(m.table); ok {
				iv.table = &tableUse{table: m.table, before: prevTbl, after: s}
				prevTbl = s
			}
		}
		m.out = append(m.out, iv)
		fmt.Fprintln(m.log, intervalLine(m.name, m.conc, iv))
		prev, prevAt = cur, now
	}
}

// sample stores every worker's tally into into and, given prev, appends
// the latencies recorded since prev to lat.
func (m *intervalMeter) sample(into, prev []tally, lat []time.Duration) []time.Duration {
	for w := range m.stats {
		st := &m.stats[w]
		st.mu.Lock()
		into[w] = tally{requests: st.requests, errors: st.errors, lat: len(st.lat)}
		if prev != nil {
			lat = append(lat, st.lat[prev[w].lat:]...)
		}
		st.mu.Unlock()
	}
	return lat
}

// intervalLine is an interval's progress line.
func intervalLine(name string, conc int, iv interval) string {
	s := fmt.Sprintf("bench: %-12s c=%-3d %5.0fs  %7.0f req/s  p50 %s  p99 %s  errors %d",
		name, conc, iv.end.Seconds(), iv.rate, ms(iv.p50), ms(iv.p99), iv.errors)
	if iv.others >= 0 {
		s += fmt.Sprintf("  others %.0f%%", 100*iv.others)
	}
	if t := iv.table; t != nil {
		hot := "HOT -"
		if r, ok := t.hotRatio(); ok {
			hot = fmt.Sprintf("HOT %.1f%%", 100*r)
		}
		s += fmt.Sprintf("  %s: %s of %d updates, %s", t.table, hot, t.updates(), mb(t.after.total))
		if n := t.checkpoints(); n > 0 {
			s += fmt.Sprintf(", %d checkpoint(s)", n)
		}
	}
	return s
}

// stability summarises the interval rates of a phase.
type stability struct {
	n                int
	min, median, max float64
	spread           float64 // max ÷ min (+Inf when an interval had no request)
	trend            float64 // last ÷ first interval (+Inf when the first had none)
}

// stabilityOf summarises rates; ok is false for fewer than two.
func stabilityOf(rates []float64) (stability, bool) {
	if len(rates) < 2 {
		return stability{}, false
	}
	s := slices.Clone(rates)
	slices.Sort(s)
	st := stability{n: len(s), min: s[0], max: s[len(s)-1]}
	if h := len(s) / 2; len(s)%2 == 1 {
		st.median = s[h]
	} else {
		st.median = (s[h-1] + s[h]) / 2
	}
	div := func(a, b float64) float64 {
		if b <= 0 {
			return math.Inf(1)
		}
		return a / b
	}
	st.spread, st.trend = div(st.max, st.min), div(rates[len(rates)-1], rates[0])
	return st, true
}

func (s stability) String() string {
	return fmt.Sprintf("%d intervals: min %.0f, median %.0f, max %.0f req/s; max ÷ min %.2f; last ÷ first %.2f",
		s.n, s.min, s.median, s.max, s.spread, s.trend)
}

// rates are a phase's interval rates.
func rates(ivs []interval) []float64 {
	out := make([]float64, len(ivs))
	for i, iv := range ivs {
		out[i] = iv.rate
	}
	return out
}

// printStability prints, for each phase with intervals, its stability
// summary and its series of interval rates.
func printStability(out io.Writer, rs []result) {
	head := false
	for _, r := range rs {
		st, ok := stabilityOf(rates(r.interval))
		if !ok {
			continue
		}
		if !head {
			every := r.interval[0].end.Round(time.Second)
			fmt.Fprintf(out, "\nStability: req/s per %s interval of the measured window\n", every)
			head = true
		}
		fmt.Fprintf(out, "  %s c=%d: %s\n", r.name, r.conc, st)
		var b strings.Builder
		for i, iv := range r.interval {
			if i > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%.0f", iv.rate)
		}
		fmt.Fprintf(out, "    %s\n", b.String())
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, iv := range r.interval {
			if iv.others >= 0 {
				lo, hi = min(lo, iv.others), max(hi, iv.others)
			}
		}
		if hi >= 0 {
			fmt.Fprintf(out, "    other processes took %.0f%% to %.0f%% of the CPUs an interval (high or uneven: a disturbed run)\n", 100*lo, 100*hi)
		}
	}
}
