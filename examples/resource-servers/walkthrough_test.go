package resourceservers

// TestWalkthrough runs README.md's walkthrough with the real binaries: Rotor
// (built from ../../cmd/server, or $ROTOR_BINARY), the bank and the
// retirement portal. With TEST_DATABASE_URL, Rotor runs on PostgreSQL and
// the key rotation (two restarts) is part of it; without, it runs in memory
// and the rotation is skipped (REQUIRE_POSTGRES=1 makes that a failure).

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

type buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// proc is one running binary.
type proc struct {
	t    *testing.T
	name string
	bin  string
	env  []string
	base string
	cmd  *exec.Cmd
	out  *buffer
	done chan struct{}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// start runs bin with env until health answers 200.
func start(t *testing.T, name, bin, addr, health string, env ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, bin: bin, base: "http://" + addr,
		env: append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)}
	p.launch(health)
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.out.String())
		}
	})
	return p
}

func (p *proc) launch(health string) {
	p.t.Helper()
	p.cmd = exec.Command(p.bin)
	p.cmd.Env = p.env
	p.out = &buffer{}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.done = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); close(done) }(p.cmd, p.done)
	deadline := time.Now().Add(40 * time.Second)
	for {
		select {
		case <-p.done:
			p.t.Fatalf("%s exited:\n%s", p.name, p.out.String())
		default:
		}
		if resp, err := http.Get(p.base + health); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s not healthy in 40 s:\n%s", p.name, p.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *proc) stop() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.cmd = nil
}

// restart runs the binary again with one variable changed.
func (p *proc) restart(health, name, value string) {
	p.t.Helper()
	p.stop()
	for i, kv := range p.env {
		if strings.HasPrefix(kv, name+"=") {
			p.env[i] = name + "=" + value
		}
	}
	p.launch(health)
}

func build(t *testing.T, dir, pkg string) string {
	t.Helper()
	out := filepath.Join(dir, filepath.Base(pkg))
	if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

type tokens struct {
	Access    string `json:"access_token"`
	Refresh   string `json:"refresh_token"`
	SessionID string `json:"session_id"`
}

func call(t *testing.T, method, u, bearer string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, u, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, u, err, b)
		}
	}
	return resp.StatusCode
}

func scratchDB(t *testing.T) string {
	t.Helper()
	base := os.Getenv("TEST_DATABASE_URL")
	if base == "" {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("TEST_DATABASE_URL: %v", err)
	}
	defer conn.Close(ctx)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "rotor_example_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
	u, _ := url.Parse(base)
	u.Path = "/" + name
	q := u.Query()
	q.Set("pool_max_conns", "4")
	u.RawQuery = q.Encode()
	return u.String()
}

