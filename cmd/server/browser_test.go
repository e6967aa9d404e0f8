package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rotorauth/rotor/internal/api"
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

// headlessFlags are the flags every Chromium of these tests runs with.
func headlessFlags(t *testing.T) []string {
	return []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir()}
}

func headless(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(headlessFlags(t), args...)...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v", args, err)
	}
	return out
}

// spaSite serves examples/spa at http://localhost:<port> with a config.js of
// the test's own, as an operator would write it at deploy time: the page
// takes its API address from there, never from its URL.
type spaSite struct {
	*httptest.Server
	origin string
	mu     sync.Mutex
	config map[string]any
}

func newSPASite(t *testing.T) *spaSite {
	t.Helper()
	s := &spaSite{}
	files := http.FileServer(http.Dir("../../examples/spa"))
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/config.js" {
			files.ServeHTTP(w, r)
			return
		}
		s.mu.Lock()
		b, err := json.Marshal(s.config)
		s.mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintf(w, "window.ROTOR_CONFIG = %s;\n", b)
	}))
	t.Cleanup(s.Close)
	_, port, _ := net.SplitHostPort(s.Listener.Addr().String())
	s.origin = "http://localhost:" + port
	return s
}

func (s *spaSite) configure(cfg map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.config = cfg
}

// localAPI is the server's address as the SPA calls it: through localhost,
// the same site as the SPA (ports do not count), so its SameSite=Strict
// cookie travels; 127.0.0.1 is another site.
func localAPI(in *instance) string {
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(in.base, "http://"))
	return "http://localhost:" + port
}

