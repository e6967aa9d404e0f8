package main

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHeaderFloodAndSlowloris checks the http.Server limits of the real
// program: a flood of headers gets 431, and a client that never finishes
// its headers is cut off by ReadHeaderTimeout while normal requests keep
// being served promptly.
func TestHeaderFloodAndSlowloris(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for ReadHeaderTimeout")
	}
	in := start(t, map[string]string{"QUIET_ACCESS_LOG": "true"})
	req, _ := http.NewRequest("GET", in.base+"/healthz", nil)
	for i := 0; i < 2000; i++ {
		req.Header.Add("X-Flood", strings.Repeat("x", 40))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("a header flood got %d, want 431", resp.StatusCode)
	}

	conn, err := net.Dial("tcp", strings.TrimPrefix(in.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	closed := make(chan time.Duration, 1)
	go func() {
		_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, _ = bufio.NewReader(conn).ReadByte() // returns when the server hangs up
		closed <- time.Since(began)
	}()
	for i := 0; i < 10; i++ { // meanwhile, normal requests are fine
		t0 := time.Now()
		if st, _ := call(t, "GET", in.base+"/healthz", "", ""); st != 200 {
			t.Fatalf("/healthz %d during a slow client", st)
		}
		if d := time.Since(t0); d > time.Second {
			t.Fatalf("a normal request took %v during a slow client", d)
		}
		time.Sleep(100 * time.Millisecond)
	}
	select {
	case d := <-closed:
		if d > 10*time.Second {
			t.Fatalf("the slow client was cut off after %v", d)
		}
		t.Logf("slow client cut off after %v", d.Round(100*time.Millisecond))
	case <-time.After(15 * time.Second):
		t.Fatal("the slow client was never cut off")
	}
}
