package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rotorauth/rotor/internal/store/postgres/pgtest"
)

// composeEnv reads the rotor service's environment from docker-compose.yml
// (a line-based reading of its simple layout: two-space services, six-space
// variables).
func composeEnv(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env := map[string]string{}
	inRotor, inEnv := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "  ") && !strings.HasPrefix(line, "   ") && strings.HasSuffix(line, ":"):
			inRotor, inEnv = line == "  rotor:", false
		case inRotor && line == "    environment:":
			inEnv = true
		case inEnv && strings.HasPrefix(line, "      ") && !strings.HasPrefix(line, "       "):
			k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
			env[k] = strings.Trim(strings.TrimSpace(v), `"`)
		case inEnv && strings.HasPrefix(line, "    ") && !strings.HasPrefix(line, "     "):
			inEnv = false
		}
	}
	if len(env) < 5 {
		t.Fatalf("found only %v in docker-compose.yml's rotor environment", env)
	}
	return env
}

// TestComposeCommandsOutsideDocker runs what docker-compose.yml runs, minus
// Docker: the keys service's keygen --out (twice: the second keeps the key),
// the rotor service with its environment (database and address swapped for
// the test's), and its healthcheck command.
func TestComposeCommandsOutsideDocker(t *testing.T) {
	pgtest.Require(t, db)
	vars := composeEnv(t)
	for _, want := range []string{"DATABASE_URL", "JWT_KEYS", "TOKEN_SECRET", "BOOTSTRAP_ADMIN_EMAIL"} {
		if vars[want] == "" {
			t.Fatalf("docker-compose.yml sets no %s", want)
		}
	}
	keys := filepath.Join(t.TempDir(), filepath.Base(vars["JWT_KEYS"]))
	for i := 0; i < 2; i++ {
		var out bytes.Buffer
		if err := run(context.Background(), []string{"server", "keygen", "ed25519", "--out", keys}, env(nil), &out, io.Discard); err != nil {
			t.Fatalf("keygen --out: %v", err)
		}
		if i == 1 && !strings.Contains(out.String(), "keeping it") {
			t.Fatalf("second keygen --out did not keep the key: %q", out.String())
		}
	}
	vars["JWT_KEYS"] = keys
	vars["DATABASE_URL"] = db.URL
	in := start(t, vars)
	check := map[string]string{"HTTP_ADDR": strings.TrimPrefix(in.base, "http://")}
	if err := run(context.Background(), []string{"server", "healthcheck"}, env(check), io.Discard, io.Discard); err != nil {
		t.Fatalf("healthcheck: %v", err)
	}
	st, _ := call(t, "POST", in.base+"/token", `{"username":"`+vars["BOOTSTRAP_ADMIN_EMAIL"]+`","password":"`+vars["BOOTSTRAP_ADMIN_PASSWORD"]+`"}`, "")
	if st != 200 {
		t.Fatalf("bootstrap admin login: %d", st)
	}
	if err := run(context.Background(), []string{"server", "healthcheck"}, env(map[string]string{"HTTP_ADDR": "127.0.0.1:1"}), io.Discard, io.Discard); err == nil {
		t.Fatal("healthcheck of nothing succeeded")
	}
}
