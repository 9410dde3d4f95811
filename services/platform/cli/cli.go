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
	"os"
	"os/signal"
	"syscall"

	"shop/services/platform/config"
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
// environment, logs it, and calls run with a context that ends on SIGINT or
// SIGTERM. It exits non-zero with a clear message on a bad configuration or
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
	if err := run(ctx); err != nil {
		log.Error("stopped with error", "error", err)
		return 1
	}
	log.Info("stopped")
	return 0
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

// NewLogger returns the JSON logger every service writes to stdout.
func NewLogger(service string, level slog.Level) *slog.Logger {
	h := slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: level})
	return slog.New(h).With("service", service)
}
