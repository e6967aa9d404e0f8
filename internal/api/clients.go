package api

import (
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/rotorauth/rotor/internal/tokens"
)

// clientJSON is a client as the admin API shows it: never its secret or
// the secret's hash.
type clientJSON struct {
	ID             string    `json:"client_id"`
	Name           string    `json:"name"`
	Type           string    `json:"type"`
	GrantTypes     []string  `json:"grant_types"`
	AllowedOrigins []string  `json:"allowed_origins"`
	Audience       string    `json:"audience"`
	Roles          []string  `json:"roles"`
	Disabled       bool      `json:"disabled"`
	Default        bool      `json:"default"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
	// Secret is present once: in the answer that created or rotated it.
	Secret string `json:"client_secret,omitempty"`
}

func (s *server) clientView(c tokens.Client, secret string) clientJSON {
	return clientJSON{
		ID: c.ID, Name: c.Name, Type: string(c.Type), GrantTypes: tokens.NonNil(c.GrantTypes),
		AllowedOrigins: tokens.NonNil(c.AllowedOrigins), Audience: c.Audience, Roles: tokens.NonNil(c.Roles),
		Disabled: c.Disabled, Default: c.ID == s.svc.Config().DefaultClientID,
		CreatedAt: c.CreatedAt.UTC(), UpdatedAt: c.UpdatedAt.UTC(), Secret: secret,
	}
}

// clientRequest is the body of POST and PATCH /admin/clients; absent fields
// are left alone (PATCH) or take defaults (POST).
type clientRequest struct {
	ID             string    `json:"client_id"`
	Name           *string   `json:"name"`
	Type           string    `json:"type"`
	GrantTypes     *[]string `json:"grant_types"`
	AllowedOrigins *[]string `json:"allowed_origins"`
	Audience       *string   `json:"audience"`
	Roles          *[]string `json:"roles"`
	Disabled       *bool     `json:"disabled"`
}

func (c clientRequest) spec() tokens.ClientSpec {
	return tokens.ClientSpec{ID: c.ID, Name: c.Name, Type: tokens.ClientType(c.Type), GrantTypes: c.GrantTypes,
		AllowedOrigins: c.AllowedOrigins, Audience: c.Audience, Roles: c.Roles, Disabled: c.Disabled}
}

func (s *server) handleAdminClients(w http.ResponseWriter, r *http.Request, _ tokens.Principal) {
	list, err := s.svc.Clients(r.Context())
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	out := make([]clientJSON, 0, len(list)+1)
	hasDefault := false
	for _, c := range list {
		hasDefault = hasDefault || c.ID == s.svc.Config().DefaultClientID
		out = append(out, s.clientView(c, ""))
	}
	if !hasDefault {
		out = append(out, s.clientView(s.svc.DefaultClient(), ""))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) handleAdminCreateClient(w http.ResponseWriter, r *http.Request, admin tokens.Principal) {
	var req clientRequest
	if _, err := decodeBody(w, r, &req, false, false); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	if req.ID == "" || req.Type == "" {
		writeError(w, r, s.log, badRequest("client_id and type are required"))
		return
	}
	c, secret, err := s.svc.CreateClient(r.Context(), req.spec(), admin.Subject(), s.client(r))
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, s.clientView(c, secret))
}

// pathClientID is the {id} of a client path; a malformed one names no
// client (404), rather than reaching the store.
func pathClientID(r *http.Request) (string, error) {
	id := mux.Vars(r)["id"]
	if !tokens.ValidClientID(id) {
		return "", tokens.ErrNotFound
	}
	return id, nil
}

func (s *server) handleAdminGetClient(w http.ResponseWriter, r *http.Request, _ tokens.Principal) {
	id, err := pathClientID(r)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	c, err := s.svc.Client(r.Context(), id)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, s.clientView(c, ""))
}

func (s *server) handleAdminUpdateClient(w http.ResponseWriter, r *http.Request, admin tokens.Principal) {
	var req clientRequest
	if _, err := decodeBody(w, r, &req, false, false); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	id, err := pathClientID(r)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	if req.ID != "" && req.ID != id {
		writeError(w, r, s.log, badRequest("client_id cannot change"))
		return
	}
	req.ID = id
	c, err := s.svc.UpdateClient(r.Context(), req.spec(), admin.Subject(), s.client(r))
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, s.clientView(c, ""))
}

func (s *server) handleAdminRotateClientSecret(w http.ResponseWriter, r *http.Request, admin tokens.Principal) {
	id, err := pathClientID(r)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	secret, err := s.svc.RotateClientSecret(r.Context(), id, admin.Subject(), s.client(r))
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]string{"client_id": id, "client_secret": secret})
}

func (s *server) handleAdminDeleteClient(w http.ResponseWriter, r *http.Request, admin tokens.Principal) {
	id, err := pathClientID(r)
	if err == nil {
		err = s.svc.DeleteClient(r.Context(), id, admin.Subject(), s.client(r))
	}
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
