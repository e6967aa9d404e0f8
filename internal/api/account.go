package api

import (
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"

	"github.com/rotorauth/rotor/internal/tokens"
)

type userJSON struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Roles     []string  `json:"roles"`
	Disabled  *bool     `json:"disabled,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

func userView(u tokens.User, withDisabled bool) userJSON {
	v := userJSON{ID: u.ID.String(), Email: u.Email, Roles: u.Roles, CreatedAt: u.CreatedAt.UTC()}
	v.Roles = tokens.NonNil(v.Roles)
	if withDisabled {
		d := u.Disabled
		v.Disabled = &d
	}
	return v
}

type signupRequest struct {
	Email    string   `json:"email"`
	Password string   `json:"password"`
	Roles    []string `json:"roles"` // admin endpoint only
}

func (s *server) handleSignup(w http.ResponseWriter, r *http.Request) {
	if !s.opts.SignupEnabled {
		writeError(w, r, s.log, &httpError{status: http.StatusForbidden, code: codeAccessDenied, msg: "sign-up is disabled"})
		return
	}
	var req struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	if _, err := decodeBody(w, r, &req, false, false); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	if !s.limit(w, r, s.ipLimit, "signup:"+s.clientPrefix(r), time.Now(), "signup_ip") {
		return
	}
	var u tokens.User
	err := s.hashing(r, func() (err error) {
		u, err = s.svc.Signup(r.Context(), req.Email, req.Password, nil)
		return err
	})
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusCreated, userView(u, false))
}

func (s *server) handleMe(w http.ResponseWriter, r *http.Request, p tokens.Principal) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, struct {
		ID        string   `json:"id"`
		Email     string   `json:"email"`
		Roles     []string `json:"roles"`
		SessionID string   `json:"session_id"`
	}{p.UserID.String(), p.Email, p.Roles, p.SessionID.String()})
}

type sessionJSON struct {
	ID         string    `json:"id"`
	CreatedAt  time.Time `json:"created_at"`
	LastUsedAt time.Time `json:"last_used_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	UserAgent  string    `json:"user_agent"`
	IP         string    `json:"ip"`
	ClientID   string    `json:"client_id"`
	Current    bool      `json:"current"`
}

func (s *server) sessionsView(list []tokens.Session, current uuid.UUID) []sessionJSON {
	out := make([]sessionJSON, 0, len(list))
	for _, ss := range list {
		out = append(out, sessionJSON{
			ID: ss.ID.String(), CreatedAt: ss.CreatedAt.UTC(), LastUsedAt: ss.LastUsedAt.UTC(), ExpiresAt: ss.ExpiresAt.UTC(),
			UserAgent: ss.UserAgent, IP: ss.IP, ClientID: s.svc.SessionClientID(ss), Current: ss.ID == current,
		})
	}
	return out
}

func (s *server) handleSessions(w http.ResponseWriter, r *http.Request, p tokens.Principal) {
	list, ok := s.sessionsPage(w, r, p.UserID)
	if !ok {
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, s.sessionsView(list, p.SessionID))
}

// sessionsPage reads one page of a user's sessions (?limit=, ?cursor=) and
// sets the Link header of the next one; on failure it has answered.
func (s *server) sessionsPage(w http.ResponseWriter, r *http.Request, userID uuid.UUID) ([]tokens.Session, bool) {
	limit, err := pageLimit(r, 50, tokens.MaxSessionsPage)
	var after *tokens.SessionCursor
	if err == nil {
		after, err = sessionCursor(r)
	}
	var list []tokens.Session
	var next *tokens.SessionCursor
	if err == nil {
		list, next, err = s.svc.SessionsPage(r.Context(), userID, after, limit)
	}
	if err != nil {
		writeError(w, r, s.log, err)
		return nil, false
	}
	if next != nil {
		setNextLink(w, r, "cursor", encodeSessionCursor(*next))
	}
	return list, true
}

// pathID parses the {id} path variable.
func pathID(r *http.Request, what string) (uuid.UUID, error) {
	id, err := uuid.Parse(mux.Vars(r)["id"])
	if err != nil {
		return uuid.Nil, badRequest(what + " id must be a UUID")
	}
	return id, nil
}

func (s *server) handleDeleteSession(w http.ResponseWriter, r *http.Request, p tokens.Principal) {
	id, err := pathID(r, "session")
	if err == nil {
		err = s.svc.RevokeOwnSession(r.Context(), p, id, s.client(r))
	}
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) handlePassword(w http.ResponseWriter, r *http.Request, p tokens.Principal) {
	var req struct {
		Current string `json:"current_password"`
		New     string `json:"new_password"`
	}
	if _, err := decodeBody(w, r, &req, false, false); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	if req.Current == "" || req.New == "" {
		writeError(w, r, s.log, badRequest("current_password and new_password are required"))
		return
	}
	if !s.limit(w, r, s.acctLimit, "password:"+p.UserID.String(), time.Now(), "password_user") {
		return
	}
	err := s.hashing(r, func() error { return s.svc.ChangePassword(r.Context(), p, req.Current, req.New, s.client(r)) })
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
