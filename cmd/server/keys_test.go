package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// kidOf reads the kid from a JWT's header.
func kidOf(t *testing.T, jwt string) string {
	t.Helper()
	h, err := base64.RawURLEncoding.DecodeString(strings.Split(jwt, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var hdr map[string]any
	if err := json.Unmarshal(h, &hdr); err != nil {
		t.Fatal(err)
	}
	return hdr["kid"].(string)
}

// TestKeyRotation rotates the signing key the documented way: a new key is
// put first in JWT_KEYS and the old one kept after it. Tokens signed by the
// old key stay valid until they expire; new tokens use the new key; both are
// published; dropping the old key ends its tokens.
func TestKeyRotation(t *testing.T) {
	dir := t.TempDir()
	var oldKey, newKey bytes.Buffer
	if err := keygen("ed25519", &oldKey); err != nil {
		t.Fatal(err)
	}
	if err := keygen("ed25519", &newKey); err != nil {
		t.Fatal(err)
	}
	write := func(name string, pems ...[]byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, bytes.Join(pems, nil), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	vars := func(keys string) map[string]string {
		return map[string]string{"JWT_KEYS": keys, "TOKEN_SECRET": "a shared token secret of 32+ bytes!", "QUIET_ACCESS_LOG": "true",
			"BOOTSTRAP_ADMIN_EMAIL": "k@example.test", "BOOTSTRAP_ADMIN_PASSWORD": "key password"}
	}
	login := func(base string) string {
		st, tok := call(t, "POST", base+"/token", `{"username":"k@example.test","password":"key password"}`, "")
		if st != 200 {
			t.Fatalf("login %d", st)
		}
		return tok["access_token"].(string)
	}

	before := start(t, vars(write("old.pem", oldKey.Bytes())))
	oldToken := login(before.base)
	oldKid := kidOf(t, oldToken)

	rotated := start(t, vars(write("rotated.pem", newKey.Bytes(), oldKey.Bytes())))
	if st, _ := call(t, "GET", rotated.base+"/me", "", oldToken); st != 200 {
		t.Fatalf("a token of the old key was refused after rotation: %d", st)
	}
	newToken := login(rotated.base)
	if kidOf(t, newToken) == oldKid {
		t.Fatal("after rotation new tokens are still signed with the old key")
	}
	_, jwks := call(t, "GET", rotated.base+"/.well-known/jwks.json", "", "")
	keys := jwks["keys"].([]any)
	if len(keys) != 2 || keys[0].(map[string]any)["kid"] != kidOf(t, newToken) || keys[1].(map[string]any)["kid"] != oldKid {
		t.Fatalf("JWKS after rotation: %v", jwks)
	}

	retired := start(t, vars(write("new-only.pem", newKey.Bytes())))
	if st, _ := call(t, "GET", retired.base+"/me", "", oldToken); st != 401 {
		t.Fatalf("a token of a removed key was accepted: %d", st)
	}
	if st, _ := call(t, "GET", retired.base+"/me", "", newToken); st != 200 {
		t.Fatalf("a token of the current key was refused: %d", st)
	}
}
