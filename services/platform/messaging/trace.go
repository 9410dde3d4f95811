package messaging

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
)

// ContextWithTrace returns ctx carrying m's trace context as the remote
// parent, so a span started from it continues the trace that wrote m.
func (m Message) ContextWithTrace(ctx context.Context) context.Context {
	carrier := propagation.MapCarrier{}
	if m.Traceparent != "" {
		carrier.Set("traceparent", m.Traceparent)
		carrier.Set("tracestate", m.Tracestate)
	}
	return otel.GetTextMapPropagator().Extract(ctx, carrier)
}

// WithTrace returns m carrying the trace context of ctx (the global
// propagator's W3C trace context), replacing the one it had.
func (m Message) WithTrace(ctx context.Context) Message {
	carrier := propagation.MapCarrier{}
	otel.GetTextMapPropagator().Inject(ctx, carrier)
	m.Traceparent = carrier.Get("traceparent")
	m.Tracestate = carrier.Get("tracestate")
	return m
}
