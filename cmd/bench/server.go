package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/rotorauth/rotor/internal/harness"
)

// server is a Rotor process the benchmark started.
type server struct {
	cmd     *exec.Cmd
	base    string
	logPath string
	done    chan struct{}
	waitErr error
}

// startServer builds ./cmd/server into dir, starts it on a free loopback
// port with databaseURL ("" for the in-memory store) and waits for /readyz.
func startServer(ctx context.Context, root, dir, databaseURL, adminEmail, adminPassword string) (*server, error) {
	bin := filepath.Join(dir, "rotor")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/server") // #nosec G204 -- bin is in our temporary directory
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build ./cmd/server: %v\n%s", err, out)
	}
	keys, err := exec.CommandContext(ctx, bin, "keygen").Output() // #nosec G204 -- the binary this benchmark just built
	if err != nil {
		return nil, fmt.Errorf("rotor keygen: %w", err)
	}
	keyPath := filepath.Join(dir, "jwt.pem")
	if err := os.WriteFile(keyPath, keys, 0o600); err != nil {
		return nil, err
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	addr, err := harness.FreePort()
	if err != nil {
		return nil, err
	}
	env := harness.EnvironWithout(harness.ServerVariables)
	env = append(env, "HTTP_ADDR="+addr, "JWT_KEYS="+keyPath,
		"TOKEN_SECRET="+base64.RawURLEncoding.EncodeToString(secret),
		"LOGIN_RATE_LIMIT=0", "QUIET_ACCESS_LOG=true", "LOG_LEVEL=warn",
		"BOOTSTRAP_ADMIN_EMAIL="+adminEmail, "BOOTSTRAP_ADMIN_PASSWORD="+adminPassword)
	if databaseURL != "" {
		env = append(env, "DATABASE_URL="+databaseURL)
	}
	cmd := exec.Command(bin) // #nosec G204 -- the binary this benchmark just built
	cmd.Env = env
	return launch(ctx, cmd, "server", "http://"+addr, filepath.Join(dir, "server.log"), 60*time.Second)
}

// launch starts cmd with its output in logPath and waits until base answers
// GET /readyz, or until it exits or timeout passes (then it is stopped).
func launch(ctx context.Context, cmd *exec.Cmd, what, base, logPath string, timeout time.Duration) (*server, error) {
	s := &server{cmd: cmd, base: base, logPath: logPath, done: make(chan struct{})}
	logf, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("start %s: %w", what, err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		_ = logf.Close()
		close(s.done)
	}()
	c := newClient(s.base, 1)
	defer c.close()
	alive := func() error {
		select {
		case <-s.done:
			return fmt.Errorf("%s exited (%v):\n%s", what, s.waitErr, s.logTail())
		default:
			return nil
		}
	}
	if err := c.ready(ctx, timeout, alive); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// stop sends SIGTERM (graceful shutdown), then kills after 10 s.
func (s *server) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// logTail returns the end of the server's log.
func (s *server) logTail() string {
	b, _ := os.ReadFile(s.logPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(bytes.TrimSpace(b))
}

// moduleRoot finds the directory of Rotor's go.mod from the working
// directory upwards; the server is built and bench/pgbench read from there.
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
			return "", errors.New("run the benchmark inside the Rotor module (go run ./cmd/bench)")
		}
		dir = parent
	}
}