func artifactDir(t *testing.T) string {
	dir := os.Getenv("ARTIFACT_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

var resultRE = regexp.MustCompile(`(?s)<pre id="result">(.*?)</pre>`)

// TestSPAInHeadlessChromium drives examples/spa in a real browser against a
// real server in browser mode: log in (refresh token in an HttpOnly
// __Host- cookie, not in the body), /me, refresh, two tabs refreshing at the
// same moment (both stay logged in), log out. It saves a screenshot.
func TestSPAInHeadlessChromium(t *testing.T) {
	bin := chromium(t)
	spa := newSPASite(t)
	in := start(t, map[string]string{
		"REFRESH_COOKIE": "true", "CORS_ALLOWED_ORIGINS": spa.origin, "QUIET_ACCESS_LOG": "true",
		"BOOTSTRAP_ADMIN_EMAIL": "spa@example.test", "BOOTSTRAP_ADMIN_PASSWORD": "spa password 1",
	})
	spa.configure(map[string]any{"api": localAPI(in),
		"selfTest": map[string]string{"email": "spa@example.test", "password": "spa password 1"}})
	page := spa.origin + "/index.html"

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

	shot := filepath.Join(artifactDir(t), "spa.png")
	headless(t, bin, "--virtual-time-budget=20000", "--window-size=900,640", "--screenshot="+shot, page)
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 1000 {
		t.Fatalf("no screenshot at %s: %v", shot, err)
	}
	t.Logf("screenshot: %s", shot)
}

// TestSPAFiveTabsRefreshTogetherInChromium opens the SPA in five separate
// pages (top-level targets of one browser, sharing its cookie jar), logs in
// in the first, and has all five refresh at one instant, 20 rounds over, with
// the default 10 s grace window: every refresh must answer 200, the shared
// cookie must rotate every round, /me must work in every tab after every
// round, and the session must still be listed as active at the end. The
// server uses PostgreSQL when the package has a database, else memory.
func TestSPAFiveTabsRefreshTogetherInChromium(t *testing.T) {
	const tabs = 5
	rounds := 20
	if n, err := strconv.Atoi(os.Getenv("SPA_TAB_ROUNDS")); err == nil && n > 0 { // for soaking it by hand
		rounds = n
	}
	const email, password = "tabs@example.test", "tabs password 1"
	bin := chromium(t)
	spa := newSPASite(t)
	vars := map[string]string{"REFRESH_COOKIE": "true", "CORS_ALLOWED_ORIGINS": spa.origin, "QUIET_ACCESS_LOG": "true",
		"BOOTSTRAP_ADMIN_EMAIL": email, "BOOTSTRAP_ADMIN_PASSWORD": password}
	storeName := "the memory store"
	if db != nil {
		for k, v := range pgEnv(t, writeKeys(t)) {
			vars[k] = v
		}
		storeName = "PostgreSQL"
	}
	in := start(t, vars)
	barrier := newRefreshBarrier(t, in, tabs)
	spa.configure(map[string]any{"api": barrier.url})
	began := time.Now()
	br := launchDevTools(t, bin)

	pages := make([]*cdpTab, tabs)
	pages[0] = br.open(spa.origin + "/index.html")
	pages[0].waitSPA()
	var st int
	pages[0].eval("log in", fmt.Sprintf("login(%q, %q).then(r => r.status)", email, password), &st)
	if st != 200 {
		t.Fatalf("login in the first tab: %d", st)
	}
	for i := 1; i < tabs; i++ {
		pages[i] = br.open(spa.origin + "/index.html")
		pages[i].waitSPA()
	}

	type fired struct {
		Status int     `json:"status"`
		At     float64 `json:"at"`
		SID    string  `json:"sid"`
		Error  string  `json:"error"` // error_description: never a token
	}
	var sid, prevCookie string
	var worstSpread float64
	for round := 1; round <= rounds; round++ {
		// Every tab waits for the same wall-clock instant, then refreshes.
		at := time.Now().Add(80 * time.Millisecond).UnixMilli()
		expr := fmt.Sprintf(`(async () => {
			const at = %d;
			await new Promise(r => setTimeout(r, at - Date.now()));
			const t0 = performance.timeOrigin + performance.now();
			const r = await refresh();
			return {status: r.status, at: t0, sid: r.json && r.json.session_id,
				error: r.json && r.json.error_description};
		})()`, at)
		got := make([]fired, tabs)
		inParallel(tabs, func(i int) { pages[i].eval(fmt.Sprintf("round %d refresh in tab %d", round, i), expr, &got[i]) })
		lo, hi := got[0].At, got[0].At
		for i, g := range got {
			if g.Status != 200 {
				t.Fatalf("round %d: tab %d's refresh answered %d (all: %+v)", round, i, g.Status, got)
			}
			if sid == "" {
				sid = g.SID
			}
			if g.SID != sid {
				t.Fatalf("round %d: tab %d is in session %s, not %s", round, i, g.SID, sid)
			}
			lo, hi = min(lo, g.At), max(hi, g.At)
		}
		worstSpread = max(worstSpread, hi-lo)
		c := br.refreshCookie()
		if c == "" || c == prevCookie {
			t.Fatalf("round %d: the shared cookie did not rotate (present: %v)", round, c != "")
		}
		prevCookie = c

		meStatus := make([]string, tabs)
		inParallel(tabs, func(i int) {
			pages[i].eval(fmt.Sprintf("round %d /me in tab %d", round, i),
				`me().then(r => r.status + " " + (r.json && r.json.email))`, &meStatus[i])
		})
		for i, s := range meStatus {
			if s != "200 "+email {
				t.Fatalf("round %d: /me in tab %d after the refreshes: %s", round, i, s)
			}
		}
	}

	var active struct {
		Status  int  `json:"status"`
		Current bool `json:"current"`
	}
	pages[0].eval("sessions", fmt.Sprintf(`call("GET", "/sessions", undefined, accessToken).then(r => ({
		status: r.status, current: Array.isArray(r.json) && r.json.some(s => s.id === %q && s.current)}))`, sid), &active)
	if active.Status != 200 || !active.Current {
		t.Fatalf("after %d rounds the session is not listed as active: %+v", rounds, active)
	}
	// QUIET_ACCESS_LOG leaves successes out of the log, not failures.
	if m := failedRefreshRE.FindString(in.logs.String()); m != "" {
		t.Fatalf("the server logged a failed request: %s", m)
	}
	t.Logf("%d tabs × %d rounds on %s: all 200, worst spread between the tabs' refreshes %.1f ms; browser part %v",
		tabs, rounds, storeName, worstSpread, time.Since(began).Round(time.Millisecond))
	pages[0].call("Page.bringToFront", map[string]any{}, nil)
	pages[0].screenshot(filepath.Join(artifactDir(t), "spa-five-tabs.png"))
}

var failedRefreshRE = regexp.MustCompile(`"route":"/(refresh|me|sessions)","status":[45][0-9][0-9]`)

// refreshBarrier is a reverse proxy to the API that holds each POST
// /refresh until n of them are waiting, then lets them all through at once.
// The tabs fire at one instant, but a tab scheduled a few milliseconds late
// could otherwise start its refresh after another tab's answer had rotated
// the shared cookie, and the round would rotate twice: a request of the
// round still carrying the first cookie, answered after that, presents an
// older ancestor, which SPEC §2.8 makes reuse even inside the grace window.
// With the barrier every tab's request carries the same cookie, and the
// server receives all n together.
type refreshBarrier struct {
	url     string
	n       int
	mu      sync.Mutex
	waiting int
	release chan struct{}
}

func newRefreshBarrier(t *testing.T, in *instance, n int) *refreshBarrier {
	target, err := url.Parse(in.base)
	if err != nil {
		t.Fatal(err)
	}
	b := &refreshBarrier{n: n, release: make(chan struct{})}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/refresh" && !b.wait() {
			http.Error(w, "refresh barrier: not all tabs refreshed within 10 s", http.StatusGatewayTimeout)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	b.url = "http://localhost:" + port
	return b
}

func (b *refreshBarrier) wait() bool {
	b.mu.Lock()
	ch := b.release
	if b.waiting++; b.waiting == b.n {
		close(ch)
		b.release, b.waiting = make(chan struct{}), 0
	}
	b.mu.Unlock()
	select {
	case <-ch:
		return true
	case <-time.After(10 * time.Second):
		return false
	}
}

// TestSPACrossSiteLoginFormRefusedInChromium is the login CSRF: the victim
// logs in through the SPA (opened from a link whose ?api= names the
// attacker's server, which the SPA must ignore); a page of another site (127.0.0.1, not localhost)
// auto-submits an HTML form with the attacker's credentials to /token in the
// same browser. The server must refuse it (400 invalid_request, no cookie),
// the victim's cookie must be untouched, and the SPA must still show the
// victim's account after a refresh.
func TestSPACrossSiteLoginFormRefusedInChromium(t *testing.T) {
	const victim, victimPW = "victim@example.test", "victim password 1"
	const attacker, attackerPW = "mallory@example.test", "mallory password 1"
	bin := chromium(t)
	spa := newSPASite(t)
	in := start(t, map[string]string{"REFRESH_COOKIE": "true", "CORS_ALLOWED_ORIGINS": spa.origin,
		"QUIET_ACCESS_LOG": "true", "LOGIN_RATE_LIMIT": "0"})
	apiBase := localAPI(in)
	spa.configure(map[string]any{"api": apiBase})
	for _, u := range [][2]string{{victim, victimPW}, {attacker, attackerPW}} {
		if st, _ := call(t, "POST", in.base+"/users", fmt.Sprintf(`{"email":%q,"password":%q}`, u[0], u[1]), ""); st != 201 {
			t.Fatalf("sign-up: %d", st)
		}
	}
	var stolen atomic.Int32 // requests the attacker's server got besides its page
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/" {
			stolen.Add(1)
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>win a prize</title>
<form id="f" method="POST" action="%s/token">
<input name="grant_type" value="password"><input name="username" value="%s"><input name="password" value="%s">
</form><script>document.getElementById("f").submit()</script>`,
			html.EscapeString(apiBase), html.EscapeString(attacker), html.EscapeString(attackerPW))
	}))
	defer evil.Close()
	began := time.Now()
	br := launchDevTools(t, bin)

	// A link to the SPA naming the attacker's server as its API changes
	// nothing: the address comes from config.js only.
	app := br.open(spa.origin + "/index.html?api=" + url.QueryEscape(evil.URL))
	app.waitSPA()
	var shown string
	app.eval("the API address", `document.getElementById("api").textContent`, &shown)
	if shown != apiBase {
		t.Fatalf("the SPA uses the API %q, not the configured %s", shown, apiBase)
	}
	var who string
	app.eval("victim logs in", fmt.Sprintf(`login(%q, %q).then(() => me()).then(() => document.getElementById("who").textContent)`,
		victim, victimPW), &who)
	if who != victim {
		t.Fatalf("the SPA shows %q after the victim's login", who)
	}
	before := br.refreshCookie()
	if before == "" {
		t.Fatal("no refresh cookie after the victim's login")
	}

	// The attacker's page, in another tab of the same browser.
	forged := make(chan int, 1)
	page := br.open("about:blank")
	br.onEvent(func(m cdpMessage) {
		if m.SessionID != page.session || m.Method != "Network.responseReceived" {
			return
		}
		var p struct {
			Response struct {
				URL    string `json:"url"`
				Status int    `json:"status"`
			} `json:"response"`
		}
		if json.Unmarshal(m.Params, &p) == nil && p.Response.URL == apiBase+"/token" {
			select {
			case forged <- p.Response.Status:
			default:
			}
		}
	})
	page.call("Network.enable", map[string]any{}, nil)
	page.call("Page.navigate", map[string]any{"url": evil.URL + "/"}, nil)
	select {
	case st := <-forged:
		if st != 400 {
			t.Errorf("the server answered the cross-site form with %d, want 400", st)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the cross-site form never reached /token")
	}
	var text string
	page.poll("the forged answer", `location.href.endsWith("/token") && document.readyState === "complete" && document.body.innerText`, &text)
	var answer struct {
		Error string `json:"error"`
	}
	// Never printed: on a wrong success it holds the attacker's tokens.
	if json.Unmarshal([]byte(strings.TrimSpace(text)), &answer) != nil || answer.Error != "invalid_request" {
		t.Errorf("the forged form's answer is not an invalid_request error (error %q)", answer.Error)
	}
	if after := br.refreshCookie(); after != before {
		t.Errorf("the cross-site form replaced the victim's cookie (present: %v)", after != "")
	}

	var state struct {
		Refresh int    `json:"refresh"`
		Me      int    `json:"me"`
		Who     string `json:"who"`
	}
	app.eval("victim refreshes", `(async () => {
		const r = await refresh(); const m = await me();
		return {refresh: r.status, me: m.status, who: document.getElementById("who").textContent};
	})()`, &state)
	if state.Refresh != 200 || state.Me != 200 || state.Who != victim {
		t.Fatalf("after the cross-site form the victim's SPA shows %+v, want %s", state, victim)
	}
	if n := stolen.Load(); n != 0 {
		t.Fatalf("the attacker's server received %d request(s) from the SPA", n)
	}
	t.Logf("cross-site form refused (400), the victim stays %s; browser part %v", victim, time.Since(began).Round(time.Millisecond))
	app.screenshot(filepath.Join(artifactDir(t), "spa-cross-site-form.png"))
}

func inParallel(n int, f func(i int)) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { f(i) })
	}
	wg.Wait()
}

// cdpBrowser is a headless Chromium driven over the DevTools protocol, through
// a minimal websocket client (RFC 6455: text frames, client masking, no
// extensions), enough for one local connection.
type cdpBrowser struct {
	t      *testing.T
	conn   net.Conn
	wmu    sync.Mutex // one frame at a time
	mu     sync.Mutex
	nextID int64
	calls  map[int64]chan cdpMessage
	subs   []func(cdpMessage)
	dead   chan struct{}
	err    error
}

type cdpMessage struct {
	ID        int64           `json:"id,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

// launchDevTools starts Chromium with a DevTools endpoint on a free port and
// connects to it; cleanup closes the browser.
func launchDevTools(t *testing.T, bin string) *cdpBrowser {
	t.Helper()
	flags := headlessFlags(t)
	profile := strings.TrimPrefix(flags[len(flags)-1], "--user-data-dir=")
	cmd := exec.Command(bin, append(flags, "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
		// Pages in background tabs must not have their timers throttled:
		// the five tabs fire at one instant.
		"--disable-background-timer-throttling", "--disable-renderer-backgrounding",
		"--disable-backgrounding-occluded-windows", "--window-size=900,640", "about:blank")...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
			return
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	// Chromium writes its port and browser path into the profile.
	var port, path string
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(profile, "DevToolsActivePort"))
		if lines := strings.Fields(string(b)); err == nil && len(lines) == 2 {
			port, path = lines[0], lines[1]
			break
		}
		select {
		case <-exited:
			t.Fatal("chromium exited before opening its DevTools port")
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("chromium did not open its DevTools port within 30 s")
		}
	}
	conn, br, err := wsDial("127.0.0.1:"+port, path)
	if err != nil {
		_ = cmd.Process.Kill()
		t.Fatalf("DevTools websocket: %v", err)
	}
	c := &cdpBrowser{t: t, conn: conn, calls: map[int64]chan cdpMessage{}, dead: make(chan struct{})}
	go c.read(br)
	// Registered after the process cleanup, so it runs first: a graceful
	// close, then the connection.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = c.send(ctx, "", "Browser.close", map[string]any{})
		_ = conn.Close()
	})
	return c
}

