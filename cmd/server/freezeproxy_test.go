package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
)

// freezeProxy is a TCP proxy in front of PostgreSQL that can freeze
// connections the way a silent network partition or a hung peer does: it
// stops forwarding bytes in both directions and keeps both sockets open,
// so neither end sees an error. It tells connections apart by the
// application_name of the PostgreSQL startup message (plaintext under
// sslmode=disable): "rotor" is the pool, "rotor-listener" the listener.
// While an application is frozen, its new connections are accepted and
// frozen too (cancel requests, which carry no application_name, pass). Unfreeze lets new connections through again; the ones
// frozen before stay frozen until Close.
type freezeProxy struct {
	t      testing.TB
	ln     net.Listener
	target string
	done   chan struct{}

	mu     sync.Mutex
	frozen map[string]bool // application_name → frozen
	conns  []*proxyConn
	wg     sync.WaitGroup
}

type proxyConn struct {
	app            string // "" for cancel requests
	frozen         atomic.Bool
	client, server net.Conn
}

func newFreezeProxy(t testing.TB, target string) *freezeProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezeProxy{t: t, ln: ln, target: target, done: make(chan struct{}), frozen: map[string]bool{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// url returns dbURL pointed at the proxy.
func (p *freezeProxy) url(t testing.TB, dbURL string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = p.ln.Addr().String()
	return u.String()
}

// Freeze freezes every connection of these application names, open or
// new, until Unfreeze (for new ones) or Close (for the others).
func (p *freezeProxy) Freeze(apps ...string) (frozenNow int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, app := range apps {
		p.frozen[app] = true
	}
	for _, c := range p.conns {
		if p.frozen[c.app] && !c.frozen.Swap(true) {
			frozenNow++
		}
	}
	return frozenNow
}

// Unfreeze lets new connections through again.
func (p *freezeProxy) Unfreeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.frozen)
}

// count returns how many connections of app it has seen.
func (p *freezeProxy) count(app string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.conns {
		if c.app == app {
			n++
		}
	}
	return n
}

// Close closes the listener and every connection, frozen or not.
func (p *freezeProxy) Close() {
	select {
	case <-p.done:
		return
	default:
	}
	close(p.done)
	_ = p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		_ = c.client.Close()
		if c.server != nil {
			_ = c.server.Close()
		}
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *freezeProxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.handle(client)
	}
}

const (
	pgProtocol3   = 196608
	pgSSLRequest  = 80877103
	pgGSSRequest  = 80877104
	pgCancelRqst  = 80877102
	maxStartupLen = 10000
)

// readStartup reads the client's first packet (answering 'N' to SSL and
// GSS encryption requests) and returns it raw with its application_name.
func readStartup(c net.Conn) (raw []byte, app string, err error) {
	for {
		var hdr [8]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return nil, "", err
		}
		n := binary.BigEndian.Uint32(hdr[:4])
		code := binary.BigEndian.Uint32(hdr[4:])
		if n < 8 || n > maxStartupLen {
			return nil, "", errors.New("bad startup length")
		}
		body := make([]byte, n-8)
		if _, err := io.ReadFull(c, body); err != nil {
			return nil, "", err
		}
		raw = append(hdr[:], body...)
		switch code {
		case pgSSLRequest, pgGSSRequest:
			if _, err := c.Write([]byte{'N'}); err != nil {
				return nil, "", err
			}
			continue
		case pgCancelRqst:
			return raw, "", nil
		case pgProtocol3:
			fields := bytes.Split(body, []byte{0})
			for i := 0; i+1 < len(fields); i += 2 {
				if string(fields[i]) == "application_name" {
					return raw, string(fields[i+1]), nil
				}
			}
			return raw, "", nil
		}
		return nil, "", errors.New("unknown startup code")
	}
}

func (p *freezeProxy) handle(client net.Conn) {
	defer p.wg.Done()
	raw, app, err := readStartup(client)
	if err != nil {
		_ = client.Close()
		return
	}
	c := &proxyConn{app: app, client: client}
	p.mu.Lock()
	select {
	case <-p.done:
		p.mu.Unlock()
		_ = client.Close()
		return
	default:
	}
	// Cancel requests (no application_name) always pass: pgx sends one
	// when it gives up on a connection and waits up to 15 s for the answer,
	// which would only slow the instance's shutdown down.
	c.frozen.Store(app != "" && p.frozen[app])
	p.conns = append(p.conns, c)
	p.mu.Unlock()
	if c.frozen.Load() {
		<-p.done // a frozen new connection: accepted, never answered
		return
	}
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = client.Close()
		return
	}
	p.mu.Lock()
	c.server = server
	select {
	case <-p.done: // Close ran before c.server was set
		_ = server.Close()
	default:
	}
	p.mu.Unlock()
	if _, err := server.Write(raw); err != nil {
		_ = client.Close()
		_ = server.Close()
		return
	}
	p.wg.Add(2)
	go p.pump(c, server, client)
	go p.pump(c, client, server)
}

// pump copies src to dst until either ends, holding on to what it read
// once c is frozen (and then keeping both sockets open until Close).
func (p *freezeProxy) pump(c *proxyConn, dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if c.frozen.Load() {
			<-p.done
			return
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	if c.frozen.Load() {
		<-p.done
		return
	}
	_ = c.client.Close()
	_ = c.server.Close()
}
