package main

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/rotorauth/rotor/internal/store/postgres/pgtest"
)

// TestChaosKillAndRestart refreshes from 8 workers while the server is
// killed with SIGKILL and PostgreSQL is restarted, then checks every
// invariant: each refresh token a client received exists, no parent has two
// children, each session's only leaf is its active token, and every worker
// carries on from the last token it holds (retries of lost responses fall in
// the grace window: no false reuse detection, no session revoked).
func TestChaosKillAndRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos test")
	}
	cluster := pgtest.NewCluster(t)
	bin := buildBinary(t)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	base := "http://" + addr
	env := append(os.Environ(), "HTTP_ADDR="+addr, "DATABASE_URL="+cluster.URL, "JWT_KEYS="+writeKeys(t),
		"TOKEN_SECRET=chaos test secret of at least 32 bytes", "LOGIN_RATE_LIMIT=0", "QUIET_ACCESS_LOG=true",
		"LOG_LEVEL=warn", "REFRESH_REUSE_GRACE=30s")
	var proc *exec.Cmd
	launch := func() {
		proc = exec.Command(bin)
		proc.Env = env
		if err := proc.Start(); err != nil {
			t.Fatal(err)
		}
		eventually(t, 20*time.Second, "server up", func() bool {
			st, _, _ := tryCall("GET", base+"/readyz", "")
			return st == 200
		})
	}
	kill := func() {
		_ = proc.Process.Signal(syscall.SIGKILL)
		_, _ = proc.Process.Wait()
	}
	launch()
	t.Cleanup(kill)

	const workers = 8
	current := make([]string, workers)
	for i := range current {
		email := fmt.Sprintf("chaos%d@example.test", i)
		call(t, "POST", base+"/users", `{"email":"`+email+`","password":"chaos password"}`, "")
		_, tok := call(t, "POST", base+"/token", `{"username":"`+email+`","password":"chaos password"}`, "")
		current[i] = tok["refresh_token"].(string)
	}
	var mu sync.Mutex
	received := map[string]bool{}
	var refused []string
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				st, m, err := tryCall("POST", base+"/refresh", `{"refresh_token":"`+current[i]+`"}`)
				switch {
				case err != nil || st == 503:
					time.Sleep(20 * time.Millisecond) // lost or refused: retry the same token
				case st == 200:
					mu.Lock()
					received[m["refresh_token"].(string)] = true
					mu.Unlock()
					current[i] = m["refresh_token"].(string)
				default:
					mu.Lock()
					refused = append(refused, fmt.Sprintf("worker %d: %d %v", i, st, m))
					mu.Unlock()
					return
				}
			}
		}()
	}
	time.Sleep(700 * time.Millisecond)
	kill()
	launch()
	time.Sleep(700 * time.Millisecond)
	cluster.Stop("immediate")
	time.Sleep(300 * time.Millisecond)
	cluster.Start()
	time.Sleep(700 * time.Millisecond)
	kill()
	launch()
	time.Sleep(700 * time.Millisecond)
	stop()
	wg.Wait()
	if len(refused) > 0 {
		t.Fatalf("refreshes refused during chaos: %v", refused)
	}
	for i, rt := range current {
		if st, m := call(t, "POST", base+"/refresh", `{"refresh_token":"`+rt+`"}`, ""); st != 200 {
			t.Fatalf("worker %d cannot carry on after the chaos: %d %v", i, st, m)
		}
	}

	conn, err := pgx.Connect(context.Background(), cluster.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	// A v2 token names its session and generation (docs/contract.md §1.2):
	// every session's received tokens are one chain, at most one token per
	// generation (no branch), and the session's active generation is the
	// last one a client received plus the carry-on rotation above.
	type key struct {
		sid uuid.UUID
		gen uint64
	}
	seen := map[key]string{}
	last := map[uuid.UUID]uint64{}
	for rt := range received {
		raw, err := base64.RawURLEncoding.DecodeString(rt[3:])
		if err != nil || len(raw) != 81 || raw[0] != 2 {
			t.Fatalf("a refresh token a client received is not a v2 token: %v", err)
		}
		k := key{uuid.UUID(raw[1:17]), binary.BigEndian.Uint64(raw[17:25])}
		if other, dup := seen[k]; dup && other != rt {
			t.Fatalf("two tokens of session %s generation %d: a branch", k.sid, k.gen)
		}
		seen[k] = rt
		last[k.sid] = max(last[k.sid], k.gen)
	}
	for sid, gen := range last {
		var stored, count int64
		if err := conn.QueryRow(context.Background(), `SELECT generation, refresh_count FROM sessions WHERE id = $1`, sid).
			Scan(&stored, &count); err != nil {
			t.Fatal(err)
		}
		if uint64(stored) != gen+1 || count != stored {
			t.Errorf("session %s: generation %d (%d rotations), the last received %d plus one carry-on rotation", sid, stored, count, gen)
		}
	}
	checks := map[string]string{
		"a refresh_tokens row (v2 writes none)": `SELECT count(*) FROM refresh_tokens`,
		"a revoked session":                     `SELECT count(*) FROM sessions WHERE revoked_at IS NOT NULL`,
	}
	for what, q := range checks {
		var n int
		if err := conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%s: %d", what, n)
		}
	}
	t.Logf("%d rotations received by clients across two SIGKILLs and a PostgreSQL restart", len(received))
}
