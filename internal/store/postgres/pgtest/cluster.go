package pgtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Cluster is a private PostgreSQL server a test starts and stops itself
// (initdb and pg_ctl on its own port and directory), so stopping it harms
// nothing else on the machine.
type Cluster struct {
	URL  string
	dir  string
	bin  string
	port int
	t    testing.TB
}

// pgBin finds the directory of initdb and pg_ctl.
func pgBin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		return "", fmt.Errorf("initdb not found (install the PostgreSQL server)")
	}
	return filepath.Dir(matches[len(matches)-1]), nil
}

// asPostgres runs a PostgreSQL tool; as root it runs as the postgres user,
// since initdb and postgres refuse to run as root.
func asPostgres(name string, args ...string) *exec.Cmd {
	if u, err := user.Current(); err == nil && u.Uid == "0" {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...) // #nosec G204 -- test helper running PostgreSQL tools
	}
	return exec.Command(name, args...) // #nosec G204 -- test helper running PostgreSQL's own tools
}

// NewCluster initialises and starts a private cluster, or skips (fails
// under REQUIRE_POSTGRES=1) when the server binaries are missing. It is
// stopped and removed when the test ends.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	bin, err := pgBin()
	if err != nil {
		if os.Getenv("REQUIRE_POSTGRES") == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	dir, err := os.MkdirTemp("", "rotor-pg-")
	if err != nil {
		t.Fatal(err)
	}
	if u, err := user.Lookup("postgres"); err == nil {
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		_ = os.Chown(dir, uid, gid)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	c := &Cluster{dir: dir, bin: bin, port: port, t: t,
		URL: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)}
	data := filepath.Join(dir, "data")
	if out, err := asPostgres(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		_ = asPostgres(filepath.Join(bin, "pg_ctl"), "-D", data, "-m", "immediate", "stop").Run()
		_ = os.RemoveAll(dir)
	})
	c.Start()
	return c
}

// Start starts the server and waits until it accepts connections.
func (c *Cluster) Start() {
	c.t.Helper()
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -k %s -c fsync=off", c.port, c.dir)
	cmd := asPostgres(filepath.Join(c.bin, "pg_ctl"), "-D", filepath.Join(c.dir, "data"), "-o", opts,
		"-l", filepath.Join(c.dir, "log"), "-w", "-t", "30", "start")
	if out, err := cmd.CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "log"))
		c.t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", c.port)); err == nil {
			_ = conn.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatal("the private cluster does not accept connections")
}

// Stop stops the server (mode "fast" or "immediate").
func (c *Cluster) Stop(mode string) {
	c.t.Helper()
	cmd := asPostgres(filepath.Join(c.bin, "pg_ctl"), "-D", filepath.Join(c.dir, "data"), "-m", mode, "-w", "stop")
	if out, err := cmd.CombinedOutput(); err != nil {
		c.t.Fatalf("pg_ctl stop: %v\n%s", err, out)
	}
}
