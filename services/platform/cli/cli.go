// Package cli is the common shape of the shop's binaries: a JSON logger,
// configuration from the environment (-h lists it), the `healthcheck`
// subcommand for container probes, and a context cancelled on SIGINT or
// SIGTERM.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"text/tabwriter"
	"time"

	"shop/services/platform/buildinfo"
	"shop/services/platform/config"
	"shop/services/platform/telemetry"
	"shop/services/platform/web"
)

// stderr is where usage and errors go; tests read it.
var stderr io.Writer = os.Stderr

// Config is what Main needs from a binary's configuration struct.
type Config interface {
	// Addr is the HTTP listen address, which `healthcheck` probes.
	Addr() string
	// Level is the log level.
	Level() slog.Level
}

// Flagger is implemented by configurations that also take command-line
// flags; Main defines them before parsing.
type Flagger interface {
	Flags(fs *flag.FlagSet)
}

// Main runs a binary named name: `name healthcheck [URL]` probes the
// service's /readyz (or URL) and exits; otherwise Main reads cfg from the
// environment, logs it, sets up telemetry (telemetry.Setup, named name), and
// calls run with a context that ends on SIGINT or SIGTERM; then it flushes
// the telemetry. It exits non-zero with a clear message on a bad configuration or
// when run fails. It does not return.
func Main(name string, cfg Config, run func(ctx context.Context) error) {
	os.Exit(main(name, os.Args[1:], cfg, run))
}

func main(name string, args []string, cfg Config, run func(ctx context.Context) error) int {
	if len(args) > 0 && args[0] == "healthcheck" {
		return healthcheck(name, args[1:], cfg)
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	if f, ok := cfg.(Flagger); ok {
		f.Flags(fs)
	}
	fs.SetOutput(stderr)
	fs.Usage = func() { Usage(stderr, name, fs, cfg) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2 // the flag package printed the usage and the error
	}
	if fs.NArg() > 0 {
		fs.Usage()
		fmt.Fprintf(stderr, "\n%s: unknown command %q\n", name, fs.Arg(0))
		return 2
	}
	if err := config.Load(name, nil, nil, cfg, stderr); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 2
	}
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(gcPercent)
	}
	log := NewLogger(name, cfg.Level())
	slog.SetDefault(log)
	log.Info("starting", "version", buildinfo.Version(), "revision", buildinfo.Revision(), "config", slog.GroupValue(config.Attrs(cfg)...))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	shutdown, err := telemetry.Setup(ctx, name, buildinfo.Version())
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 2
	}
	if traces, metrics := telemetry.Enabled(); traces || metrics {
		log.Info("telemetry on", "traces", traces, "metrics", metrics,
			"endpoint", redact(os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT")), "metrics_exporter", os.Getenv("OTEL_METRICS_EXPORTER"))
	}
	code := 0
	if err := run(ctx); err != nil {
		log.Error("stopped with error", "error", err)
		code = 1
	}
	// Spans and metrics still buffered leave now, within a bound.
	flushCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := shutdown(flushCtx); err != nil {
		log.Warn("flush telemetry", "error", err)
	}
	if code == 0 {
		log.Info("stopped")
	}
	return code
}

// gcPercent is the garbage collector's target the services run with
// unless GOGC says otherwise: a new cycle when the heap has grown by 200 %
// of what the last one kept, not Go's 100 %. A service's live heap is small
// (a few MiB), so Go's default collects very often; at 200 the benchmark
// measured 10 to 15 % less CPU per order in each service for about 10 MiB
// more memory each, and GOMEMLIMIT (the chart sets it from the memory
// limit) still makes the collector work harder near the limit.
const gcPercent = 200

// otelEnv are the OpenTelemetry variables every binary reads (through the
// SDK and telemetry.Setup).
var otelEnv = [][2]string{
	{"OTEL_EXPORTER_OTLP_ENDPOINT", "where traces and metrics go over OTLP, e.g. http://localhost:4318; unset (and no exporter named below) = telemetry off"},
	{"OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf (port 4318) or grpc (port 4317) (default \"http/protobuf\")"},
	{"OTEL_EXPORTER_OTLP_HEADERS", "headers sent with every export, e.g. authorization=Bearer …"},
	{"OTEL_TRACES_EXPORTER", "otlp, console or none (default: otlp when an endpoint is set)"},
	{"OTEL_METRICS_EXPORTER", "comma-separated: otlp, prometheus (serves /metrics), console, none (default: otlp when an endpoint is set)"},
	{"OTEL_EXPORTER_PROMETHEUS_HOST", "where /metrics listens with prometheus (default \"localhost\")"},
	{"OTEL_EXPORTER_PROMETHEUS_PORT", "its port (default \"9464\")"},
	{"OTEL_SERVICE_NAME", "the service name in traces and metrics (default: the binary's name)"},
	{"OTEL_RESOURCE_ATTRIBUTES", "more resource attributes, e.g. deployment.environment.name=prod"},
	{"OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG", "sampling (default: every trace)"},
	{"OTEL_BSP_*, …", "the other standard OTEL_* variables (OTEL_METRIC_EXPORT_INTERVAL, OTEL_SDK_DISABLED, …), read by the SDK"},
}

// Usage writes what -h shows for a binary run by Main: its commands, its
// flags, and every variable it reads, its own and OpenTelemetry's.
func Usage(w io.Writer, name string, fs *flag.FlagSet, cfg Config) {
	hasFlags := false
	fs.VisitAll(func(*flag.Flag) { hasFlags = true })
	flags := ""
	if hasFlags {
		flags = " [flags]"
	}
	fmt.Fprintln(w, "Usage:")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  %s%s\trun the service\n", name, flags)
	fmt.Fprintf(tw, "  %s healthcheck [URL]\tprobe URL (default: this service's /readyz) and exit 0 when it answers 2xx, 1 otherwise\n", name)
	tw.Flush()
	fmt.Fprintln(w)
	if hasFlags {
		fmt.Fprintln(w, "Flags:")
		fs.PrintDefaults()
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "Environment:")
	config.PrintEnv(w, cfg)
	fmt.Fprintln(w, "\nOpenTelemetry environment:")
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, v := range otelEnv {
		fmt.Fprintf(tw, "  %s\t%s\n", v[0], v[1])
	}
	tw.Flush()
}

// redact hides a password in a URL.
func redact(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		return u.Redacted()
	}
	return raw
}

