package app

import (
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/trace"

	"shop/services/contract/shopattr"
)

// withOrderID puts the id of an order created through the gateway on the
// request's server span, so a search by shop.order.id finds the trace from
// its first span. The id comes from the orders service's Location header
// (/orders/{order_id}), which costs nothing to read; the body is not parsed.
func withOrderID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r)
		if r.Method != http.MethodPost || r.URL.Path != "/orders" {
			return
		}
		if id, ok := strings.CutPrefix(w.Header().Get("Location"), "/orders/"); ok && id != "" {
			trace.SpanFromContext(r.Context()).SetAttributes(shopattr.OrderID.String(id))
		}
	})
}
