package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/rotorauth/rotor/internal/harness"
)

// buildServer runs `go build ./cmd/server` in the Rotor module into dir, so
// every soak runs the code of the working tree as it is now.
func buildServer(ctx context.Context, dir string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "server")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/server") // #nosec G204 -- bin is in our temporary directory
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/server: %v\n%s", err, out)
	}
	return bin, nil
}

// moduleRoot finds the directory of Rotor's go.mod from the working
// directory upwards.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod")) // #nosec G304 -- go.mod of the working directory or a parent
		if err == nil && bytes.Contains(b, []byte("module github.com/rotorauth/rotor\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run the soak inside the Rotor module (go run ./cmd/soak), or give -server")
		}
		dir = parent
	}
}

// cluster is the two server processes of one deployment.
type cluster struct {
	procs         [2]*process
	adminEmail    string
	adminPassword string
	stopOnce      sync.Once
}

// process is one server the soak started.
type process struct {
	name    string // "A" or "B"
	base    string // http://127.0.0.1:port
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	waitErr error
}

// startCluster writes a signing key and a token secret into dir and starts
// instances A and B of bin on databaseURL, one after the other (each
// migrates at start), each with a pool of 8 connections.
func startCluster(ctx context.Context, bin, dir, databaseURL string, o options) (*cluster, error) {
	keyPath := filepath.Join(dir, "jwt-keys.pem")
	keygen := exec.CommandContext(ctx, bin, "keygen", "ed25519", "--out", keyPath) // #nosec G204 -- the server binary this command built
	if out, err := keygen.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%s keygen: %v\n%s", bin, err, out)
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	pool, err := withPoolSize(databaseURL, 8)
	if err != nil {
		return nil, err
	}
	c := &cluster{adminEmail: "soak-admin@example.com", adminPassword: rand.Text()}
	vars := []string{
		"DATABASE_URL=" + pool, "JWT_KEYS=" + keyPath,
		"TOKEN_SECRET=" + base64.RawURLEncoding.EncodeToString(secret),
		"LOGIN_RATE_LIMIT=0", "QUIET_ACCESS_LOG=true",
		"BOOTSTRAP_ADMIN_EMAIL=" + c.adminEmail, "BOOTSTRAP_ADMIN_PASSWORD=" + c.adminPassword,
	}
	if o.grace > 0 {
		vars = append(vars, "REFRESH_REUSE_GRACE="+o.grace.String())
	}
	for i, name := range []string{"A", "B"} {
		p, err := startProcess(ctx, name, bin, dir, vars)
		if err != nil {
			c.stop()
			return nil, err
		}
		c.procs[i] = p
	}
	return c, nil
}

// withPoolSize sets pool_max_conns in a PostgreSQL URL.
func withPoolSize(databaseURL string, n int) (string, error) {
	u, err := url.Parse(databaseURL)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("pool_max_conns", fmt.Sprint(n))
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// startProcess starts one instance on a free loopback port, its output in
// dir/server-<name>.log, and waits until /readyz answers 200.
func startProcess(ctx context.Context, name, bin, dir string, vars []string) (*process, error) {
	addr, err := harness.FreePort()
	if err != nil {
		return nil, err
	}
	p := &process{name: name, base: "http://" + addr, logPath: filepath.Join(dir, "server-"+name+".log"), done: make(chan struct{})}
	logf, err := os.Create(p.logPath)
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command(bin) // #nosec G204 -- the server binary
	p.cmd.Env = append(harness.EnvironWithout(harness.ServerVariables), append(vars, "HTTP_ADDR="+addr)...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("start instance %s: %w", name, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		_ = logf.Close()
		close(p.done)
	}()
	if err := p.waitReady(ctx, 60*time.Second); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// waitReady polls /readyz until it answers 200, the process exits or
// timeout passes.
func (p *process) waitReady(ctx context.Context, timeout time.Duration) error {
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-p.done:
			return fmt.Errorf("instance %s exited (%v):\n%s", p.name, p.waitErr, p.logTail())
		default:
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+"/readyz", nil)
		if err != nil {
			return err
		}
		if resp, err := hc.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("instance %s: /readyz not 200 after %s:\n%s", p.name, timeout, p.logTail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// exited reports whether the process has ended, and how.
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// stop sends SIGTERM (graceful shutdown), and SIGKILL after 15 s.
func (p *process) stop() {
	if p == nil {
		return
	}
	if done, _ := p.exited(); done {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// logTail returns the last lines of the process's output, leaving out the
// access log lines of 4xx answers (refusals are the soak's daily bread).
func (p *process) logTail() string {
	b, _ := os.ReadFile(p.logPath)
	var keep [][]byte
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		if bytes.Contains(line, []byte(`"msg":"request"`)) && bytes.Contains(line, []byte(`"status":4`)) {
			continue
		}
		keep = append(keep, line)
	}
	const tailLines = 40
	if len(keep) > tailLines {
		keep = keep[len(keep)-tailLines:]
	}
	return string(bytes.Join(keep, []byte("\n")))
}

// stop stops both instances, concurrently.
func (c *cluster) stop() {
	c.stopOnce.Do(func() {
		var wg sync.WaitGroup
		for _, p := range c.procs {
			if p != nil {
				wg.Add(1)
				go func() { defer wg.Done(); p.stop() }()
			}
		}
		wg.Wait()
	})
}

// printTails writes the end of both instances' logs, and how they exited.
func (c *cluster) printTails(w io.Writer) {
	for _, p := range c.procs {
		if p == nil {
			continue
		}
		state := "running"
		if done, err := p.exited(); done {
			state = fmt.Sprintf("exited: %v", err)
			if err == nil {
				state = "exited: status 0"
			}
		}
		fmt.Fprintf(w, "\n--- instance %s (%s), end of its log:\n%s\n", p.name, state, p.logTail())
	}
}
