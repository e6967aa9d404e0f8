package api

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

// referenceDecode is decodeJSON's encoding/json path: strict, no unknown
// fields, nothing after the object.
func referenceDecode(body []byte, dst any) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return false
	}
	_, err := dec.Token()
	return err == io.EOF
}

var flatSeeds = []string{
	`{"refresh_token":"rt_AgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}`,
	`{}`, ` { } `, "{\n\t\"grant_type\" : \"refresh_token\" ,\r\n \"refresh_token\":\"x\"}\n",
	`{"username":"a@b.cd","password":"pw","client_id":"app","client_secret":"s","scope":"x y"}`,
	`{"refresh_token":"a","refresh_token":"b"}`, `{"REFRESH_TOKEN":"a"}`, `{"Refresh_Token":"a"}`,
	`{"refresh_token":"a\"b"}`, `{"refresh_token":"\u0041"}`, `{"refresh_token":null}`, `{"refresh_token":1}`,
	`{"refresh_token":"a",}`, `{"refresh_token":"a"} {}`, `{"refresh_token":"a"}x`, `{"other":"a"}`,
	`{"refresh_token":"zoë 日本"}`, "{\"refresh_token\":\"a\tb\"}", `{"refresh_token":"a"`, `{"refresh_token"}`,
	`{,}`, `{"a":"1","b":"2","c":"3","d":"4","e":"5","f":"6","g":"7","h":"8","i":"9"}`, "\ufeff{}",
	`{"grant_type":"","username":"","password":"","refresh_token":"","scope":"","client_id":"","client_secret":""}`,
}

// FuzzDecodeFlat: whatever decodeFlat accepts, encoding/json decodes to
// the same fields without error; whatever it refuses, it leaves alone.
func FuzzDecodeFlat(f *testing.F) {
	for _, s := range flatSeeds {
		f.Add([]byte(s), "prior")
	}
	f.Fuzz(func(t *testing.T, body []byte, prior string) {
		if !utf8.Valid(body) {
			return // decodeJSON refuses it before
		}
		fast := tokenRequest{Scope: prior, Password: prior}
		before := fast
		if !fast.decodeFlat(body) {
			if fast != before {
				t.Fatalf("decodeFlat refused %q but changed %+v into %+v", body, before, fast)
			}
			return
		}
		ref := before
		if !referenceDecode(body, &ref) {
			t.Fatalf("decodeFlat accepted %q, which encoding/json refuses", body)
		}
		if fast != ref {
			t.Fatalf("%q: decodeFlat %+v, encoding/json %+v", body, fast, ref)
		}
	})
}

// TestDecodeFlatTakesTheCommonCase: the bodies clients send take the fast
// path (else it would be dead code), including the JSON a form becomes.
func TestDecodeFlatTakesTheCommonCase(t *testing.T) {
	form, _ := json.Marshal(map[string]string{"grant_type": "refresh_token", "refresh_token": "rt_x", "client_id": "app"})
	for _, body := range []string{flatSeeds[0], `{}`, flatSeeds[3], flatSeeds[4], string(form), flatSeeds[16], flatSeeds[len(flatSeeds)-1]} {
		var r tokenRequest
		if !r.decodeFlat([]byte(body)) {
			t.Errorf("decodeFlat refused %s", body)
		}
	}
	for _, body := range []string{`{"refresh_token":"a","refresh_token":"b"}`, `{"REFRESH_TOKEN":"a"}`, `{"refresh_token":null}`} {
		var r tokenRequest
		if r.decodeFlat([]byte(body)) {
			t.Errorf("decodeFlat took %s, which encoding/json must decide", body)
		}
	}
}

// FuzzTokenResponseJSON: appendJSON writes what json.Encoder writes.
func FuzzTokenResponseJSON(f *testing.F) {
	f.Add("eyJhbGciOiJFZERTQSJ9.e30.c2ln", "Bearer", int64(900), "rt_abc-_", int64(2592000), "0190a4b2-0000-7000-8000-000000000000")
	f.Add("", "", int64(0), "", int64(-1), "")
	f.Add("<&>\"\\\x00\x1f\x7f", "é\u2028\u2029", int64(-9223372036854775808), "\xff\xfe", int64(9223372036854775807), "日本")
	f.Fuzz(func(t *testing.T, at, typ string, exp int64, rt string, rexp int64, sid string) {
		r := tokenResponse{AccessToken: at, TokenType: typ, ExpiresIn: exp, RefreshToken: rt, RefreshTokenExpiresIn: rexp, SessionID: sid}
		var want bytes.Buffer
		if err := json.NewEncoder(&want).Encode(r); err != nil {
			t.Fatal(err)
		}
		if got := r.appendJSON(nil); !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("appendJSON %q, json.Encoder %q", got, want.Bytes())
		}
	})
}

// TestMediaTypeShortcuts: the media types mediaType answers without
// parsing are what parsing gives.
func TestMediaTypeShortcuts(t *testing.T) {
	for _, ct := range []string{"application/json", "application/x-www-form-urlencoded"} {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil || mt != ct || len(params) != 0 {
			t.Errorf("mime.ParseMediaType(%q) = %q, %v, %v", ct, mt, params, err)
		}
	}
}

// TestExactRoutes: every route without path variables is served from the
// exact map, for its method (and HEAD for GET), and nothing else is.
func TestExactRoutes(t *testing.T) {
	s := &server{opts: Options{Registry: prometheus.NewRegistry()}}
	e, ok := s.routes().(exactRoutes)
	if !ok {
		t.Fatal("routes is not exactRoutes")
	}
	want := 0
	for _, rt := range s.table() {
		if strings.Contains(rt.Path, "{") {
			continue
		}
		methods := []string{rt.Method}
		if rt.Method == http.MethodGet {
			methods = append(methods, http.MethodHead)
		}
		for _, m := range methods {
			want++
			if _, ok := e.exact[methodPath{m, rt.Path}]; !ok {
				t.Errorf("%s %s is not served exactly", m, rt.Path)
			}
			for _, other := range []methodPath{{m, rt.Path + "/"}, {m, strings.ToUpper(rt.Path)}, {m, "/." + rt.Path}, {"PUT", rt.Path}} {
				if _, ok := e.exact[other]; ok {
					t.Errorf("%s %s is served exactly", other.method, other.path)
				}
			}
		}
	}
	if len(e.exact) != want {
		t.Errorf("%d exact routes, want %d", len(e.exact), want)
	}
}
