package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"unicode/utf8"
)

// MaxBodyBytes is the largest request body accepted (SPEC §4).
const MaxBodyBytes = 64 << 10

// maxJSONDepth bounds nesting in request bodies.
const maxJSONDepth = 16

var errTooLarge = &httpError{status: http.StatusRequestEntityTooLarge, code: codeTooLarge, msg: "request body is larger than 64 KiB"}

// readBody reads the whole body, refusing more than MaxBodyBytes.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.ContentLength > MaxBodyBytes {
		return nil, errTooLarge
	}
	if r.ContentLength >= 0 {
		// The usual case: the length is known, so read exactly that much in
		// one allocation, and refuse a body that runs on past it.
		body := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, body); err != nil {
			return nil, badRequest("could not read the request body")
		}
		return body, nil
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, errTooLarge
	}
	if err != nil {
		return nil, badRequest("could not read the request body")
	}
	return body, nil
}

// mediaType returns the request's media type, "" when there is none.
func mediaType(r *http.Request) string {
	ct := r.Header.Get("Content-Type")
	switch ct {
	case "":
		return ""
	case "application/json", "application/x-www-form-urlencoded":
		return ct // what mime.ParseMediaType makes of these, without its allocations
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return "invalid"
	}
	if cs, ok := params["charset"]; ok && !equalFold(cs, "utf-8") {
		return "invalid"
	}
	return mt
}

func equalFold(a, b string) bool { return bytes.EqualFold([]byte(a), []byte(b)) }

// decodeJSON decodes a JSON object into dst strictly: valid UTF-8, no BOM,
// no unknown fields, no trailing data, bounded nesting. An empty body is
// allowed only when allowEmpty.
func decodeJSON(body []byte, dst any, allowEmpty bool) error {
	if len(bytes.TrimSpace(body)) == 0 {
		if allowEmpty {
			return nil
		}
		return badRequest("the request body must be a JSON object")
	}
	if !utf8.Valid(body) || bytes.HasPrefix(body, []byte("\xef\xbb\xbf")) {
		return badRequest("the request body must be UTF-8 JSON without a byte-order mark")
	}
	if depth(body) > maxJSONDepth {
		return badRequest("the request body is nested too deeply")
	}
	if fd, ok := dst.(flatDecoder); ok && fd.decodeFlat(body) {
		return nil // the common case, as encoding/json would decode it (jsonfast.go)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) && ute.Field != "" {
			return badRequest("field " + ute.Field + " has the wrong type")
		}
		if msg := err.Error(); len(msg) > 14 && msg[:14] == "json: unknown " {
			return badRequest("the request body has an " + msg[6:])
		}
		return badRequest("the request body is not a valid JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("the request body has data after the JSON object")
	}
	return nil
}

// depth returns the deepest nesting of arrays and objects, ignoring
// brackets inside strings.
func depth(b []byte) int {
	d, maxD, inStr, esc := 0, 0, false, false
	for _, c := range b {
		switch {
		case inStr && esc:
			esc = false
		case inStr && c == '\\':
			esc = true
		case c == '"':
			inStr = !inStr
		case inStr:
		case c == '{' || c == '[':
			d++
			if d > maxD {
				maxD = d
			}
		case c == '}' || c == ']':
			d--
		}
	}
	return maxD
}

// decodeForm parses an application/x-www-form-urlencoded body. Parameters
// may not repeat (RFC 6749 §3.1) and must be valid UTF-8.
func decodeForm(body []byte) (map[string]string, error) {
	if !utf8.Valid(body) {
		return nil, badRequest("the form body must be UTF-8")
	}
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, badRequest("the form body is malformed")
	}
	out := make(map[string]string, len(vals))
	for k, v := range vals {
		if len(v) != 1 {
			return nil, badRequest("parameter " + k + " is repeated")
		}
		out[k] = v[0]
	}
	return out, nil
}

// decodeBody reads a JSON or form body into dst (a pointer to a struct with
// json tags) and reports which media type it was. Form fields fill the JSON
// fields of the same name; unknown form fields are refused like JSON ones.
func decodeBody(w http.ResponseWriter, r *http.Request, dst any, allowForm, allowEmpty bool) (form bool, err error) {
	body, err := readBody(w, r)
	if err != nil {
		return false, err
	}
	switch mt := mediaType(r); {
	case mt == "application/json" || (mt == "" && allowEmpty && len(bytes.TrimSpace(body)) == 0):
		return false, decodeJSON(body, dst, allowEmpty)
	case mt == "application/x-www-form-urlencoded" && allowForm:
		vals, err := decodeForm(body)
		if err != nil {
			return true, err
		}
		// Round-trip through JSON so one struct serves both encodings.
		b, _ := json.Marshal(vals)
		return true, decodeJSON(b, dst, allowEmpty)
	default:
		if allowForm {
			return false, badRequest("Content-Type must be application/json or application/x-www-form-urlencoded")
		}
		return false, badRequest("Content-Type must be application/json")
	}
}

// writeJSON writes v as JSON with status.
// Responses are not cacheable unless the handler said otherwise (the JWKS and
// metadata are public): they carry tokens, emails, IPs and audit data.
func writeJSON(w http.ResponseWriter, status int, v any) {
	if w.Header().Get("Cache-Control") == "" {
		w.Header().Set("Cache-Control", "no-store")
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	if a, ok := v.(jsonAppender); ok {
		_, _ = w.Write(a.appendJSON(make([]byte, 0, 1024))) // what the encoder would write (jsonfast.go)
		return
	}
	_ = json.NewEncoder(w).Encode(v)
}
