// Package telemetry sets up OpenTelemetry for the shop's services from the
// standard OTEL_* environment: traces and metrics over OTLP (gRPC or HTTP,
// OTEL_EXPORTER_OTLP_PROTOCOL), metrics on a Prometheus /metrics endpoint
// when asked, W3C trace context and baggage propagation, and trace ids on
// log lines. With nothing configured, telemetry is off and says nothing.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	promexporter "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// Providers are the OpenTelemetry providers a service reports through. The
// zero value stands for the global providers, which Setup configures: a
// binary runs one service and uses them. A process that runs several
// services (devstack) gives each its own Providers from ForService, so each
// appears under its own name in Jaeger.
type Providers struct {
	Tracer trace.TracerProvider
	Meter  metric.MeterProvider
}

// TracerProvider is p's tracer provider, or the global one.
func (p Providers) TracerProvider() trace.TracerProvider {
	if p.Tracer != nil {
		return p.Tracer
	}
	return otel.GetTracerProvider()
}

// MeterProvider is p's meter provider, or the global one.
func (p Providers) MeterProvider() metric.MeterProvider {
	if p.Meter != nil {
		return p.Meter
	}
	return otel.GetMeterProvider()
}

// Propagator is what carries a trace across HTTP calls and messages: W3C
// trace context and baggage.
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// process is what Setup configured, shared by the services of the process.
var process struct {
	sync.Mutex
	version   string
	shutdowns []func(context.Context) error
	// registry and its server serve /metrics when OTEL_METRICS_EXPORTER
	// names prometheus; every service of the process registers in it.
	registry *prometheus.Registry
	server   *http.Server
}

// Setup configures the process's global providers for the service named
// serviceName from the environment, and returns the function that flushes
// and stops them (and any from ForService). Call it once, before the
// service starts; a bad OTEL_* value is an error.
func Setup(ctx context.Context, serviceName, version string) (shutdown func(context.Context) error, err error) {
	otel.SetTextMapPropagator(Propagator())
	// Export failures (a collector down) go to the service's JSON log.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		slog.Warn("opentelemetry export", "error", err)
	}))
	process.Lock()
	process.version = version
	process.Unlock()
	p, err := newProviders(ctx, serviceName, version, false)
	if err != nil {
		return nil, err
	}
	if p.Tracer != nil {
		otel.SetTracerProvider(p.Tracer)
	}
	if p.Meter != nil {
		otel.SetMeterProvider(p.Meter)
	}
	return shutdownAll, nil
}

// ForService returns providers of their own for one of several services in
// this process, configured like Setup's (which must have run) but with
// serviceName as the resource's service name, whatever OTEL_SERVICE_NAME
// says. Setup's shutdown flushes them. With telemetry off they are the
// (no-op) globals.
func ForService(ctx context.Context, serviceName string) (Providers, error) {
	process.Lock()
	version := process.version
	process.Unlock()
	return newProviders(ctx, serviceName, version, true)
}

