package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/google/uuid"

	"github.com/rotorauth/rotor/internal/api"
)

type ctCall struct {
	method, path string // path with query
	token        string // bearer access token
	auth         string // a raw Authorization header, instead of token
	body         any    // JSON body
	form         url.Values
	raw, ctype   string // a raw body and its Content-Type
	header       map[string]string
	status       int    // expected status
	code         string // expected error code, for errors
	check        ctCheck
}

// ctObj is a JSON object body.
type ctObj = map[string]any

// ctCheck says what request validation must conclude.
type ctCheck int

const (
	ctSpecValid     ctCheck = iota // the request satisfies openapi.yaml
	ctSpecInvalid                  // the request deliberately breaks openapi.yaml
	ctSpecUnchecked                // not validated: over-size bodies, repeated form fields
)

type ctResult struct {
	status int
	header http.Header
	body   []byte
}

func (r ctResult) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

type ctTokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	SessionID    string `json:"session_id"`
}

// contractEnv validates traffic against the spec and remembers which
// documented responses the tour produced.
type contractEnv struct {
	doc    *openapi3.T
	router routers.Router
	opts   *openapi3filter.Options
	seen   map[string]map[int]bool // "METHOD /template" → statuses
}

func newContractEnv(t *testing.T, doc *openapi3.T) *contractEnv {
	t.Helper()
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatalf("router: %v", err)
	}
	return &contractEnv{
		doc: doc, router: router, seen: map[string]map[int]bool{},
		opts: &openapi3filter.Options{
			AuthenticationFunc:                openapi3filter.NoopAuthenticationFunc,
			IncludeResponseStatus:             true,
			RejectWhenRequestBodyNotSpecified: true,
			SchemaValidationOptions:           ctFormatOptions(),
		},
	}
}

// ctFormatOptions enforces the string formats openapi.yaml uses.
func ctFormatOptions() []openapi3.SchemaValidationOption {
	return []openapi3.SchemaValidationOption{
		openapi3.WithStringFormatValidator("uuid", openapi3.NewCallbackValidator(func(s string) error {
			_, err := uuid.Parse(s)
			if err != nil || len(s) != 36 {
				return fmt.Errorf("not a UUID: %q", s)
			}
			return nil
		})),
		openapi3.WithStringFormatValidator("uri", openapi3.NewCallbackValidator(func(s string) error {
			u, err := url.Parse(s)
			if err != nil || u.Scheme == "" || u.Host == "" {
				return fmt.Errorf("not an absolute URI: %q", s)
			}
			return nil
		})),
	}
}

