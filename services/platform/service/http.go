package service

import (
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"shop/services/platform/telemetry"
	"shop/services/platform/web"
)

// HTTP is a stateful service's HTTP side: a Huma API (with the docs UI and
// spec) whose health routes check infra, behind request ids, problem+json
// for unrouted requests, and telemetry; and a second, internal API for the
// operations only the other services call, served on its own listener
// (INTERNAL_ADDR) behind the service credential (see InternalHandler).
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
		Handler:     web.Observe(web.WithRequestID(web.WithProblems(mux)), mux, infra.Telemetry),
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
