package api

import (
	"net/http"
	"strings"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Guard is what a route requires before its handler runs. The route table
// shows it for every route, and the handler gets what the guard checked.
type Guard string

// Guards.
const (
	// Public routes need no access token. Some read credentials of their
	// own (a refresh token, client authentication) and say so.
	Public Guard = "public"
	// User routes need an access token that acts for a user.
	User Guard = "user"
	// Role routes need an access token with one of the route's roles.
	Role Guard = "role"
)

// Route is one entry of the route table: what RouteTable reports.
type Route struct {
	Method, Path string
	Guard        Guard
	Roles        []string // for Role
}

// route is a Route with its handler.
type route struct {
	Route
	h http.HandlerFunc
}

// table is every endpoint in one place, with its guard; it mirrors
// openapi.yaml.
func (s *server) table() []route {
	pub := func(m, p string, h http.HandlerFunc) route { return route{Route{m, p, Public, nil}, h} }
	usr := func(m, p string, h principalHandler) route { return route{Route{m, p, User, nil}, s.asUser(h)} }
	rol := func(m, p string, roles []string, h principalHandler) route {
		return route{Route{m, p, Role, roles}, s.withRoles(roles, h)}
	}
	admin := []string{"admin"}
	return []route{
		pub("POST", "/users", s.handleSignup),
		pub("POST", "/token", s.handleToken),           // credentials, a refresh token or client authentication
		pub("POST", "/refresh", s.handleRefresh),       // a refresh token (body or cookie)
		pub("POST", "/logout", s.handleLogout),         // an access token and/or a refresh token
		pub("POST", "/revoke", s.handleRevoke),         // the token itself, client authentication
		pub("POST", "/introspect", s.handleIntrospect), // role admin/introspect: a bearer token or a confidential client
		usr("GET", "/me", s.handleMe),
		usr("GET", "/sessions", s.handleSessions),
		usr("DELETE", "/sessions/{id}", s.handleDeleteSession),
		usr("POST", "/password", s.handlePassword),
		rol("POST", "/admin/users", admin, s.handleAdminCreateUser),
		rol("GET", "/admin/users", admin, s.handleAdminFindUser),
		rol("PATCH", "/admin/users/{id}", admin, s.handleAdminUpdateUser),
		rol("GET", "/admin/users/{id}/sessions", admin, s.handleAdminUserSessions),
		rol("DELETE", "/admin/users/{id}/sessions", admin, s.handleAdminRevokeUserSessions),
		rol("DELETE", "/admin/sessions/{id}", admin, s.handleAdminRevokeSession),
		rol("GET", "/admin/audit", admin, s.handleAdminAudit),
		rol("GET", "/admin/clients", admin, s.handleAdminClients),
		rol("POST", "/admin/clients", admin, s.handleAdminCreateClient),
		rol("GET", "/admin/clients/{id}", admin, s.handleAdminGetClient),
		rol("PATCH", "/admin/clients/{id}", admin, s.handleAdminUpdateClient),
		rol("DELETE", "/admin/clients/{id}", admin, s.handleAdminDeleteClient),
		rol("POST", "/admin/clients/{id}/secret", admin, s.handleAdminRotateClientSecret),
		rol("GET", "/revocations", []string{"admin", "introspect"}, s.handleRevocations),
		pub("GET", "/.well-known/jwks.json", s.handleJWKS),
		pub("GET", "/.well-known/oauth-authorization-server", s.handleMetadata),
		pub("GET", "/healthz", s.handleHealthz),
		pub("GET", "/readyz", s.handleReadyz),
		pub("GET", "/metrics", promhttp.HandlerFor(s.opts.Registry, promhttp.HandlerOpts{}).ServeHTTP),
	}
}

// RouteTable returns every route with its guard, as the server serves
// them (for the contract test and documentation).
func RouteTable() []Route {
	s := &server{opts: Options{}}
	var out []Route
	for _, r := range s.table() {
		out = append(out, r.Route)
	}
	return out
}

// routes builds the router from the table with gorilla/mux's own method
// matching (GET routes answer HEAD too); an unknown path is a JSON 404, a
// known path with another method a JSON 405 with Allow.
func (s *server) routes() http.Handler {
	r := mux.NewRouter()
	exact := map[methodPath]http.Handler{}
	for _, rt := range s.table() {
		methods := []string{rt.Method}
		if rt.Method == http.MethodGet {
			methods = append(methods, http.MethodHead)
		}
		path, h := rt.Path, rt.h
		handler := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			setRoute(req, path)
			h(w, req)
		})
		route := r.Handle(path, handler).Methods(methods...)
		if strings.ContainsAny(path, "{}") {
			continue
		}
		for _, m := range methods {
			// Dispatched without the router only where the router itself
			// picks this route (no earlier route takes the same request).
			probe, _ := http.NewRequest(m, path, nil)
			var match mux.RouteMatch
			if r.Match(probe, &match) && match.Route == route {
				exact[methodPath{m, path}] = handler
			}
		}
	}
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		writeError(w, req, s.log, &httpError{status: http.StatusNotFound, code: codeNotFound, msg: "no such endpoint"})
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		allow := strings.Join(allowedMethods(r, req), ", ")
		w.Header().Set("Allow", allow)
		writeError(w, req, s.log, &httpError{status: http.StatusMethodNotAllowed, code: codeMethodNotAllowed,
			msg: "method " + req.Method + " is not allowed here; allowed: " + allow})
	})
	return exactRoutes{exact: exact, router: r}
}

type methodPath struct{ method, path string }

// exactRoutes serves a request whose method and path are exactly those of
// a route without path variables straight from a map, and every other
// request through the router. The router would pick the same route (routes
// checks that), but matches each route's regular expressions in turn and
// copies the request twice to record the route and its (no) variables,
// which no handler of such a route reads.
type exactRoutes struct {
	exact  map[methodPath]http.Handler
	router *mux.Router
}

func (e exactRoutes) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h, ok := e.exact[methodPath{r.Method, r.URL.Path}]; ok {
		h.ServeHTTP(w, r)
		return
	}
	e.router.ServeHTTP(w, r)
}

// allowedMethods lists the methods r serves at req's path.
func allowedMethods(r *mux.Router, req *http.Request) []string {
	var out []string
	for _, m := range []string{"DELETE", "GET", "HEAD", "PATCH", "POST", "PUT"} {
		probe := req.Clone(req.Context())
		probe.Method = m
		var match mux.RouteMatch
		if r.Match(probe, &match) && match.MatchErr == nil {
			out = append(out, m)
		}
	}
	return out
}

// asUser guards a handler that acts for a user: an access token of a user
// (a client's own client_credentials token acts for none: 403).
func (s *server) asUser(h principalHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := s.authenticateUser(r)
		if err != nil {
			writeError(w, r, s.log, err)
			return
		}
		h(w, r, p)
	}
}

// withRoles guards a handler that needs an access token with one of roles.
func (s *server) withRoles(roles []string, h principalHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := s.withRole(r, roles...)
		if err != nil {
			writeError(w, r, s.log, err)
			return
		}
		h(w, r, p)
	}
}
