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
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"shop/services/platform/config"
	"shop/services/platform/telemetry"
	"shop/services/platform/web"
)

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
	if err := config.Load(name, args, fs, cfg, os.Stderr); err != nil {
		if errors.Is(err, config.ErrHelp) {
			return 0
		}
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 2
	}
	log := NewLogger(name, cfg.Level())
	slog.SetDefault(log)
	log.Info("starting", "config", slog.GroupValue(config.Attrs(cfg)...))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	shutdown, err := telemetry.Setup(ctx, name, version())
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
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

// redact hides a password in a URL.
func redact(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		return u.Redacted()
	}
	return raw
}

// version is the binary's module version, or its VCS revision, as Go
// recorded them at build time.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && s.Value != "" {
			return s.Value
		}
	}
	return bi.Main.Version
}

func healthcheck(name string, args []string, cfg Config) int {
	url := ""
	if len(args) > 0 {
		url = args[0]
	} else {
		if err := config.Load(name, nil, nil, cfg, os.Stderr); err != nil {
			fmt.Fprintf(os.Stderr, "%s healthcheck: %v\n", name, err)
			return 1
		}
		url = web.LocalURL(cfg.Addr(), "/readyz")
	}
	if err := web.HealthCheck(context.Background(), url); err != nil {
		fmt.Fprintf(os.Stderr, "%s healthcheck: %v\n", name, err)
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
