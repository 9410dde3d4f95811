package service

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/redis/go-redis/v9"

	"shop/services/platform/database"
	"shop/services/platform/telemetry"
	"shop/services/platform/web"
)

// Config is the configuration of a stateful service, read from the
// environment. HTTPAddr and DatabaseURL have no tag default: each service
// sets its own before loading (see config.Load), and -h shows it.
type Config struct {
	HTTPAddr        string        `env:"HTTP_ADDR" help:"HTTP listen address"`
	DatabaseURL     string        `env:"DATABASE_URL" help:"postgres://… or sqlite:PATH (sqlite::memory: too)"`
	RedisURL        string        `env:"REDIS_URL" envDefault:"redis://localhost:6379/0" help:"Redis that carries the message streams"`
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"20s" help:"how long to drain on shutdown"`
	LogLevel        slog.Level    `env:"LOG_LEVEL" envDefault:"info" help:"debug, info, warn or error"`
	ConsumerName    string        `env:"CONSUMER_NAME" help:"this replica's name in the stream consumer groups; keep it stable across restarts (default: the host name, which is the pod name on Kubernetes)"`
	PprofAddr       string        `env:"PPROF_ADDR" help:"serve the Go profiler (/debug/pprof/) on this address, e.g. 127.0.0.1:6060; off when empty"`
	ClaimIdle       time.Duration `env:"CLAIM_IDLE" envDefault:"30s" help:"a message left unacknowledged this long by a replica (crashed) is taken over by another"`
	InternalAddr    string        `env:"INTERNAL_ADDR" help:"listen address of the internal endpoints (POST /payments/process, POST /orders/payment-status), which only the other services call; not served when empty"`
	InternalToken   string        `env:"INTERNAL_TOKEN" secret:"true" help:"the credential a caller of the internal endpoints sends as Authorization: Bearer <token>; at least 16 bytes, required with INTERNAL_ADDR"`

	// OnListen, if set, is told the bound address (tests listen on port 0).
	OnListen func(net.Addr) `env:"-"`
	// OnInternalListen, if set, is told the internal listener's address.
	OnInternalListen func(net.Addr) `env:"-"`
	// Telemetry is what the service reports through; the zero value means
	// the global providers (see telemetry.Setup). devstack sets one per
	// service.
	Telemetry telemetry.Providers `env:"-"`
}

// Addr is the HTTP listen address.
func (c *Config) Addr() string { return c.HTTPAddr }

// Level is the log level.
func (c *Config) Level() slog.Level { return c.LogLevel }

// Validate checks the values before anything starts.
func (c *Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		errs = append(errs, fmt.Errorf("HTTP_ADDR: %w", err))
	}
	if err := database.ValidateURL(c.DatabaseURL); err != nil {
		errs = append(errs, fmt.Errorf("DATABASE_URL: %w", err))
	}
	if _, err := redis.ParseURL(c.RedisURL); err != nil {
		errs = append(errs, fmt.Errorf("REDIS_URL: %w", err))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("SHUTDOWN_TIMEOUT: must be positive"))
	}
	if c.ClaimIdle <= 0 {
		errs = append(errs, errors.New("CLAIM_IDLE: must be positive"))
	}
	if c.InternalAddr != "" {
		if _, _, err := net.SplitHostPort(c.InternalAddr); err != nil {
			errs = append(errs, fmt.Errorf("INTERNAL_ADDR: %w", err))
		}
		if len(c.InternalToken) < web.MinInternalTokenLen {
			errs = append(errs, fmt.Errorf("INTERNAL_TOKEN: must be at least %d bytes when INTERNAL_ADDR is set (it guards the internal endpoints), got %d",
				web.MinInternalTokenLen, len(c.InternalToken)))
		}
	}
	return errors.Join(errs...)
}
