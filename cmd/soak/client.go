package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// requestTimeout bounds every request, so a stuck server cannot keep the
// soak from ending.
const requestTimeout = 15 * time.Second

// instance is one server as the browsers see it.
type instance struct {
	name string // "A" or "B"
	base string
	hc   *http.Client
}

// newInstance returns a client for p that keeps up to conns idle
// keep-alive connections, so every tab can keep its own.
func newInstance(p *process, conns int) *instance {
	tr := &http.Transport{
		Proxy:               nil, // loopback only, never through a proxy
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &instance{name: p.name, base: p.base, hc: &http.Client{Transport: tr, Timeout: requestTimeout}}
}

// reply is a server's answer. code and desc are the error and
// error_description of an error answer; they never contain a token.
type reply struct {
	status int
	body   []byte
	code   string
	desc   string
}

// invalidGrant reports a 400 invalid_grant: a refused login or refresh.
func (r reply) invalidGrant() bool {
	return r.status == http.StatusBadRequest && r.code == "invalid_grant"
}

// String describes the answer without its body.
func (r reply) String() string {
	if r.code != "" {
		return fmt.Sprintf("%d %s (%s)", r.status, r.code, r.desc)
	}
	return fmt.Sprint(r.status)
}

// tokenPair is the part of a /token or /refresh answer the soak uses.
type tokenPair struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	SessionID    string `json:"session_id"`
}

// pair decodes a token answer.
func (r reply) pair() (tokenPair, error) {
	var p tokenPair
	if err := json.Unmarshal(r.body, &p); err != nil {
		return p, fmt.Errorf("token answer is not JSON: %w", err)
	}
	if p.AccessToken == "" || p.RefreshToken == "" || p.SessionID == "" {
		return p, fmt.Errorf("token answer lacks access_token, refresh_token or session_id")
	}
	return p, nil
}

// call sends one request to in and records its outcome under endpoint (the
// route, such as "POST /refresh"). body, if not nil, is sent as JSON; bearer,
// if not empty, as the access token. A transport error is returned as err.
func (w *world) call(ctx context.Context, in *instance, endpoint, method, path, bearer string, body any) (reply, error) {
	r, err := send(ctx, in, method, path, bearer, body)
	w.stats.request(endpoint, in.name, r, err)
	return r, err
}

func send(ctx context.Context, in *instance, method, path, bearer string, body any) (reply, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return reply{}, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, in.base+path, rd)
	if err != nil {
		return reply{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := in.hc.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, fmt.Errorf("reading the answer: %w", err)
	}
	r := reply{status: resp.StatusCode, body: b}
	if r.status >= 400 {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if json.Unmarshal(b, &e) == nil {
			r.code, r.desc = e.Error, e.Description
		}
	}
	return r, nil
}
