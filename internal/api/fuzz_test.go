package api

import (
	"errors"
	"net/http"
	"testing"
)

// FuzzDecodeJSON: request decoding never panics and refuses bad input with
// a 400 invalid_request, never anything that would become a 500.
func FuzzDecodeJSON(f *testing.F) {
	for _, seed := range []string{
		`{"username":"a@b.cd","password":"x"}`, `{}`, `[]`, `{"a":1}`, "\xef\xbb\xbf{}",
		`{"username":"\ud800"}`, `{"username":"a"} trailing`, `[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]`,
		`{"username":1}`, `{"grant_type":"password","username":"a","password":"b","refresh_token":"rt_"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var dst struct {
			GrantType    string `json:"grant_type"`
			Username     string `json:"username"`
			Password     string `json:"password"`
			RefreshToken string `json:"refresh_token"`
		}
		err := decodeJSON(body, &dst, false)
		checkClientError(t, err)
		_, ferr := decodeForm(body)
		checkClientError(t, ferr)
	})
}

func checkClientError(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var he *httpError
	if !errors.As(err, &he) || he.status != http.StatusBadRequest || he.code != codeInvalidRequest {
		t.Fatalf("decoding error %v is not a 400 invalid_request", err)
	}
}
