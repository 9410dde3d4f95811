// Package web is the services' HTTP foundation: a Huma API on a standard
// ServeMux whose every error is RFC 9457 problem+json and whose 5xx answers
// never carry internal detail, health and readiness routes, request ids, and
// a server that drains on shutdown.
package web

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"shop/services/platform/buildinfo"
	"shop/services/platform/docsui"
	"shop/services/platform/money"
)

// InternalTag marks operations that are for other services, not for clients.
// The gateway neither routes nor documents them; their OpenAPI operations
// also carry the extension "x-internal": true.
const InternalTag = "internal"

// NewAPI returns a Huma API for a service named title, registered on mux,
// with the spec at /openapi.json, /openapi.yaml and (OpenAPI 3.0, for older
// tools) /openapi-3.0.json and /openapi-3.0.yaml, and the docs UI (served
// from the binary) at /docs. The description carries the shop's version
// (buildinfo), contact, license and a relative server, and every operation
// lists every error answer it can give, each with an example (see
// documentOperation).
func NewAPI(mux *http.ServeMux, title, description string) huma.API {
	cfg := huma.DefaultConfig(title, buildinfo.Version())
	cfg.Info.Description = description
	cfg.Info.Contact = Contact
	cfg.Info.License = License
	cfg.Servers = []*huma.Server{{URL: "/", Description: "this service"}}
	cfg.DocsPath = ""    // Huma's page loads from a CDN; docsui serves ours.
	cfg.OpenAPIPath = "" // serveSpec serves the description, without a race.
	cfg.SchemasPath = ""
	// No "$schema" field or describedBy link in responses: the schemas are in
	// the OpenAPI document, and clients should not depend on more URLs.
	cfg.CreateHooks = nil
	cfg.Transformers = nil
	cfg.OpenAPI.OnAddOperation = append(cfg.OpenAPI.OnAddOperation, documentOperation, rememberAmounts)
	api := humago.New(mux, cfg)
	serveSpec(mux, api.OpenAPI())
	api.UseMiddleware(rejectBadText(api))
	Tag(api, HealthTag, "Whether the service is up and ready.")
	docs := docsui.Handler(title, "/openapi.json")
	mux.Handle("GET /docs", docs)
	mux.Handle("GET /docs/", docs)
	return api
}

// Internal marks op as internal: tagged, and flagged for the gateway. The
// API declares the tag; see DeclareInternal.
func Internal(op huma.Operation) huma.Operation {
	op.Tags = append(op.Tags, InternalTag)
	if op.Extensions == nil {
		op.Extensions = map[string]any{}
	}
	op.Extensions["x-internal"] = true
	return op
}

// DeclareInternal declares InternalTag in api's description.
func DeclareInternal(api huma.API) {
	Tag(api, InternalTag, "For the other services of the shop, on the internal network; the gateway neither routes nor documents these.")
}

func init() {
	huma.NewErrorWithContext = newError
}

// RetryAfter is how many seconds a client is asked to wait (Retry-After)
// before trying again after a 503.
const RetryAfter = 5

// unavailable classifies the errors that mean a dependency is unavailable
// for now; see SetUnavailable.
var unavailable atomic.Pointer[func(error) bool]

// SetUnavailable makes every API of the process answer an error that is
// classifies as unavailable (a dependency unreachable for now, such as
// transient.Is) with 503 and Retry-After instead of 500, so that handlers
// need not know. The stateful services set it; the gateway, which has no
// database, does not.
func SetUnavailable(is func(error) bool) { unavailable.Store(&is) }

func isUnavailable(errs []error) bool {
	is := unavailable.Load()
	if is == nil {
		return false
	}
	for _, err := range errs {
		if (*is)(err) {
			return true
		}
	}
	return false
}

// amountFields are the error locations of amount properties ("body.amount")
// in the request bodies of every API in the process.
var amountFields sync.Map

func rememberAmounts(oapi *huma.OpenAPI, op *huma.Operation) {
	for _, loc := range amountLocations(oapi, op, money.PositivePattern) {
		amountFields.Store(loc, true)
	}
}

func isAmountField(loc string) bool {
	_, ok := amountFields.Load(loc)
	return ok
}

// newError builds Huma's problem+json errors. A 5xx keeps its cause out of the
// body: the body says "internal error" and the cause goes to the log. An
// unexpected error that means a dependency is unavailable (SetUnavailable)
// is a 503 with Retry-After: the client may try again, and will succeed once
// the dependency is back.
func newError(hctx huma.Context, status int, msg string, errs ...error) huma.StatusError {
	if status < http.StatusInternalServerError {
		explainAmounts(errs, money.Explain, money.PositivePattern, isAmountField)
		return huma.NewError(status, msg, errs...)
	}
	ctx := context.Background()
	if hctx != nil {
		ctx = hctx.Context()
	}
	if status == http.StatusInternalServerError && isUnavailable(errs) {
		status = http.StatusServiceUnavailable
		if hctx != nil {
			hctx.SetHeader("Retry-After", strconv.Itoa(RetryAfter))
		}
		slog.WarnContext(ctx, "request failed: dependency unavailable", "status", status, "msg", msg, "error", errors.Join(errs...))
	} else {
		slog.ErrorContext(ctx, "request failed", "status", status, "msg", msg, "error", errors.Join(errs...))
	}
	title := http.StatusText(status)
	detail := "internal error"
	if status == http.StatusServiceUnavailable {
		detail = "service temporarily unavailable, try again"
	}
	m := &huma.ErrorModel{Status: status, Title: title, Detail: detail}
	if id := RequestID(ctx); id != "" {
		m.Instance = "urn:request:" + id
	}
	return m
}
