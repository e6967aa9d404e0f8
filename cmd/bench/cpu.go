package main

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Client, server and PostgreSQL share the machine's CPUs, so the benchmark
// also reports where the CPU time of each measured window went, read from
// Linux's /proc (elsewhere the CPU table is left out). Exited processes keep
// the CPU time last polled, so pgbench's short-lived backends are counted
// to within one poll interval.

// clockTick is USER_HZ, the unit of /proc CPU times (100 on Linux).
const clockTick = 10 * time.Millisecond

const cpuPoll = 250 * time.Millisecond

// cpuUsage is the CPU time spent during one measured window, by whom.
type cpuUsage struct {
	ok                        bool
	wall                      time.Duration
	busy                      time.Duration // all CPUs, every process and interrupt
	rotor, pg, client, others time.Duration // others = busy minus the three
	wal                       int64         // bytes of WAL the whole cluster wrote; -1 when unknown
}

// walPosition reads PostgreSQL's current WAL insert position in bytes; nil
// (or false) when the benchmark has no database. Set by run.
var walPosition func() (int64, bool)

// cpuMeter polls /proc while a window runs.
type cpuMeter struct {
	serverPID int
	dbName    string
	start     time.Time
	sysFirst  time.Duration
	walFirst  int64 // -1: unknown
	first     map[int]time.Duration
	mu        sync.Mutex
	lastAt    time.Time     // the last scan, and
	lastBusy  time.Duration // the machine's busy time then
	last      map[int]time.Duration
	class     map[int]string
	stop      chan struct{}
	done      chan struct{}
}

// startCPU starts a meter; serverPID is the Rotor process (0: recognise it
// by its command name), dbName the scratch database whose backends count as
// the benchmark's PostgreSQL ("": every PostgreSQL process). It returns nil
// where /proc is not available.
func startCPU(serverPID int, dbName string) *cpuMeter {
	busy, ok := systemBusy()
	if !ok {
		return nil
	}
	m := &cpuMeter{serverPID: serverPID, dbName: dbName, start: time.Now(), sysFirst: busy,
		first: map[int]time.Duration{}, last: map[int]time.Duration{}, class: map[int]string{},
		stop: make(chan struct{}), done: make(chan struct{})}
	m.walFirst = -1
	if walPosition != nil {
		if w, ok := walPosition(); ok {
			m.walFirst = w
		}
	}
	m.scan(m.first)
	go func() {
		defer close(m.done)
		t := time.NewTicker(cpuPoll)
		defer t.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-t.C:
				m.scan(nil)
			}
		}
	}()
	return m
}

// finish stops the meter and returns the window's usage.
func (m *cpuMeter) finish() cpuUsage {
	if m == nil {
		return cpuUsage{}
	}
	close(m.stop)
	<-m.done
	m.scan(nil)
	u := m.sofar()
	if m.walFirst >= 0 {
		if w, ok := walPosition(); ok {
			u.wal = w - m.walFirst
		}
	}
	return u
}

// sofar is the usage from the start to the last poll, with the WAL unknown;
// the meter keeps running. A nil meter reports nothing (ok false).
func (m *cpuMeter) sofar() cpuUsage {
	if m == nil {
		return cpuUsage{}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	u := cpuUsage{ok: true, wall: m.lastAt.Sub(m.start), busy: m.lastBusy - m.sysFirst, wal: -1}
	for pid, t := range m.last {
		d := t - m.first[pid]
		switch m.class[pid] {
		case "rotor":
			u.rotor += d
		case "pg":
			u.pg += d
		case "client":
			u.client += d
		}
	}
	u.others = max(0, u.busy-u.rotor-u.pg-u.client)
	return u
}

// othersShare is the share of the machine's CPUs that others took between
// two readings of a meter; -1 when unknown.
func othersShare(from, to cpuUsage) float64 {
	wall := to.wall - from.wall
	if !from.ok || !to.ok || wall <= 0 {
		return -1
	}
	return max(0, float64(to.others-from.others)/(float64(wall)*float64(runtime.NumCPU())))
}

// scan reads every process's CPU time into into (the first scan) and
// always into m.last.
func (m *cpuMeter) scan(into map[int]time.Duration) {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	self := os.Getpid()
	m.mu.Lock()
	defer m.mu.Unlock()
	defer func() {
		m.lastAt = time.Now()
		m.lastBusy, _ = systemBusy()
	}()
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		comm, t, ok := procCPU(d)
		if !ok {
			continue
		}
		if _, seen := m.class[pid]; !seen {
			m.class[pid] = m.classify(pid, self, comm, d)
		}
		if into != nil {
			into[pid] = t
		}
		m.last[pid] = t
	}
}

// classify names the role of a process. PostgreSQL backends of other
// databases (other users' tests) count as others; shared background
// processes (WAL writer, checkpointer, ...) count as PostgreSQL.
func (m *cpuMeter) classify(pid, self int, comm, dir string) string {
	switch {
	case pid == self || comm == "pgbench":
		return "client"
	case pid == m.serverPID || (m.serverPID == 0 && (comm == "rotor" || comm == "server")):
		return "rotor"
	case comm != "postgres":
		return "other"
	case m.dbName == "":
		return "pg"
	}
	cmd, _ := os.ReadFile(filepath.Join(dir, "cmdline")) // #nosec G304 -- /proc/<pid>/cmdline
	line := string(bytes.ReplaceAll(cmd, []byte{0}, []byte{' '}))
	backend := strings.Contains(line, "[local]") || (strings.Contains(line, "(") && strings.Contains(line, ")"))
	if backend && !strings.Contains(line, " "+m.dbName+" ") {
		return "other"
	}
	return "pg"
}

// procCPU reads a process's command name and utime+stime.
func procCPU(dir string) (string, time.Duration, bool) {
	b, err := os.ReadFile(filepath.Join(dir, "stat")) // #nosec G304 -- /proc/<pid>/stat
	if err != nil {
		return "", 0, false
	}
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return "", 0, false
	}
	f := strings.Fields(string(b[end+1:]))
	if len(f) < 13 { // f[0] is field 3 (state); utime and stime are fields 14 and 15
		return "", 0, false
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return "", 0, false
	}
	return string(b[open+1 : end]), time.Duration(ut+st) * clockTick, true
}

// systemBusy is the non-idle CPU time of all CPUs since boot.
func systemBusy() (time.Duration, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, false
	}
	var busy int64
	for i, s := range f[1:9] { // user nice system idle iowait irq softirq steal
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, false
		}
		if i != 3 && i != 4 {
			busy += n
		}
	}
	return time.Duration(busy) * clockTick, true
}
