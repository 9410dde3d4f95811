package service

import (
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"shop/services/platform/transient"
	"shop/services/platform/web"
)

// HTTP is a stateful service's HTTP side: a Huma API (with the docs UI and
// spec) whose health routes check infra, behind request ids, the
// gateway's authenticated user (web.WithUser), problem+json for unrouted
// requests, and telemetry.
type HTTP struct {
	API     huma.API
	Health  *web.Health
	Handler http.Handler
}

// NewHTTP returns the HTTP side of a service on infra; the service registers
// its operations on API.
func NewHTTP(infra *Infra, title, description string) *HTTP {
	// A request that fails because the database is unreachable (or times
	// out, or loses a conflict) answers 503 with Retry-After, not 500.
	web.SetUnavailable(transient.Is)
	health := web.NewHealth(infra.Checks()...)
	mux := http.NewServeMux()
	api := web.NewAPI(mux, title, description)
	health.Register(api)
	return &HTTP{
		API:     api,
		Health:  health,
		Handler: web.Observe(web.WithRequestID(web.WithUser(web.WithProblems(mux))), mux, infra.Telemetry),
	}
}