// do validates c's request against the spec, sends it to base, checks the
// status and error code, and validates the response against the spec.
func (e *contractEnv) do(t *testing.T, base string, c ctCall) ctResult {
	t.Helper()
	var body []byte
	ctype := c.ctype
	switch {
	case c.form != nil:
		body = []byte(c.form.Encode())
		if ctype == "" {
			ctype = "application/x-www-form-urlencoded"
		}
	case c.body != nil:
		var err error
		if body, err = json.Marshal(c.body); err != nil {
			t.Fatal(err)
		}
		if ctype == "" {
			ctype = "application/json"
		}
	default:
		body = []byte(c.raw)
	}
	header := http.Header{}
	if ctype != "" {
		header.Set("Content-Type", ctype)
	}
	if c.token != "" {
		header.Set("Authorization", "Bearer "+c.token)
	}
	if c.auth != "" {
		header.Set("Authorization", c.auth)
	}
	for k, v := range c.header {
		header.Set(k, v)
	}
	name := c.method + " " + c.path
	if len(name) > 90 {
		name = name[:90] + "…"
	}

	specURL := e.doc.Servers[0].URL + c.path
	route, params, err := e.router.FindRoute(httptest.NewRequest(c.method, specURL, nil))
	if err != nil {
		t.Fatalf("%s: openapi.yaml has no such operation: %v", name, err)
	}
	vreq := httptest.NewRequest(c.method, specURL, bytes.NewReader(body))
	vreq.Header = header.Clone()
	in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route, Options: e.opts}
	reqErr := openapi3filter.ValidateRequest(context.Background(), in)
	switch {
	case c.check == ctSpecValid && reqErr != nil:
		t.Errorf("%s: request does not satisfy openapi.yaml: %v", name, reqErr)
	case c.check == ctSpecInvalid && reqErr == nil:
		t.Errorf("%s: request breaks the contract on purpose, but openapi.yaml accepts it", name)
	}

	req, err := http.NewRequest(c.method, base+c.path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	respBody, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("%s: read body: %v", name, err)
	}
	res := ctResult{status: resp.StatusCode, header: resp.Header, body: respBody}

	if c.status != 0 && res.status != c.status {
		t.Errorf("%s: status %d, want %d; body %s", name, res.status, c.status, respBody)
	}
	op := route.Method + " " + route.Path
	if e.seen[op] == nil {
		e.seen[op] = map[int]bool{}
	}
	e.seen[op][res.status] = true

	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: res.status, Header: res.header, Options: e.opts,
	}
	out.SetBodyBytes(respBody)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		t.Errorf("%s: %d response does not match openapi.yaml: %v\nbody: %s", name, res.status, err, respBody)
	}
	if res.status == http.StatusNoContent && len(respBody) != 0 {
		t.Errorf("%s: 204 with a body: %s", name, respBody)
	}
	if c.code != "" {
		var eb struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(respBody, &eb)
		if eb.Error != c.code {
			t.Errorf("%s: error %q, want %q; body %s", name, eb.Error, c.code, respBody)
		}
	}
	return res
}

// tokens sends c, which must succeed, and returns the token response.
func (e *contractEnv) tokens(t *testing.T, base string, c ctCall) ctTokens {
	t.Helper()
	var tr ctTokens
	e.do(t, base, c).decode(t, &tr)
	if tr.AccessToken == "" || tr.SessionID == "" {
		t.Fatalf("%s %s: no tokens", c.method, c.path)
	}
	return tr
}

func (e *contractEnv) login(t *testing.T, base, email, pw string) ctTokens {
	t.Helper()
	return e.tokens(t, base, ctCall{method: "POST", path: "/token", body: ctObj{"username": email, "password": pw}, status: 200})
}

// checkUnrouted sends a request no operation describes (an unknown path or
// a method a path does not serve) and checks the error body against the
// Error schema and, for 405, the Allow header.
func (e *contractEnv) checkUnrouted(t *testing.T, base, method, path string, status int, code, allow string) {
	t.Helper()
	req, _ := http.NewRequest(method, base+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	name := method + " " + path
	if resp.StatusCode != status {
		t.Errorf("%s: status %d, want %d", name, resp.StatusCode, status)
	}
	if got := resp.Header.Get("Allow"); got != allow {
		t.Errorf("%s: Allow %q, want %q (the methods openapi.yaml lists, and HEAD with GET)", name, got, allow)
	}
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("%s: Cache-Control %q, want no-store", name, got)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: body %s: %v", name, b, err)
	}
	schema := e.doc.Components.Schemas["Error"].Value
	if err := schema.VisitJSON(v, append(ctFormatOptions(), openapi3.EnableJSONSchema2020())...); err != nil {
		t.Errorf("%s: body does not match Error: %v", name, err)
	}
	if m, _ := v.(map[string]any); m["error"] != code {
		t.Errorf("%s: body %s, want error %q", name, b, code)
	}
}

// allowFor is the Allow header a path must send: its methods in the spec,
// plus HEAD when it serves GET, sorted.
func (e *contractEnv) allowFor(path string) string {
	var m []string
	for method := range e.doc.Paths.Value(path).Operations() {
		m = append(m, method)
		if method == http.MethodGet {
			m = append(m, http.MethodHead)
		}
	}
	sort.Strings(m)
	return strings.Join(m, ", ")
}

