package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

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
	for rt := range received {
		raw, _ := base64.RawURLEncoding.DecodeString(rt[3:])
		var n int
		if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM refresh_tokens WHERE selector = $1`, raw[:16]).Scan(&n); err != nil || n != 1 {
			t.Fatalf("a refresh token a client received is not stored (%d, %v)", n, err)
		}
	}
	checks := map[string]string{
		"a parent with two children": `SELECT count(*) FROM (SELECT parent_selector FROM refresh_tokens
			WHERE parent_selector IS NOT NULL GROUP BY 1 HAVING count(*) > 1) x`,
		"a session with two leaves": `SELECT count(*) FROM (SELECT session_id FROM refresh_tokens t
			WHERE NOT EXISTS (SELECT 1 FROM refresh_tokens c WHERE c.parent_selector = t.selector)
			GROUP BY 1 HAVING count(*) > 1) x`,
		"a leaf that is not the session's active token": `SELECT count(*) FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
			WHERE NOT EXISTS (SELECT 1 FROM refresh_tokens c WHERE c.parent_selector = t.selector)
			AND t.selector <> s.active_selector`,
		"a revoked session": `SELECT count(*) FROM sessions WHERE revoked_at IS NOT NULL`,
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
