package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// client calls one Rotor over keep-alive connections. Every method returns
// an error for anything but the expected status and a well-formed body; the
// load phases count those errors and never retry.
type client struct {
	base string
	hc   *http.Client
}

// newClient returns a client whose transport keeps at least conns idle
// connections to the server, so every worker keeps its own connection.
func newClient(base string, conns int) *client {
	tr := &http.Transport{
		Proxy:               nil, // loopback only, never through a proxy
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns * 2,
		MaxIdleConnsPerHost: conns * 2,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	return &client{base: strings.TrimRight(base, "/"), hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// close drops the idle connections.
func (c *client) close() { c.hc.CloseIdleConnections() }

// tokenResponse is the part of a /token or /refresh answer the benchmark uses.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

// do sends one request and returns the body of an answer with status want.
func (c *client) do(ctx context.Context, method, path, bearer string, body []byte, want int) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, clip(b))
	}
	return b, nil
}

// clip shortens a body for an error message.
func clip(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

func jsonBody(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only maps of strings are marshalled here
	}
	return b
}

// tokens reads both tokens of a /token or /refresh answer. Tokens are
// base64url and dots, so a string field without escapes is cut out of the
// body directly, which costs the load generator far less CPU than
// json.Unmarshal; anything unusual falls back to the JSON decoder.
func tokens(path string, b []byte) (tokenResponse, error) {
	t := tokenResponse{AccessToken: stringField(b, `"access_token":"`), RefreshToken: stringField(b, `"refresh_token":"`)}
	if t.AccessToken == "" || t.RefreshToken == "" {
		t = tokenResponse{}
		if err := json.Unmarshal(b, &t); err != nil {
			return t, fmt.Errorf("POST %s: answer is not JSON: %w", path, err)
		}
	}
	if t.AccessToken == "" || t.RefreshToken == "" {
		return t, fmt.Errorf("POST %s: answer lacks access_token or refresh_token: %s", path, clip(b))
	}
	return t, nil
}

// stringField returns the value after key (`"name":"`) up to the closing
// quote, or "" when key is missing or the value has an escape.
func stringField(b []byte, key string) string {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return ""
	}
	v := b[i+len(key):]
	j := bytes.IndexByte(v, '"')
	if j < 0 || bytes.IndexByte(v[:j], '\\') >= 0 {
		return ""
	}
	return string(v[:j])
}

// signup creates a user (POST /users → 201).
func (c *client) signup(ctx context.Context, email, password string) error {
	_, err := c.do(ctx, http.MethodPost, "/users", "", jsonBody(map[string]string{"email": email, "password": password}), http.StatusCreated)
	return err
}

// login opens a session (POST /token with the JSON shorthand).
func (c *client) login(ctx context.Context, email, password string) (tokenResponse, error) {
	b, err := c.do(ctx, http.MethodPost, "/token", "", jsonBody(map[string]string{"username": email, "password": password}), http.StatusOK)
	if err != nil {
		return tokenResponse{}, err
	}
	return tokens("/token", b)
}

// refresh rotates refreshToken (POST /refresh). Refresh tokens are
// base64url with a prefix, so they need no JSON escaping.
func (c *client) refresh(ctx context.Context, refreshToken string) (tokenResponse, error) {
	body := make([]byte, 0, len(refreshToken)+20)
	body = append(body, `{"refresh_token":"`...)
	body = append(body, refreshToken...)
	body = append(body, `"}`...)
	b, err := c.do(ctx, http.MethodPost, "/refresh", "", body, http.StatusOK)
	if err != nil {
		return tokenResponse{}, err
	}
	return tokens("/refresh", b)
}

// me calls GET /me with an access token.
func (c *client) me(ctx context.Context, access string) error {
	b, err := c.do(ctx, http.MethodGet, "/me", access, nil, http.StatusOK)
	if err == nil && !bytes.Contains(b, []byte(`"session_id"`)) {
		err = fmt.Errorf("GET /me: unexpected answer: %s", clip(b))
	}
	return err
}

// introspect calls POST /introspect as the admin with a prepared body and
// requires an active token.
func (c *client) introspect(ctx context.Context, adminAccess string, body []byte) error {
	b, err := c.do(ctx, http.MethodPost, "/introspect", adminAccess, body, http.StatusOK)
	if err == nil && !bytes.Contains(b, []byte(`"active":true`)) {
		err = fmt.Errorf("POST /introspect: token not active: %s", clip(b))
	}
	return err
}

// ready waits until GET /readyz answers 200, or until alive reports that the
// server died, or timeout.
func (c *client) ready(ctx context.Context, timeout time.Duration, alive func() error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if err := alive(); err != nil {
			return err
		}
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, last = c.do(rctx, http.MethodGet, "/readyz", "", nil, http.StatusOK)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("server not ready after %s: %v", timeout, last)
}
