package service

import (
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"shop/services/platform/telemetry"
	"shop/services/platform/transient"
	"shop/services/platform/web"
)

// HTTP is a stateful service's HTTP side: a Huma API (with the docs UI and
// spec) whose health routes check infra, behind request ids, the
// gateway's authenticated user (web.WithUser), problem+json for unrouted
// requests, and telemetry; and a second, internal API for the operations
// only the other services call, served on its own listener (INTERNAL_ADDR)
// behind the service credential (see InternalHandler).
type HTTP struct {
	API     huma.API
	Health  *web.Health
	Handler http.Handler
	// Internal is where the service registers its internal operations; the
	// public listener never serves them.
	Internal huma.API

	internalMux *http.ServeMux
	telemetry   telemetry.Providers
}

// NewHTTP returns the HTTP side of a service on infra; the service registers
// its public operations on API and its internal ones on Internal.
func NewHTTP(infra *Infra, title, description string) *HTTP {
	// A request that fails because the database is unreachable (or times
	// out, or loses a conflict) answers 503 with Retry-After, not 500.
	web.SetUnavailable(transient.Is)
	health := web.NewHealth(infra.Checks()...)
	mux := http.NewServeMux()
	api := web.NewAPI(mux, title, description)
	health.Register(api)
	imux := http.NewServeMux()
	internal := web.NewAPI(imux, title+" (internal)",
		"The operations of the "+title+" service that only the other services of the shop call. "+
			"Served on the internal listener (INTERNAL_ADDR) only; every request needs the service credential "+
			"as Authorization: Bearer <INTERNAL_TOKEN>.")
	web.DeclareInternal(internal)
	return &HTTP{
		API:         api,
		Health:      health,
		Handler:     web.Observe(web.WithRequestID(notHere(internal, web.WithUser(web.WithProblems(mux)))), mux, infra.Telemetry),
		Internal:    internal,
		internalMux: imux,
		telemetry:   infra.Telemetry,
	}
}

// InternalHandler is the internal listener's handler: the Internal API (its
// operations, spec and docs) for requests that carry token as a bearer
// credential, 401 problem+json for every other request.
func (h *HTTP) InternalHandler(token string) http.Handler {
	guarded := web.WithRequestID(web.RequireToken(token, web.WithProblems(h.internalMux)))
	return web.Observe(guarded, h.internalMux, h.telemetry)
}

// notHere answers 404, as if they did not exist, to requests for the
// operations registered on internal (same method, same path; they have no
// path parameters), which the public listener does not serve. Without it
// POST /orders/payment-status would get a 405 there (its path matches GET
// /orders/{order_id}), which tells a caller that something lives there.
func notHere(internal huma.API, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if item := internal.OpenAPI().Paths[r.URL.Path]; item != nil && operation(item, r.Method) != nil {
			web.WriteProblem(w, r, http.StatusNotFound, "no such resource: "+r.URL.Path)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func operation(item *huma.PathItem, method string) *huma.Operation {
	switch method {
	case http.MethodGet:
		return item.Get
	case http.MethodPut:
		return item.Put
	case http.MethodPost:
		return item.Post
	case http.MethodDelete:
		return item.Delete
	case http.MethodPatch:
		return item.Patch
	}
	return nil
}
