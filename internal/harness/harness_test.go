package harness

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
)

// TestServerVariablesMatchTheServer reads every quoted upper-case name
// cmd/server/config.go passes to its getenv helpers: a variable the server
// gains must be added to ServerVariables, or a tool would inherit it.
func TestServerVariablesMatchTheServer(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "..", "cmd", "server", "config.go"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`\b(?:getenv|str|dur|boolean)\("([A-Z][A-Z0-9_]+)"`)
	var read []string
	for _, m := range re.FindAllStringSubmatch(string(src), -1) {
		if !slices.Contains(read, m[1]) {
			read = append(read, m[1])
		}
	}
	if len(read) < 20 {
		t.Fatalf("found only %d variables in config.go (%v): the pattern no longer matches its helpers", len(read), read)
	}
	for _, v := range read {
		if !slices.Contains(ServerVariables, v) {
			t.Errorf("cmd/server reads %s but harness.ServerVariables lacks it", v)
		}
	}
	for _, v := range ServerVariables {
		if !slices.Contains(read, v) {
			t.Errorf("harness.ServerVariables lists %s, which cmd/server/config.go no longer reads", v)
		}
	}
}

func TestEnvironWithout(t *testing.T) {
	t.Setenv("ROTOR_HARNESS_A", "1")
	t.Setenv("ROTOR_HARNESS_B", "2")
	env := EnvironWithout([]string{"ROTOR_HARNESS_A"})
	if slices.Contains(env, "ROTOR_HARNESS_A=1") || !slices.Contains(env, "ROTOR_HARNESS_B=2") {
		t.Fatalf("EnvironWithout kept or dropped the wrong variables")
	}
}
