package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/rotorauth/rotor/internal/tokens"
)

func (s *server) handleAdminCreateUser(w http.ResponseWriter, r *http.Request, _ tokens.Principal) {
	var req signupRequest
	if _, err := decodeBody(w, r, &req, false, false); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	u, err := s.svc.Signup(r.Context(), req.Email, req.Password, req.Roles)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusCreated, userView(u, true))
}

func (s *server) handleAdminFindUser(w http.ResponseWriter, r *http.Request, _ tokens.Principal) {
	email := r.URL.Query().Get("email")
	if email == "" {
		writeError(w, r, s.log, badRequest("the email query parameter is required"))
		return
	}
	u, err := s.svc.FindUser(r.Context(), email)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, userView(u, true))
}

func (s *server) handleAdminUpdateUser(w http.ResponseWriter, r *http.Request, admin tokens.Principal) {
	id, err := pathID(r, "user")
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	var req struct {
		Disabled *bool     `json:"disabled"`
		Roles    *[]string `json:"roles"`
	}
	if _, err := decodeBody(w, r, &req, false, false); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	if req.Disabled == nil && req.Roles == nil {
		writeError(w, r, s.log, badRequest("give disabled, roles or both"))
		return
	}
	u, err := s.svc.UpdateUser(r.Context(), admin, id, req.Disabled, req.Roles, s.client(r))
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, userView(u, true))
}

func (s *server) handleAdminUserSessions(w http.ResponseWriter, r *http.Request, _ tokens.Principal) {
	id, err := pathID(r, "user")
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	if _, err := s.svc.User(r.Context(), id); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	list, ok := s.sessionsPage(w, r, id)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, s.sessionsView(list, uuid.Nil))
}

func (s *server) handleAdminRevokeUserSessions(w http.ResponseWriter, r *http.Request, admin tokens.Principal) {
	id, err := pathID(r, "user")
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	n, err := s.svc.RevokeUserSessions(r.Context(), admin, id, s.client(r))
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"revoked": n})
}

func (s *server) handleAdminRevokeSession(w http.ResponseWriter, r *http.Request, admin tokens.Principal) {
	id, err := pathID(r, "session")
	if err == nil {
		err = s.svc.RevokeSession(r.Context(), admin, id, s.client(r))
	}
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type auditJSON struct {
	ID        int64             `json:"id"`
	At        time.Time         `json:"at"`
	Kind      string            `json:"kind"`
	UserID    *uuid.UUID        `json:"user_id"`
	SessionID *uuid.UUID        `json:"session_id"`
	IP        string            `json:"ip"`
	Detail    map[string]string `json:"detail"`
}

func (s *server) handleAdminAudit(w http.ResponseWriter, r *http.Request, _ tokens.Principal) {
	q := r.URL.Query()
	var userID uuid.UUID
	if v := q.Get("user_id"); v != "" {
		id, err := uuid.Parse(v)
		if err != nil {
			writeError(w, r, s.log, badRequest("user_id must be a UUID"))
			return
		}
		userID = id
	}
	limit, err := pageLimit(r, 100, tokens.MaxAuditPage)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	var before int64
	if v := q.Get("before"); v != "" {
		if before, err = strconv.ParseInt(v, 10, 64); err != nil || before < 1 {
			writeError(w, r, s.log, badRequest("before must be an event id (a positive integer)"))
			return
		}
	}
	evs, next, err := s.svc.Audit(r.Context(), userID, before, limit)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	if next != 0 {
		setNextLink(w, r, "before", strconv.FormatInt(next, 10))
	}
	out := make([]auditJSON, 0, len(evs))
	for _, ev := range evs {
		d := tokens.NonNilMap(ev.Detail)
		out = append(out, auditJSON{ID: ev.ID, At: ev.At.UTC(), Kind: string(ev.Kind), UserID: ev.UserID, SessionID: ev.SessionID, IP: ev.IP, Detail: d})
	}
	writeJSON(w, http.StatusOK, out)
}
