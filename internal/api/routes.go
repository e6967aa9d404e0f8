package api

import (
	"net/http"
	"sort"
	"strings"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// routes registers every endpoint in one place; it mirrors openapi.yaml.
// Each path answers its own methods and 405 with Allow for the others.
func (s *server) routes() http.Handler {
	type route struct {
		method, path string
		h            http.HandlerFunc
	}
	table := []route{
		{"POST", "/users", s.handleSignup},
		{"POST", "/token", s.handleToken},
		{"POST", "/refresh", s.handleRefresh},
		{"POST", "/logout", s.handleLogout},
		{"POST", "/revoke", s.handleRevoke},
		{"POST", "/introspect", s.handleIntrospect},
		{"GET", "/me", s.handleMe},
		{"GET", "/sessions", s.handleSessions},
		{"DELETE", "/sessions/{id}", s.handleDeleteSession},
		{"POST", "/password", s.handlePassword},
		{"POST", "/admin/users", s.admin(s.handleAdminCreateUser)},
		{"GET", "/admin/users", s.admin(s.handleAdminFindUser)},
		{"PATCH", "/admin/users/{id}", s.admin(s.handleAdminUpdateUser)},
		{"GET", "/admin/users/{id}/sessions", s.admin(s.handleAdminUserSessions)},
		{"DELETE", "/admin/users/{id}/sessions", s.admin(s.handleAdminRevokeUserSessions)},
		{"DELETE", "/admin/sessions/{id}", s.admin(s.handleAdminRevokeSession)},
		{"GET", "/admin/audit", s.admin(s.handleAdminAudit)},
		{"GET", "/admin/clients", s.admin(s.handleAdminClients)},
		{"POST", "/admin/clients", s.admin(s.handleAdminCreateClient)},
		{"GET", "/admin/clients/{id}", s.admin(s.handleAdminGetClient)},
		{"PATCH", "/admin/clients/{id}", s.admin(s.handleAdminUpdateClient)},
		{"DELETE", "/admin/clients/{id}", s.admin(s.handleAdminDeleteClient)},
		{"POST", "/admin/clients/{id}/secret", s.admin(s.handleAdminRotateClientSecret)},
		{"GET", "/revocations", s.handleRevocations},
		{"GET", "/.well-known/jwks.json", s.handleJWKS},
		{"GET", "/.well-known/oauth-authorization-server", s.handleMetadata},
		{"GET", "/healthz", s.handleHealthz},
		{"GET", "/readyz", s.handleReadyz},
		{"GET", "/metrics", promhttp.HandlerFor(s.opts.Registry, promhttp.HandlerOpts{}).ServeHTTP},
	}
	byPath := map[string]map[string]http.HandlerFunc{}
	var order []string
	for _, rt := range table {
		if byPath[rt.path] == nil {
			byPath[rt.path] = map[string]http.HandlerFunc{}
			order = append(order, rt.path)
		}
		byPath[rt.path][rt.method] = rt.h
	}
	r := mux.NewRouter()
	for _, path := range order {
		methods := byPath[path]
		allow := allowHeader(methods)
		r.Handle(path, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			setRoute(req, path)
			h, ok := methods[req.Method]
			if !ok && req.Method == http.MethodHead {
				h, ok = methods[http.MethodGet]
			}
			if !ok {
				w.Header().Set("Allow", allow)
				writeError(w, req, s.log, &httpError{status: http.StatusMethodNotAllowed, code: codeMethodNotAllowed,
					msg: "method " + req.Method + " is not allowed here; allowed: " + allow})
				return
			}
			h(w, req)
		}))
	}
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		writeError(w, req, s.log, &httpError{status: http.StatusNotFound, code: codeNotFound, msg: "no such endpoint"})
	})
	return r
}

func allowHeader(methods map[string]http.HandlerFunc) string {
	var m []string
	for k := range methods {
		m = append(m, k)
	}
	if _, ok := methods[http.MethodGet]; ok {
		m = append(m, http.MethodHead)
	}
	sort.Strings(m)
	return strings.Join(m, ", ")
}
