package api

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/rotorauth/rotor/internal/tokens"
)

// Pagination. Lists keep their JSON array bodies; the next page, when there
// is one, is named by a Link header (RFC 8288, rel="next"), as GitHub's API
// does, so clients that read one page keep working.

// pageLimit reads ?limit= (default def, at most max).
func pageLimit(r *http.Request, def, max int) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		return 0, badRequest(fmt.Sprintf("limit must be an integer from 1 to %d", max))
	}
	return n, nil
}

// setNextLink points rel="next" at this request's URL with param set to
// value.
func setNextLink(w http.ResponseWriter, r *http.Request, param, value string) {
	q := r.URL.Query()
	q.Set(param, value)
	u := url.URL{Path: r.URL.Path, RawQuery: q.Encode()}
	w.Header().Set("Link", "<"+u.String()+`>; rel="next"`)
}

// encodeSessionCursor makes an opaque cursor of c: base64url of
// "<unix microseconds>.<session id>".
func encodeSessionCursor(c tokens.SessionCursor) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.CreatedAt.UnixMicro(), 10) + "." + c.ID.String()))
}

// sessionCursor reads ?cursor= of a sessions list (nil when absent).
func sessionCursor(r *http.Request) (*tokens.SessionCursor, error) {
	v := r.URL.Query().Get("cursor")
	if v == "" {
		return nil, nil
	}
	bad := badRequest("cursor must be a value from this list's Link header")
	b, err := base64.RawURLEncoding.Strict().DecodeString(v)
	if err != nil || len(b) > 64 {
		return nil, bad
	}
	micros, id, ok := strings.Cut(string(b), ".")
	if !ok {
		return nil, bad
	}
	us, err := strconv.ParseInt(micros, 10, 64)
	if err != nil {
		return nil, bad
	}
	sid, err := uuid.Parse(id)
	if err != nil {
		return nil, bad
	}
	return &tokens.SessionCursor{CreatedAt: time.UnixMicro(us).UTC(), ID: sid}, nil
}

// feedCursor reads ?since= of the revocation feed: a plain integer (the
// cursor of a last page, and what older clients keep) or floor.after.next
// while paging.
func feedCursor(r *http.Request) (tokens.FeedCursor, error) {
	v := r.URL.Query().Get("since")
	bad := badRequest("since must be a cursor returned by this endpoint")
	if v == "" {
		return tokens.FeedCursor{}, nil
	}
	parts := strings.Split(v, ".")
	if len(parts) != 1 && len(parts) != 3 {
		return tokens.FeedCursor{}, bad
	}
	var n [3]int64
	for i, p := range parts {
		x, err := strconv.ParseInt(p, 10, 64)
		if err != nil || x < 0 {
			return tokens.FeedCursor{}, bad
		}
		n[i] = x
	}
	if len(parts) == 3 && n[1] == 0 {
		return tokens.FeedCursor{}, bad
	}
	return tokens.FeedCursor{Floor: n[0], After: n[1], Next: n[2]}, nil
}

// encodeFeedCursor is the inverse of feedCursor.
func encodeFeedCursor(c tokens.FeedCursor) string {
	if c.After == 0 {
		return strconv.FormatInt(c.Floor, 10)
	}
	return fmt.Sprintf("%d.%d.%d", c.Floor, c.After, c.Next)
}
