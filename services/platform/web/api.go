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

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"shop/services/platform/docsui"
)

// InternalTag marks operations that are for other services, not for clients.
// The gateway neither routes nor documents them; their OpenAPI operations
// also carry the extension "x-internal": true.
const InternalTag = "internal"

// NewAPI returns a Huma API for a service named title, registered on mux,
// with the spec at /openapi.json and /openapi.yaml and the docs UI (served
// from the binary) at /docs.
func NewAPI(mux *http.ServeMux, title, version, description string) huma.API {
	cfg := huma.DefaultConfig(title, version)
	cfg.Info.Description = description
	cfg.DocsPath = "" // Huma's page loads from a CDN; docsui serves ours.
	cfg.SchemasPath = ""
	// No "$schema" field or describedBy link in responses: the schemas are in
	// the OpenAPI document, and clients should not depend on more URLs.
	cfg.CreateHooks = nil
	cfg.Transformers = nil
	api := humago.New(mux, cfg)
	docs := docsui.Handler(title, "/openapi.json")
	mux.Handle("GET /docs", docs)
	mux.Handle("GET /docs/", docs)
	return api
}

// Internal marks op as internal: tagged, and flagged for the gateway.
func Internal(op huma.Operation) huma.Operation {
	op.Tags = append(op.Tags, InternalTag)
	if op.Extensions == nil {
		op.Extensions = map[string]any{}
	}
	op.Extensions["x-internal"] = true
	return op
}

func init() {
	huma.NewErrorWithContext = newError
}

// newError builds Huma's problem+json errors. A 5xx keeps its cause out of the
// body: the body says "internal error" and the cause goes to the log.
func newError(hctx huma.Context, status int, msg string, errs ...error) huma.StatusError {
	if status < http.StatusInternalServerError {
		return huma.NewError(status, msg, errs...)
	}
	ctx := context.Background()
	if hctx != nil {
		ctx = hctx.Context()
	}
	slog.ErrorContext(ctx, "request failed", "status", status, "msg", msg, "error", errors.Join(errs...))
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
