// Package arch holds tests of the repository's shape: dependencies point
// inward (STYLE: api → tokens ← store/*; only cmd/server wires them).
package arch

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// imports returns the imports of the non-test Go files of the package in
// dir (relative to the module root), each with a file that has it.
func imports(t *testing.T, dir string) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", dir, "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Go files in %s (%v)", dir, err)
	}
	out := map[string]string{}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f) // #nosec G304 -- the repository's own files
		if err != nil {
			t.Fatal(err)
		}
		af, err := parser.ParseFile(fset, f, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			out[p] = filepath.Base(f)
		}
	}
	return out
}

// stdlib reports whether an import path is the standard library's (no dot
// in its first element).
func stdlib(p string) bool { return !strings.Contains(strings.SplitN(p, "/", 2)[0], ".") }

func TestDomainImportsOnlyStdlibJWTAndUUID(t *testing.T) {
	allowed := map[string]bool{"github.com/golang-jwt/jwt/v5": true, "github.com/google/uuid": true}
	for p, file := range imports(t, "internal/tokens") {
		if !stdlib(p) && !allowed[p] {
			t.Errorf("internal/tokens/%s imports %s: the domain imports only the standard library, golang-jwt/jwt/v5 and google/uuid", file, p)
		}
		if p == "net/http" || p == "database/sql" {
			t.Errorf("internal/tokens/%s imports %s: the domain knows neither HTTP nor SQL", file, p)
		}
	}
}

func TestAPIImportsNoStore(t *testing.T) {
	for p, file := range imports(t, "internal/api") {
		if strings.HasPrefix(p, "github.com/rotorauth/rotor/internal/store") || strings.HasPrefix(p, "github.com/jackc/") {
			t.Errorf("internal/api/%s imports %s: the HTTP layer talks to the domain, never to a store", file, p)
		}
	}
}

func TestStoresImportNoAPI(t *testing.T) {
	for _, dir := range []string{"internal/store/memory", "internal/store/postgres"} {
		for p, file := range imports(t, dir) {
			if strings.HasPrefix(p, "github.com/rotorauth/rotor/internal/api") || p == "net/http" {
				t.Errorf("%s/%s imports %s: stores know nothing of HTTP", dir, file, p)
			}
		}
	}
}

func TestVerifyPackageImportsNothingInternal(t *testing.T) {
	if _, err := os.Stat(filepath.Join("..", "..", "verify")); err != nil {
		t.Skip("no verify package")
	}
	for p, file := range imports(t, "verify") {
		if strings.Contains(p, "/internal/") {
			t.Errorf("verify/%s imports %s: a public package cannot depend on internal ones", file, p)
		}
	}
}