func healthcheck(name string, args []string, cfg Config) int {
	fs := flag.NewFlagSet(name+" healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s healthcheck [URL]\n\nProbes URL (default: this service's /readyz, at HTTP_ADDR on loopback) with a GET\n"+
			"and exits 0 when it answers 2xx within 3s, 1 otherwise: the container probe for images without a shell.\n\n"+
			"Environment:\n  HTTP_ADDR and the rest, as `%s -h` lists them: read to find /readyz when no URL is given\n", name, name)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 1 {
		fs.Usage()
		fmt.Fprintf(stderr, "\n%s healthcheck: unexpected argument %q\n", name, fs.Arg(1))
		return 2
	}
	url := fs.Arg(0)
	if url == "" {
		if err := config.Load(name, nil, nil, cfg, stderr); err != nil {
			fmt.Fprintf(stderr, "%s healthcheck: %v\n", name, err)
			return 1
		}
		url = web.LocalURL(cfg.Addr(), "/readyz")
	}
	if err := web.HealthCheck(context.Background(), url); err != nil {
		fmt.Fprintf(stderr, "%s healthcheck: %v\n", name, err)
		return 1
	}
	return 0
}

// NewLogger returns the JSON logger every service writes to stdout. A line
// logged with a context inside a span carries its trace_id and span_id.
func NewLogger(service string, level slog.Level) *slog.Logger {
	h := slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: level})
	return slog.New(telemetry.LogHandler(h)).With("service", service)
}
