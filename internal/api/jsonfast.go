package api

import (
	"strconv"

	"github.com/rotorauth/rotor/internal/tokens"
)

// The hot path of POST /refresh (and /token) reads a flat JSON object of
// strings and answers a tokenResponse. encoding/json does both through
// reflection; the two small routines here do the common case directly and
// leave everything else to encoding/json, whose results they are fuzzed
// against (jsonfast_test.go):
//
//   - decodeFlat accepts only {"name":"value",...} with each name exactly
//     one of the struct's JSON names, at most once, and each value a string
//     without escapes or control characters; anything else (escapes,
//     duplicates, other names or cases, null, numbers, nesting) is decoded
//     by encoding/json as before, with its errors.
//   - appendJSON writes a tokenResponse as json.Encoder does, newline
//     included.

// jsonAppender is a response that encodes itself as json.Encoder would.
type jsonAppender interface {
	appendJSON(b []byte) []byte
}

// flatDecoder is a request that can decode the flat common case itself;
// it reports false, having changed nothing, for anything else.
type flatDecoder interface {
	decodeFlat(body []byte) bool
}

// maxFlatFields is the most members scanFlat takes in.
const maxFlatFields = 8

// scanFlat splits body, a JSON object of string members none of which has
// an escape or control character, into its names and values (unquoted).
// It reports false for anything else, or more than maxFlatFields members.
// body must be valid UTF-8 (decodeJSON checks that first).
func scanFlat(body []byte, kv *[maxFlatFields][2][]byte) (int, bool) {
	i := skipSpace(body, 0)
	if i == len(body) || body[i] != '{' {
		return 0, false
	}
	i = skipSpace(body, i+1)
	n := 0
	if i < len(body) && body[i] == '}' {
		return 0, skipSpace(body, i+1) == len(body)
	}
	for {
		if n == maxFlatFields {
			return 0, false
		}
		var ok bool
		if kv[n][0], i, ok = scanPlainString(body, i); !ok {
			return 0, false
		}
		if i = skipSpace(body, i); i == len(body) || body[i] != ':' {
			return 0, false
		}
		if kv[n][1], i, ok = scanPlainString(body, skipSpace(body, i+1)); !ok {
			return 0, false
		}
		n++
		if i = skipSpace(body, i); i == len(body) {
			return 0, false
		}
		switch body[i] {
		case ',':
			i = skipSpace(body, i+1)
		case '}':
			return n, skipSpace(body, i+1) == len(body)
		default:
			return 0, false
		}
	}
}

// scanPlainString reads the string starting at body[i] (its opening
// quote) and returns its contents and the index after its closing quote;
// false if there is none, or it holds an escape or a control character.
func scanPlainString(body []byte, i int) ([]byte, int, bool) {
	if i == len(body) || body[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(body); j++ {
		switch c := body[j]; {
		case c == '"':
			return body[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20:
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// skipSpace skips JSON white space from body[i].
func skipSpace(body []byte, i int) int {
	for i < len(body) {
		switch body[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// decodeFlat implements flatDecoder.
func (r *tokenRequest) decodeFlat(body []byte) bool {
	var kv [maxFlatFields][2][]byte
	n, ok := scanFlat(body, &kv)
	if !ok {
		return false
	}
	var fields [maxFlatFields]*string
	var seen uint8
	for i := range n {
		var f int
		var p *string
		switch string(kv[i][0]) {
		case "grant_type":
			f, p = 0, &r.GrantType
		case "username":
			f, p = 1, &r.Username
		case "password":
			f, p = 2, &r.Password
		case "refresh_token":
			f, p = 3, &r.RefreshToken
		case "scope":
			f, p = 4, &r.Scope
		case "client_id":
			f, p = 5, &r.ClientID
		case "client_secret":
			f, p = 6, &r.ClientSecret
		default:
			return false // another name, or another case of one: encoding/json decides
		}
		if seen&(1<<f) != 0 {
			return false // a repeated name: encoding/json decides
		}
		seen |= 1 << f
		fields[i] = p
	}
	for i := range n {
		*fields[i] = string(kv[i][1])
	}
	return true
}

// appendJSON implements jsonAppender.
func (r tokenResponse) appendJSON(b []byte) []byte {
	b = append(b, `{"access_token":`...)
	b = appendJSONString(b, r.AccessToken)
	b = append(b, `,"token_type":`...)
	b = appendJSONString(b, r.TokenType)
	b = append(b, `,"expires_in":`...)
	b = strconv.AppendInt(b, r.ExpiresIn, 10)
	if r.RefreshToken != "" {
		b = append(b, `,"refresh_token":`...)
		b = appendJSONString(b, r.RefreshToken)
	}
	b = append(b, `,"refresh_token_expires_in":`...)
	b = strconv.AppendInt(b, r.RefreshTokenExpiresIn, 10)
	b = append(b, `,"session_id":`...)
	b = appendJSONString(b, r.SessionID)
	return append(b, "}\n"...)
}

// appendJSONString is tokens.AppendJSONString: one copy of the escaping.
func appendJSONString(b []byte, s string) []byte { return tokens.AppendJSONString(b, s) }