// checkCoverage fails for every operation the tour never called and every
// documented status it never saw, bar ctUntestedStatuses.
func (e *contractEnv) checkCoverage(t *testing.T) {
	t.Helper()
	var neverCalled, neverSeen []string
	for _, path := range ctSpecPaths(e.doc) {
		for method, op := range e.doc.Paths.Value(path).Operations() {
			key := method + " " + path
			if len(e.seen[key]) == 0 {
				neverCalled = append(neverCalled, key)
				continue
			}
			for code := range op.Responses.Map() {
				n, err := strconv.Atoi(code)
				if err != nil {
					t.Errorf("%s documents response %q; use explicit status codes", key, code)
					continue
				}
				if !e.seen[key][n] && ctUntestedStatuses[key][n] == "" {
					neverSeen = append(neverSeen, fmt.Sprintf("%s → %d", key, n))
				}
			}
		}
	}
	sort.Strings(neverCalled)
	sort.Strings(neverSeen)
	if len(neverCalled) > 0 {
		t.Errorf("operations in openapi.yaml the contract test never exercised:\n\t%s", strings.Join(neverCalled, "\n\t"))
	}
	if len(neverSeen) > 0 {
		t.Errorf("documented responses the contract test never produced:\n\t%s", strings.Join(neverSeen, "\n\t"))
	}
	for key, statuses := range ctUntestedStatuses {
		op := ctSpecOperation(e.doc, key)
		for n := range statuses {
			if op == nil || op.Responses.Status(n) == nil {
				t.Errorf("ctUntestedStatuses lists %s → %d, which openapi.yaml does not document", key, n)
			}
		}
	}
}

func ctLoadSpec(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(ctSpecPath)
	if err != nil {
		t.Fatalf("load %s: %v", ctSpecPath, err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("%s is not a valid OpenAPI document: %v", ctSpecPath, err)
	}
	if len(doc.Servers) == 0 {
		t.Fatalf("%s has no servers", ctSpecPath)
	}
	return doc
}

func ctSpecPaths(doc *openapi3.T) []string {
	paths := doc.Paths.InMatchingOrder()
	sort.Strings(paths)
	return paths
}

// ctSpecOperations is the set of "METHOD /path" the spec describes.
func ctSpecOperations(doc *openapi3.T) map[string]bool {
	ops := map[string]bool{}
	for _, path := range ctSpecPaths(doc) {
		for method := range doc.Paths.Value(path).Operations() {
			ops[method+" "+path] = true
		}
	}
	return ops
}

func ctSpecOperation(doc *openapi3.T, key string) *openapi3.Operation {
	method, path, _ := strings.Cut(key, " ")
	item := doc.Paths.Value(path)
	if item == nil {
		return nil
	}
	return item.GetOperation(method)
}

// ctRouteTable is the server's route table: "METHOD /path" entries.
func ctRouteTable(t *testing.T) []string {
	t.Helper()
	var routes []string
	for _, r := range api.RouteTable() {
		routes = append(routes, r.Method+" "+r.Path)
	}
	return routes
}

// ctErrorCodes are the error codes the server answers with.
func ctErrorCodes(t *testing.T) []string {
	t.Helper()
	return api.ErrorCodes()
}

func ctAtoi(s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// ctBigJSON is a JSON object over the 64 KiB body limit.
func ctBigJSON() string {
	return `{"email": "big@example.test", "password": "` + strings.Repeat("a", api.MaxBodyBytes) + `"}`
}

// ctRefreshCookie returns the browser-mode refresh cookie a response sets.
func ctRefreshCookie(t *testing.T, h http.Header) string {
	t.Helper()
	resp := http.Response{Header: h}
	for _, c := range resp.Cookies() {
		if c.Name == api.RefreshCookieName && c.Value != "" {
			if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/" {
				t.Errorf("refresh cookie attributes: %+v", c)
			}
			return c.Value
		}
	}
	t.Fatalf("no %s cookie in %v", api.RefreshCookieName, h.Values("Set-Cookie"))
	return ""
}

// ctFaultyStore is a store whose every call fails while a fault is set, as a
// database that is down does.
