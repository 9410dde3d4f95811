// Package proxy sends the public operations of the shop's API to the
// services that own them, and nothing else: the routing table is an
// allowlist of methods and paths, so an internal operation cannot be reached
// through the gateway whatever its path looks like.
package proxy

import (
	"net/http"
	"slices"

	"shop/services/platform/web"
)

// The services behind the gateway.
const (
	Orders   = "orders"
	Payments = "payments"
)

// Route is one operation and the service that serves it. Path is a
// ServeMux pattern path, which is also the operation's OpenAPI path template.
type Route struct {
	Service string
	Method  string
	Path    string
}

// Pattern is the route's ServeMux pattern: "GET /orders/{order_id}".
func (r Route) Pattern() string { return r.Method + " " + r.Path }

// Routes is the routing table: the public operations of the shop's API.
var Routes = []Route{
	{Orders, http.MethodPost, "/orders"},
	{Orders, http.MethodGet, "/orders"},
	{Orders, http.MethodGet, "/orders/{order_id}"},
	{Payments, http.MethodPost, "/accounts"},
	{Payments, http.MethodPost, "/accounts/top-up"},
	{Payments, http.MethodGet, "/accounts/{user_id}/balance"},
}

// Internal are the services' internal operations, for one service to call
// another. The gateway routes none of them; see HideInternal.
var Internal = []Route{
	{Orders, http.MethodPost, "/orders/payment-status"},
	{Payments, http.MethodPost, "/payments/process"},
}

// Routed reports whether Routes sends method and path to service.
func Routed(service, method, path string) bool {
	return slices.Contains(Routes, Route{service, method, path})
}

// HideInternal answers the Internal operations 404, as if they did not
// exist. Without it POST /orders/payment-status would get a 405 (its path
// matches GET /orders/{order_id}), which tells a client that something lives
// there. GET /orders/payment-status is not internal: it is GET
// /orders/{order_id} and goes to the orders service like any order id.
func HideInternal(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, rt := range Internal {
			if r.Method == rt.Method && r.URL.Path == rt.Path {
				web.WriteProblem(w, r, http.StatusNotFound, "no such resource: "+r.URL.Path)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
