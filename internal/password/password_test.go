package password

import (
	"strings"
	"testing"
)

func TestArgon2idRoundTrip(t *testing.T) {
	h := Argon2id{Params: OWASP}
	enc, err := h.Hash("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q does not carry the OWASP parameters", enc)
	}
	if ok, err := h.Verify(enc, "correct horse battery staple"); err != nil || !ok {
		t.Fatalf("right password refused: %v %v", ok, err)
	}
	if ok, _ := h.Verify(enc, "correct horse battery stapler"); ok {
		t.Fatal("wrong password accepted")
	}
}

func TestHashesAreSalted(t *testing.T) {
	h := Argon2id{Params: Params{Memory: 64, Time: 1, Threads: 1}}
	a, _ := h.Hash("same password")
	b, _ := h.Hash("same password")
	if a == b {
		t.Fatal("two hashes of one password are equal: no salt")
	}
}

func TestVerifyRefusesMalformedHashes(t *testing.T) {
	h := Argon2id{Params: OWASP}
	for _, enc := range []string{"", "plain", "$2a$12$abc", "$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"} {
		if ok, err := h.Verify(enc, "whatever"); ok || err == nil {
			t.Errorf("Verify(%q) = %v, %v; want false and an error", enc, ok, err)
		}
	}
}