func kidOf(t *testing.T, jwt string) string {
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(jwt, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	_ = json.Unmarshal(b, &h)
	return h["kid"].(string)
}

func TestWalkthrough(t *testing.T) {
	dir := t.TempDir()
	rotorBin := os.Getenv("ROTOR_BINARY")
	if rotorBin == "" {
		rotorBin = build(t, dir, "../../cmd/server")
	}
	bankBin, retireBin := build(t, dir, "./bank"), build(t, dir, "./retirement")
	keygen := func(name string) string {
		p := filepath.Join(dir, name)
		if b, err := exec.Command(rotorBin, "keygen", "ed25519", "--out", p).CombinedOutput(); err != nil {
			t.Fatalf("keygen: %v\n%s", err, b)
		}
		data, _ := os.ReadFile(p)
		return string(data)
	}
	writeKeys := func(name string, pems ...string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(strings.Join(pems, "")), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	oldKey, newKey := keygen("old.pem"), keygen("new.pem")

	db := scratchDB(t)
	if db == "" && os.Getenv("REQUIRE_POSTGRES") == "1" {
		t.Fatal("REQUIRE_POSTGRES=1 but TEST_DATABASE_URL is not set")
	}
	addr := freeAddr(t)
	B := "http://" + addr
	env := []string{"HTTP_ADDR=" + addr, "JWT_ISSUER=" + B, "LOG_FORMAT=text", "QUIET_ACCESS_LOG=true",
		"LOGIN_RATE_LIMIT=0", "REFRESH_REUSE_GRACE=0", "JWT_KEYS=" + writeKeys("keys-1.pem", oldKey),
		"BOOTSTRAP_ADMIN_EMAIL=admin@example.com", "BOOTSTRAP_ADMIN_PASSWORD=change-me-now"}
	if db != "" {
		env = append(env, "DATABASE_URL="+db, "TOKEN_SECRET=a shared token secret of 32+ bytes!")
	}
	rotor := start(t, "rotor", rotorBin, addr, "/healthz", env...)

	login := func(email, password string) tokens {
		t.Helper()
		var tk tokens
		if st := call(t, "POST", B+"/token", "", map[string]string{"username": email, "password": password}, &tk); st != 200 {
			t.Fatalf("login %s: %d", email, st)
		}
		return tk
	}
	admin := login("admin@example.com", "change-me-now")
	var client struct {
		Secret string `json:"client_secret"`
	}
	if st := call(t, "POST", B+"/admin/clients", admin.Access, map[string]any{"client_id": "resource-servers", "type": "confidential", "roles": []string{"introspect"}}, &client); st != 201 {
		t.Fatalf("create the resource servers' client: %d", st)
	}
	for _, u := range []map[string]any{
		{"email": "ada@example.com", "password": "ada-password", "roles": []string{}},
		{"email": "bob@example.com", "password": "bob-password", "roles": []string{}},
	} {
		if st := call(t, "POST", B+"/admin/users", admin.Access, u, nil); st != 201 {
			t.Fatalf("create %v: %d", u["email"], st)
		}
	}
	rsEnv := []string{"ROTOR_ISSUER=" + B, "ROTOR_CLIENT_ID=resource-servers", "ROTOR_CLIENT_SECRET=" + client.Secret, "KEY_REFRESH_INTERVAL=1s"}
	bankAddr, retireAddr := freeAddr(t), freeAddr(t)
	bank := start(t, "bank", bankBin, bankAddr, "/healthz", append(rsEnv, "ADDR="+bankAddr)...)
	retire := start(t, "retirement", retireBin, retireAddr, "/healthz", append(rsEnv, "ADDR="+retireAddr)...)
	routes := []string{bank.base + "/accounts", retire.base + "/plan"}
	status := func(u, token string) int { return call(t, "GET", u, token, nil, nil) }
	acceptedByBoth := func(what, token string) {
		t.Helper()
		for _, u := range routes {
			if st := status(u, token); st != 200 {
				t.Fatalf("%s: %s answered %d", what, u, st)
			}
		}
	}
	refusedByBoth := func(what, token string) {
		t.Helper()
		start := time.Now()
		for _, u := range routes {
			for status(u, token) != 401 {
				if time.Since(start) > 3*time.Second {
					t.Fatalf("%s: %s still accepts it after 3 s", what, u)
				}
				time.Sleep(25 * time.Millisecond)
			}
		}
		t.Logf("%s: refused by both after %s", what, time.Since(start).Round(time.Millisecond))
	}

	// One login works at both.
	ada := login("ada@example.com", "ada-password")
	acceptedByBoth("ada's token", ada.Access)
	if st := status(bank.base+"/admin/ledger", ada.Access); st != 403 {
		t.Errorf("ada at /admin/ledger: %d", st)
	}
	if st := status(bank.base+"/admin/ledger", admin.Access); st != 200 {
		t.Errorf("admin at /admin/ledger: %d", st)
	}
	// Logout.
	if st := call(t, "POST", B+"/logout", ada.Access, nil, nil); st != 204 {
		t.Fatalf("logout: %d", st)
	}
	refusedByBoth("logout", ada.Access)
	// Admin revocation.
	bob := login("bob@example.com", "bob-password")
	acceptedByBoth("bob's token", bob.Access)
	if st := call(t, "DELETE", B+"/admin/sessions/"+bob.SessionID, admin.Access, nil, nil); st != 204 {
		t.Fatalf("admin revocation: %d", st)
	}
	refusedByBoth("admin revocation", bob.Access)
	// Reuse.
	ada = login("ada@example.com", "ada-password")
	var next tokens
	if st := call(t, "POST", B+"/refresh", "", map[string]string{"refresh_token": ada.Refresh}, &next); st != 200 {
		t.Fatalf("refresh: %d", st)
	}
	acceptedByBoth("the rotated token", next.Access)
	if st := call(t, "POST", B+"/refresh", "", map[string]string{"refresh_token": ada.Refresh}, nil); st != 400 {
		t.Fatalf("replaying the old refresh token: %d, want 400 (reuse)", st)
	}
	refusedByBoth("reuse", next.Access)

	if db == "" {
		t.Log("TEST_DATABASE_URL is not set: the key rotation (Rotor restarts) is skipped")
		return
	}
	// Key rotation: new key first, old kept.
	before := login("bob@example.com", "bob-password")
	rotor.restart("/healthz", "JWT_KEYS", writeKeys("keys-2.pem", newKey, oldKey))
	after := login("bob@example.com", "bob-password")
	if kidOf(t, after.Access) == kidOf(t, before.Access) {
		t.Fatal("the rotated Rotor still signs with the old key")
	}
	acceptedByBoth("a token of the new key", after.Access)
	acceptedByBoth("a token of the old key, still published", before.Access)
	// Then the old key removed.
	rotor.restart("/healthz", "JWT_KEYS", writeKeys("keys-3.pem", newKey))
	refusedByBoth("a token of the removed key", before.Access)
	acceptedByBoth("a token of the new key after the removal", after.Access)
	if !strings.Contains(bank.out.String(), "key set changed") || !strings.Contains(retire.out.String(), "key set changed") {
		t.Error("the resource servers did not log the key change")
	}
}