func (c *cdpBrowser) read(br *bufio.Reader) {
	defer close(c.dead)
	for {
		b, err := wsReadMessage(br)
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			return
		}
		var m cdpMessage
		if err := json.Unmarshal(b, &m); err != nil {
			continue
		}
		c.mu.Lock()
		if m.ID != 0 {
			if ch := c.calls[m.ID]; ch != nil {
				ch <- m
				delete(c.calls, m.ID)
			}
			c.mu.Unlock()
			continue
		}
		subs := c.subs
		c.mu.Unlock()
		for _, f := range subs {
			f(m)
		}
	}
}

func (c *cdpBrowser) onEvent(f func(cdpMessage)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.subs = append(c.subs, f)
}

// send calls method (in session, "" for the browser) and returns its result.
func (c *cdpBrowser) send(ctx context.Context, session, method string, params any) (json.RawMessage, error) {
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	ch := make(chan cdpMessage, 1)
	c.calls[id] = ch
	c.mu.Unlock()
	b, err := json.Marshal(map[string]any{"id": id, "method": method, "params": params, "sessionId": session})
	if err != nil {
		return nil, err
	}
	c.wmu.Lock()
	err = wsWriteText(c.conn, b)
	c.wmu.Unlock()
	if err != nil {
		return nil, err
	}
	select {
	case m := <-ch:
		if m.Error != nil {
			return nil, fmt.Errorf("%s: %s (%d)", method, m.Error.Message, m.Error.Code)
		}
		return m.Result, nil
	case <-c.dead:
		c.mu.Lock()
		defer c.mu.Unlock()
		return nil, fmt.Errorf("%s: DevTools connection lost: %v", method, c.err)
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

// call is send with a 30 s bound, decoding the result into out unless it
// is nil. It reports an error with Errorf (safe from any goroutine) and
// returns false.
func (c *cdpBrowser) call(session, method string, params, out any) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := c.send(ctx, session, method, params)
	if err == nil && out != nil {
		err = json.Unmarshal(res, out)
	}
	if err != nil {
		c.t.Errorf("DevTools %v", err)
		return false
	}
	return true
}

// refreshCookie is the refresh cookie's value in the browser's jar ("" if
// none), read over DevTools (the page cannot: it is HttpOnly). It is
// compared, never printed.
func (c *cdpBrowser) refreshCookie() string {
	c.t.Helper()
	var res struct {
		Cookies []struct{ Name, Value string } `json:"cookies"`
	}
	if !c.call("", "Storage.getCookies", map[string]any{}, &res) {
		c.t.FailNow()
	}
	v := ""
	for _, ck := range res.Cookies {
		if ck.Name == api.RefreshCookieName {
			if v != "" {
				c.t.Fatal("two refresh cookies in the jar")
			}
			v = ck.Value
		}
	}
	return v
}

// cdpTab is one page (a top-level target) with its own DevTools session.
type cdpTab struct {
	b       *cdpBrowser
	session string
}

func (c *cdpBrowser) open(page string) *cdpTab {
	c.t.Helper()
	var created struct {
		TargetID string `json:"targetId"`
	}
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	if !c.call("", "Target.createTarget", map[string]any{"url": page}, &created) ||
		!c.call("", "Target.attachToTarget", map[string]any{"targetId": created.TargetID, "flatten": true}, &attached) {
		c.t.FailNow()
	}
	return &cdpTab{b: c, session: attached.SessionID}
}

func (p *cdpTab) call(method string, params, out any) {
	p.b.t.Helper()
	if !p.b.call(p.session, method, params, out) {
		p.b.t.FailNow()
	}
}

// evaluate runs expr in the page, awaiting a promise, into out. The error
// names what, never expr (which may hold a password).
func (p *cdpTab) evaluate(what, expr string, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := p.b.send(ctx, p.session, "Runtime.evaluate", map[string]any{
		"expression": expr, "awaitPromise": true, "returnByValue": true})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	if err := json.Unmarshal(res, &r); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if r.Exception != nil {
		return fmt.Errorf("%s: %s %s", what, r.Exception.Text, r.Exception.Exception.Description)
	}
	if out == nil {
		return nil
	}
	if len(r.Result.Value) == 0 {
		return fmt.Errorf("%s: no value", what)
	}
	if err := json.Unmarshal(r.Result.Value, out); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// eval is evaluate reporting an error with Errorf, which is safe from any
// goroutine; the caller's checks of out then stop the test.
func (p *cdpTab) eval(what, expr string, out any) {
	if err := p.evaluate(what, expr, out); err != nil {
		p.b.t.Errorf("%v", err)
	}
}

// poll evaluates expr until it yields a truthy value (navigations destroy
// the page's context meanwhile), into out.
func (p *cdpTab) poll(what, expr string, out any) {
	p.b.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		var v json.RawMessage
		last = p.evaluate(what, expr, &v)
		if last == nil && len(v) > 0 && string(v) != "false" && string(v) != "null" && string(v) != `""` {
			if err := json.Unmarshal(v, out); err != nil {
				p.b.t.Fatalf("%s: %v", what, err)
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.b.t.Fatalf("%s: not ready within 30 s (%v)", what, last)
}

// waitSPA waits until the SPA has loaded its config and script.
func (p *cdpTab) waitSPA() {
	p.b.t.Helper()
	var ok bool
	p.poll("the SPA loads", `document.readyState === "complete" && typeof refresh === "function" &&
		document.getElementById("api").textContent !== ""`, &ok)
}

func (p *cdpTab) screenshot(path string) {
	t := p.b.t
	t.Helper()
	var shot struct {
		Data []byte `json:"data"` // base64 in JSON
	}
	p.call("Page.captureScreenshot", map[string]any{"format": "png"}, &shot)
	if len(shot.Data) < 1000 {
		t.Fatalf("screenshot of %d bytes", len(shot.Data))
	}
	if err := os.WriteFile(path, shot.Data, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// wsDial opens a websocket to ws://addr/path (RFC 6455 §4.1).
func wsDial(addr, path string) (net.Conn, *bufio.Reader, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, nil, err
	}
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	key := base64.StdEncoding.EncodeToString(nonce[:])
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", path, addr, key); err != nil {
		conn.Close()
		return nil, nil, err
	}
	br := bufio.NewReaderSize(conn, 64<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	resp.Body.Close()
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if resp.StatusCode != http.StatusSwitchingProtocols ||
		resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		conn.Close()
		return nil, nil, fmt.Errorf("websocket handshake: %s", resp.Status)
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, br, nil
}

// wsWriteText writes one masked text frame.
func wsWriteText(w io.Writer, payload []byte) error {
	n := len(payload)
	frame := []byte{0x81} // FIN, text
	switch {
	case n < 126:
		frame = append(frame, 0x80|byte(n))
	case n < 1<<16:
		frame = append(frame, 0x80|126)
		frame = binary.BigEndian.AppendUint16(frame, uint16(n))
	default:
		frame = append(frame, 0x80|127)
		frame = binary.BigEndian.AppendUint64(frame, uint64(n))
	}
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	frame = append(frame, mask[:]...)
	for i, b := range payload {
		frame = append(frame, b^mask[i%4])
	}
	_, err := w.Write(frame)
	return err
}

// wsReadMessage reads one whole data message, joining fragments and
// skipping pings and pongs (Chromium sends none unasked).
func wsReadMessage(r *bufio.Reader) ([]byte, error) {
	var msg []byte
	for {
		var h [2]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return nil, err
		}
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var b [2]byte
			if _, err := io.ReadFull(r, b[:]); err != nil {
				return nil, err
			}
			n = uint64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			if _, err := io.ReadFull(r, b[:]); err != nil {
				return nil, err
			}
			n = binary.BigEndian.Uint64(b[:])
		}
		var mask [4]byte
		masked := h[1]&0x80 != 0
		if masked {
			if _, err := io.ReadFull(r, mask[:]); err != nil {
				return nil, err
			}
		}
		if n > 256<<20 {
			return nil, errors.New("websocket frame over 256 MiB")
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(r, payload); err != nil {
			return nil, err
		}
		if masked {
			for i := range payload {
				payload[i] ^= mask[i%4]
			}
		}
		switch h[0] & 0x0f {
		case 0x8:
			return nil, io.EOF
		case 0x9, 0xa:
			continue
		}
		msg = append(msg, payload...)
		if h[0]&0x80 != 0 {
			return msg, nil
		}
	}
}