func shutdownAll(ctx context.Context) error {
	process.Lock()
	fns := process.shutdowns
	process.shutdowns = nil
	server := process.server
	process.server, process.registry = nil, nil
	process.Unlock()
	var errs []error
	for _, fn := range slices.Backward(fns) {
		errs = append(errs, fn(ctx))
	}
	if server != nil {
		errs = append(errs, server.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

// Enabled reports whether the environment asks for traces and for metrics:
// an OTLP endpoint, or an exporter named in OTEL_TRACES_EXPORTER or
// OTEL_METRICS_EXPORTER. OTEL_SDK_DISABLED=true turns both off.
func Enabled() (traces, metrics bool) {
	if strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") {
		return false, false
	}
	endpoint := os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != ""
	traces = on(os.Getenv("OTEL_TRACES_EXPORTER"), endpoint || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "")
	metrics = on(os.Getenv("OTEL_METRICS_EXPORTER"), endpoint || os.Getenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") != "")
	return traces, metrics
}

// on decides for one signal: an explicit exporter list wins, else an OTLP
// endpoint turns on the default (otlp) exporter.
func on(exporters string, endpoint bool) bool {
	if strings.TrimSpace(exporters) == "" {
		return endpoint
	}
	return exporters != "none"
}

func newProviders(ctx context.Context, serviceName, version string, override bool) (Providers, error) {
	tracesOn, metricsOn := Enabled()
	if !tracesOn && !metricsOn {
		return Providers{}, nil
	}
	res, err := newResource(ctx, serviceName, version, override)
	if err != nil {
		return Providers{}, err
	}
	var p Providers
	if tracesOn {
		// autoexport reads OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_PROTOCOL,
		// the endpoints, headers and timeouts; the SDK reads the sampler
		// and batch settings (OTEL_TRACES_SAMPLER, OTEL_BSP_*).
		exp, err := autoexport.NewSpanExporter(ctx)
		if err != nil {
			return Providers{}, fmt.Errorf("OpenTelemetry traces: %w", err)
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
		p.Tracer = tp
		register(tp.Shutdown)
	}
	if metricsOn {
		readers, err := metricReaders(ctx)
		if err != nil {
			return Providers{}, fmt.Errorf("OpenTelemetry metrics: %w", err)
		}
		opts := []sdkmetric.Option{sdkmetric.WithResource(res)}
		for _, r := range readers {
			opts = append(opts, sdkmetric.WithReader(r))
		}
		mp := sdkmetric.NewMeterProvider(opts...)
		p.Meter = mp
		register(mp.Shutdown)
	}
	return p, nil
}

func register(shutdown func(context.Context) error) {
	process.Lock()
	defer process.Unlock()
	process.shutdowns = append(process.shutdowns, shutdown)
}

// newResource describes the service: name, version and this instance.
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override the binary's
// defaults, except that override makes serviceName win (one of several
// services in a process must keep its own name).
func newResource(ctx context.Context, serviceName, version string, override bool) (*resource.Resource, error) {
	own := resource.WithAttributes(
		semconv.ServiceName(serviceName),
		semconv.ServiceVersion(version),
		semconv.ServiceInstanceID(uuid.NewString()),
	)
	opts := []resource.Option{resource.WithTelemetrySDK(), resource.WithHost(), own, resource.WithFromEnv()}
	if override {
		opts = []resource.Option{resource.WithTelemetrySDK(), resource.WithHost(), resource.WithFromEnv(),
			resource.WithAttributes(semconv.ServiceName(serviceName), semconv.ServiceVersion(version))}
	}
	res, err := resource.New(ctx, opts...)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("OpenTelemetry resource: %w", err)
	}
	return res, nil
}

// metricReaders builds a reader per exporter named in OTEL_METRICS_EXPORTER,
// a comma-separated list of otlp, prometheus, console and none (default
// otlp). autoexport takes one name only, so the list is read here; each
// exporter still reads its own standard variables.
func metricReaders(ctx context.Context) ([]sdkmetric.Reader, error) {
	names := strings.Split(os.Getenv("OTEL_METRICS_EXPORTER"), ",")
	if strings.TrimSpace(os.Getenv("OTEL_METRICS_EXPORTER")) == "" {
		names = []string{"otlp"}
	}
	var readers []sdkmetric.Reader
	for _, name := range names {
		switch name = strings.TrimSpace(name); name {
		case "otlp":
			exp, err := otlpMetricExporter(ctx)
			if err != nil {
				return nil, err
			}
			readers = append(readers, sdkmetric.NewPeriodicReader(exp))
		case "prometheus":
			r, err := prometheusReader()
			if err != nil {
				return nil, err
			}
			readers = append(readers, r)
		case "console":
			exp, err := stdoutmetric.New()
			if err != nil {
				return nil, err
			}
			readers = append(readers, sdkmetric.NewPeriodicReader(exp))
		case "none", "":
		default:
			return nil, fmt.Errorf("OTEL_METRICS_EXPORTER: unknown exporter %q (want otlp, prometheus, console or none)", name)
		}
	}
	return readers, nil
}

func otlpMetricExporter(ctx context.Context) (sdkmetric.Exporter, error) {
	proto := os.Getenv("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL")
	if proto == "" {
		proto = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	switch proto {
	case "grpc":
		return otlpmetricgrpc.New(ctx)
	case "", "http/protobuf":
		return otlpmetrichttp.New(ctx)
	}
	return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL: unsupported %q (want grpc or http/protobuf)", proto)
}

// prometheusReader registers a Prometheus exporter for one service in the
// process's registry, and starts the /metrics server on
// OTEL_EXPORTER_PROMETHEUS_HOST:OTEL_EXPORTER_PROMETHEUS_PORT (default
// localhost:9464) with the first. Every series carries service_name, so the
// services of one process do not collide. A scraper that asks for
// OpenMetrics (Prometheus does, with exemplar storage on) gets the
// exemplars: the trace id of a measurement in each histogram bucket.
func prometheusReader() (sdkmetric.Reader, error) {
	process.Lock()
	defer process.Unlock()
	if process.registry == nil {
		reg := prometheus.NewRegistry()
		host := cmpEnv("OTEL_EXPORTER_PROMETHEUS_HOST", "localhost")
		port := cmpEnv("OTEL_EXPORTER_PROMETHEUS_PORT", "9464")
		ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
		if err != nil {
			return nil, fmt.Errorf("Prometheus endpoint: %w", err)
		}
		mux := http.NewServeMux()
		// OpenMetrics, when the scraper asks for it, carries the exemplars:
		// a histogram bucket names the trace of a measurement in it.
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true}))
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				otel.Handle(fmt.Errorf("prometheus endpoint: %w", err))
			}
		}()
		process.registry, process.server = reg, srv
	}
	return promexporter.New(
		promexporter.WithRegisterer(process.registry),
		promexporter.WithResourceAsConstantLabels(attribute.NewAllowKeysFilter(semconv.ServiceNameKey)),
	)
}

func cmpEnv(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
