package app

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"time"

	"shop/services/platform/telemetry"
)

// Config is the gateway's configuration, read from the environment.
type Config struct {
	HTTPAddr        string        `env:"HTTP_ADDR" envDefault:":8000" help:"listen address"`
	OrdersURL       string        `env:"ORDERS_URL" envDefault:"http://localhost:8002" help:"base URL of the orders service"`
	PaymentsURL     string        `env:"PAYMENTS_URL" envDefault:"http://localhost:8001" help:"base URL of the payments service"`
	UpstreamTimeout time.Duration `env:"UPSTREAM_TIMEOUT" envDefault:"10s" help:"how long a service may take to answer before the gateway answers 504"`
	MaxBodyBytes    int64         `env:"MAX_BODY_BYTES" envDefault:"1048576" help:"largest request body; a larger one is answered 413"`
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"20s" help:"how long requests in flight may finish on shutdown"`
	LogLevel        slog.Level    `env:"LOG_LEVEL" envDefault:"info" help:"debug, info, warn or error"`

	// OnListen, if set, is called with the bound address once the gateway
	// listens: with HTTP_ADDR=127.0.0.1:0, tests and devstack learn the port.
	OnListen func(net.Addr) `env:"-"`
	// Telemetry is what the gateway reports through; the zero value means
	// the global providers (see telemetry.Setup). devstack sets its own.
	Telemetry telemetry.Providers `env:"-"`
}

// Addr is the listen address.
func (c Config) Addr() string { return c.HTTPAddr }

// Level is the log level.
func (c Config) Level() slog.Level { return c.LogLevel }

// Validate checks the values: absolute http(s) upstream URLs and positive
// durations and sizes.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		errs = append(errs, fmt.Errorf("HTTP_ADDR: %w", err))
	}
	for _, u := range []struct{ name, value string }{{"ORDERS_URL", c.OrdersURL}, {"PAYMENTS_URL", c.PaymentsURL}} {
		if _, err := upstreamURL(u.value); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", u.name, err))
		}
	}
	if c.UpstreamTimeout <= 0 {
		errs = append(errs, fmt.Errorf("UPSTREAM_TIMEOUT: must be positive, got %s", c.UpstreamTimeout))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("SHUTDOWN_TIMEOUT: must be positive, got %s", c.ShutdownTimeout))
	}
	if c.MaxBodyBytes <= 0 {
		errs = append(errs, fmt.Errorf("MAX_BODY_BYTES: must be positive, got %d", c.MaxBodyBytes))
	}
	return errors.Join(errs...)
}

// upstreamURL parses an upstream's base URL: absolute, http or https, a
// host, no query or fragment.
func upstreamURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%q has no host", s)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%q has a query or fragment; give the service's base URL", s)
	}
	return u, nil
}
