package app

import (
	"net/http"
	"net/http/httptest"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"shop/services/contract/shopattr"
)

// The id of an order created through the gateway lands on the gateway's
// span; other requests get none.
func TestWithOrderIDPutsTheNewOrderOnTheSpan(t *testing.T) {
	const id = "01890a5d-ac96-774b-bcce-b302099a8057"
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "/orders/"+id)
		w.WriteHeader(http.StatusCreated)
	})
	for _, tt := range []struct {
		method, path, want string
	}{
		{"POST", "/orders", id},
		{"GET", "/orders", ""},
		{"POST", "/accounts", ""},
	} {
		rec := tracetest.NewSpanRecorder()
		ctx, span := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)).Tracer("test").Start(t.Context(), "server")
		r := httptest.NewRequestWithContext(ctx, tt.method, tt.path, nil)
		withOrderID(upstream).ServeHTTP(httptest.NewRecorder(), r)
		span.End()
		var got string
		for _, kv := range rec.Ended()[0].Attributes() {
			if kv.Key == shopattr.OrderID {
				got = kv.Value.AsString()
			}
		}
		if got != tt.want {
			t.Errorf("%s %s: %s = %q, want %q", tt.method, tt.path, shopattr.OrderID, got, tt.want)
		}
	}
}
