package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/rotorauth/rotor/internal/store/postgres/pgtest"
)

// composeService reads the rotor service's environment and bind mounts
// (container path → path from this package) from docker-compose.yml: a
// line-based reading of its simple layout (two-space services, four-space
// keys, six-space variables and volumes; comment lines skipped). Values
// are interpolated as compose does for ${NAME:-default} and ${NAME}.
func composeService(t *testing.T) (env, mounts map[string]string) {
	t.Helper()
	f, err := os.Open("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env, mounts = map[string]string{}, map[string]string{}
	inRotor, section := false, ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if trimmed := strings.TrimSpace(line); trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		switch {
		case !strings.HasPrefix(line, " "):
			inRotor, section = false, ""
		case strings.HasPrefix(line, "  ") && !strings.HasPrefix(line, "   ") && strings.HasSuffix(line, ":"):
			inRotor, section = line == "  rotor:", ""
		case inRotor && strings.HasPrefix(line, "    ") && !strings.HasPrefix(line, "     "):
			section = strings.TrimSuffix(strings.TrimSpace(line), ":")
		case inRotor && section == "environment" && strings.HasPrefix(line, "      ") && !strings.HasPrefix(line, "       "):
			k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
			env[k] = composeInterpolate(strings.Trim(strings.TrimSpace(v), `"`))
		case inRotor && section == "volumes" && strings.HasPrefix(strings.TrimSpace(line), "- ./"):
			parts := strings.Split(strings.TrimPrefix(strings.TrimSpace(line), "- ./"), ":")
			if len(parts) >= 2 {
				mounts[parts[1]] = filepath.Join("../..", parts[0])
			}
		}
	}
	if len(env) < 5 {
		t.Fatalf("found only %v in docker-compose.yml's rotor environment", env)
	}
	return env, mounts
}

var composeVar = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}`)

// composeInterpolate expands ${NAME:-default} and ${NAME} from this
// process's environment, as docker compose does from the shell's.
func composeInterpolate(v string) string {
	return composeVar.ReplaceAllStringFunc(v, func(m string) string {
		sub := composeVar.FindStringSubmatch(m)
		if val := os.Getenv(sub[1]); val != "" {
			return val
		}
		return sub[2]
	})
}

// TestComposeCommandsOutsideDocker runs what docker-compose.yml runs, minus
// Docker: the keys service's keygen --out (twice: the second keeps the key),
// the rotor service with its environment (database and address swapped for
// the test's), and its healthcheck command.
func TestComposeCommandsOutsideDocker(t *testing.T) {
	pgtest.Require(t, db)
	vars, mounts := composeService(t)
	for _, want := range []string{"DATABASE_URL", "JWT_KEYS", "TOKEN_SECRET", "BOOTSTRAP_ADMIN_EMAIL", "CLIENTS_FILE"} {
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
	vars["DATABASE_URL"] = smallPool(t, db.URL)
	// CLIENTS_FILE names the container's path of a file bind-mounted from
	// the repository.
	clientsFile, ok := mounts[vars["CLIENTS_FILE"]]
	if !ok {
		t.Fatalf("CLIENTS_FILE %s is not bind-mounted into the rotor service (mounts %v)", vars["CLIENTS_FILE"], mounts)
	}
	vars["CLIENTS_FILE"] = clientsFile
	in := start(t, vars)
	check := map[string]string{"HTTP_ADDR": strings.TrimPrefix(in.base, "http://")}
	if err := run(context.Background(), []string{"server", "healthcheck"}, env(check), io.Discard, io.Discard); err != nil {
		t.Fatalf("healthcheck: %v", err)
	}
	st, _ := call(t, "POST", in.base+"/token", `{"username":"`+vars["BOOTSTRAP_ADMIN_EMAIL"]+`","password":"`+vars["BOOTSTRAP_ADMIN_PASSWORD"]+`"}`, "")
	if st != 200 {
		t.Fatalf("bootstrap admin login: %d", st)
	}
	composeClients(t, in, clientsFile, vars)
	if err := run(context.Background(), []string{"server", "healthcheck"}, env(map[string]string{"HTTP_ADDR": "127.0.0.1:1"}), io.Discard, io.Discard); err == nil {
		t.Fatal("healthcheck of nothing succeeded")
	}
}

// composeClients checks the clients of compose's clients file on the
// running instance: each confidential client authenticates with the secret
// its secret_env names in compose's environment, and one with role
// introspect reads the revocation feed and introspects with its token.
func composeClients(t *testing.T, in *instance, path string, vars map[string]string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Clients []struct {
			ID        string   `json:"client_id"`
			Type      string   `json:"type"`
			Roles     []string `json:"roles"`
			Secret    string   `json:"secret"`
			SecretEnv string   `json:"secret_env"`
		} `json:"clients"`
	}
	if err := json.Unmarshal(b, &file); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	resourceServer := false
	for _, c := range file.Clients {
		if c.Type != "confidential" {
			continue
		}
		if c.Secret != "" {
			t.Errorf("client %s: a secret written into the committed clients file; use secret_env", c.ID)
		}
		secret := vars[c.SecretEnv]
		if secret == "" {
			t.Fatalf("client %s: docker-compose.yml sets no %s", c.ID, c.SecretEnv)
		}
		form := url.Values{"grant_type": {"client_credentials"}}
		req, err := http.NewRequest("POST", in.base+"/token", strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(url.QueryEscape(c.ID), url.QueryEscape(secret))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		err = json.NewDecoder(resp.Body).Decode(&tok)
		resp.Body.Close()
		if resp.StatusCode != 200 || err != nil || tok.AccessToken == "" {
			t.Fatalf("client %s: client_credentials with compose's secret: %d %v", c.ID, resp.StatusCode, err)
		}
		if !slices.Contains(c.Roles, "introspect") {
			continue
		}
		resourceServer = true
		if st, _ := call(t, "GET", in.base+"/revocations", "", tok.AccessToken); st != 200 {
			t.Errorf("client %s: GET /revocations: %d", c.ID, st)
		}
		intro, err := http.NewRequest("POST", in.base+"/introspect", strings.NewReader(url.Values{"token": {tok.AccessToken}}.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		intro.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		intro.SetBasicAuth(url.QueryEscape(c.ID), url.QueryEscape(secret))
		resp, err = http.DefaultClient.Do(intro)
		if err != nil {
			t.Fatal(err)
		}
		var active struct {
			Active   bool   `json:"active"`
			ClientID string `json:"client_id"`
		}
		err = json.NewDecoder(resp.Body).Decode(&active)
		resp.Body.Close()
		if resp.StatusCode != 200 || err != nil || !active.Active || active.ClientID != c.ID {
			t.Errorf("client %s: introspection of its own token: %d %+v %v", c.ID, resp.StatusCode, active, err)
		}
	}
	if !resourceServer {
		t.Errorf("%s has no confidential client with role introspect for resource servers", path)
	}
}
