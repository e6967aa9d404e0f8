package main

import (
	"context"
	"encoding/json"
	"html"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// chromium finds Debian's chromium, or skips (fails under
// REQUIRE_BROWSER=1, as .ci/run sets).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("REQUIRE_BROWSER") == "1" {
		t.Fatal("no chromium on PATH (REQUIRE_BROWSER=1); apt-get install chromium")
	}
	t.Skip("no chromium on PATH: apt-get install chromium to run the browser test")
	return ""
}

func headless(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v", args, err)
	}
	return out
}

var resultRE = regexp.MustCompile(`(?s)<pre id="result">(.*?)</pre>`)

// TestSPAInHeadlessChromium drives examples/spa in a real browser against a
// real server in browser mode: log in (refresh token in an HttpOnly
// __Host- cookie, not in the body), /me, refresh, two tabs refreshing at the
// same moment (both stay logged in), log out. It saves a screenshot.
func TestSPAInHeadlessChromium(t *testing.T) {
	bin := chromium(t)
	spa := httptest.NewServer(http.FileServer(http.Dir("../../examples/spa")))
	defer spa.Close()
	_, spaPort, _ := net.SplitHostPort(spa.Listener.Addr().String())
	origin := "http://localhost:" + spaPort

	in := start(t, map[string]string{
		"REFRESH_COOKIE": "true", "CORS_ALLOWED_ORIGINS": origin, "QUIET_ACCESS_LOG": "true",
		"BOOTSTRAP_ADMIN_EMAIL": "spa@example.test", "BOOTSTRAP_ADMIN_PASSWORD": "spa password 1",
	})
	_, apiPort, _ := net.SplitHostPort(strings.TrimPrefix(in.base, "http://"))
	page := origin + "/index.html?api=http://localhost:" + apiPort + "&auto=spa@example.test:spa%20password%201"

	dom := headless(t, bin, "--virtual-time-budget=20000", "--dump-dom", page)
	m := resultRE.FindSubmatch(dom)
	if m == nil {
		t.Fatalf("the page wrote no result; DOM:\n%s", dom)
	}
	var steps map[string]any
	if err := json.Unmarshal([]byte(html.UnescapeString(string(m[1]))), &steps); err != nil {
		t.Fatalf("result %q: %v", m[1], err)
	}
	want := map[string]any{"login": 200.0, "me": 200.0, "refresh": 200.0, "meAfterRefresh": 200.0,
		"twoTabs": 200.0, "meAfterTabs": 200.0, "logout": 204.0, "cookieVisibleToScript": false}
	for k, v := range want {
		if steps[k] != v {
			t.Errorf("step %s = %v, want %v (all: %v)", k, steps[k], v, steps)
		}
	}

	dir := os.Getenv("ARTIFACT_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "spa.png")
	headless(t, bin, "--virtual-time-budget=20000", "--window-size=900,640", "--screenshot="+shot, page)
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 1000 {
		t.Fatalf("no screenshot at %s: %v", shot, err)
	}
	t.Logf("screenshot: %s", shot)
}
