package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"
)

// result is one row of the printed table: a phase against Rotor or one
// pgbench run.
type result struct {
	name     string
	conc     int
	requests int             // requests started in the measured window
	errors   int             // failed requests, warm-up included
	elapsed  time.Duration   // measured window, until the last request ended
	lat      []time.Duration // sorted latencies of measured successful requests
	rate     float64         // set directly when the source reports it (pgbench tps)
	avgOnly  time.Duration   // pgbench average latency when no samples exist
	cpu      cpuUsage        // where the CPU time of the measured window went
	firstErr string
	ok       int        // successful requests, warm-up included
	table    *tableUse  // what the phase did to its table; nil: not watched
	interval []interval // the long-run report's intervals; nil: off
}

// perSecond is the throughput of the measured window.
func (r result) perSecond() float64 {
	if r.rate > 0 || r.elapsed <= 0 {
		return r.rate
	}
	return float64(r.requests) / r.elapsed.Seconds()
}

// pct returns the p-th percentile (0 < p ≤ 100) of the sorted samples, 0
// when there are none.
func (r result) pct(p float64) time.Duration {
	n := len(r.lat)
	if n == 0 {
		return 0
	}
	i := int(float64(n)*p/100+0.5) - 1 // nearest rank
	return r.lat[min(max(i, 0), n-1)]
}

// workFunc performs one request for worker w. It returns an error for any
// failed request; the runner counts it and moves on (no silent retry).
type workFunc func(ctx context.Context, w int) error

// workerStats is one worker's tally, merged after the phase; the interval
// meter reads it under mu while the phase runs.
type workerStats struct {
	mu               sync.Mutex
	requests, errors int
	ok               int // successful requests, warm-up included
	lat              []time.Duration
	firstErr         string
}

// runPhase runs conc workers calling work in a closed loop: o.warmup first,
// whose requests are not measured (but whose errors count), then
// o.duration. A cancelled ctx ends the phase early; requests it interrupted
// are not counted as errors. With o.table, the result says what the phase
// did to that table; with intervalsOn(o), the phase reports every
// o.interval of its measured window.
func runPhase(ctx context.Context, o options, name string, conc int, work workFunc) result {
	fmt.Fprintf(os.Stderr, "bench: %-12s c=%-3d %s + %s warm-up\n", name, conc, o.duration, o.warmup)
	tblBefore, tblOK := tableBefore(o)
	start := time.Now()
	measureFrom := start.Add(o.warmup)
	end := measureFrom.Add(o.duration)
	stats := make([]workerStats, conc)
	var iv *intervalMeter
	if intervalsOn(o) {
		iv = startIntervals(o, name, stats, measureFrom, end, os.Stderr)
	}
	meter := make(chan *cpuMeter, 1)
	go func() {
		time.Sleep(time.Until(measureFrom))
		m := startCPU(o.serverPID, o.dbName)
		if iv != nil {
			iv.cpu <- m
		}
		meter <- m
	}()
	var wg sync.WaitGroup
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := &stats[w]
			st.lat = make([]time.Duration, 0, 4096)
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(end) {
					return
				}
				err := work(ctx, w)
				d := time.Since(t0)
				if ctx.Err() != nil {
					return
				}
				measured := !t0.Before(measureFrom)
				st.mu.Lock()
				if measured {
					st.requests++
				}
				if err != nil {
					st.errors++
					if st.firstErr == "" {
						st.firstErr = err.Error()
					}
				} else {
					st.ok++
					if measured {
						st.lat = append(st.lat, d)
					}
				}
				st.mu.Unlock()
			}
		}()
	}
	wg.Wait()
	r := result{name: name, conc: conc, elapsed: time.Since(measureFrom), cpu: (<-meter).finish()}
	if iv != nil {
		r.interval = iv.stop()
	}
	for w := range stats {
		st := &stats[w]
		r.requests += st.requests
		r.errors += st.errors
		r.ok += st.ok
		r.lat = append(r.lat, st.lat...)
		if r.firstErr == "" {
			r.firstErr = st.firstErr
		}
	}
	slices.Sort(r.lat)
	if tblOK {
		r.table = tableAfter(ctx, o.table, tblBefore, int64(r.ok), statsWait(o))
	}
	if st, ok := stabilityOf(rates(r.interval)); ok {
		fmt.Fprintf(os.Stderr, "bench: %-12s c=%-3d stability: %s\n", name, conc, st)
	}
	return r
}
