// Command devstack runs the whole shop in one process — gateway, payments
// and orders — on embedded SQLite databases and an embedded Redis server, or
// on the PostgreSQL and Redis its environment names. It is `make run`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"

	"github.com/alicebob/miniredis/v2"

	gateway "shop/services/gateway/app"
	orders "shop/services/orders/app"
	payments "shop/services/payments/app"
	"shop/services/platform/cli"
	"shop/services/platform/config"
	"shop/services/platform/service"
	"shop/services/platform/telemetry"
)

// settings is devstack's configuration: where each service listens and what
// it stores in. Empty URLs mean the embedded stores.
type settings struct {
	DataDir             string
	GatewayAddr         string     `env:"GATEWAY_ADDR" envDefault:":8000" help:"gateway listen address"`
	PaymentsAddr        string     `env:"PAYMENTS_ADDR" envDefault:":8001" help:"payments listen address"`
	OrdersAddr          string     `env:"ORDERS_ADDR" envDefault:":8002" help:"orders listen address"`
	OrdersDatabaseURL   string     `env:"ORDERS_DATABASE_URL" help:"orders database (postgres://… or sqlite:PATH); default: SQLite in the data directory"`
	PaymentsDatabaseURL string     `env:"PAYMENTS_DATABASE_URL" help:"payments database; default: SQLite in the data directory"`
	RedisURL            string     `env:"REDIS_URL" help:"Redis for the streams; default: an embedded Redis server"`
	LogLevel            slog.Level `env:"LOG_LEVEL" envDefault:"info" help:"debug, info, warn or error"`

	// telemetry gives each service its providers (default
	// telemetry.ForService); tests record spans with their own.
	telemetry func(ctx context.Context, service string) (telemetry.Providers, error)
}

func (c *settings) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.DataDir, "data-dir", "", "keep the SQLite databases in this directory (default: a temporary one, removed on exit)")
}
func (c *settings) Addr() string      { return c.GatewayAddr }
func (c *settings) Level() slog.Level { return c.LogLevel }

func main() {
	var cfg settings
	cli.Main("devstack", &cfg, func(ctx context.Context) error { return run(ctx, cfg) })
}

func run(ctx context.Context, cfg settings) error {
	// 1. The data directory for the SQLite databases.
	if cfg.DataDir == "" && (cfg.OrdersDatabaseURL == "" || cfg.PaymentsDatabaseURL == "") {
		dir, err := os.MkdirTemp("", "shop-devstack-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		cfg.DataDir = dir
	}
	if cfg.OrdersDatabaseURL == "" {
		cfg.OrdersDatabaseURL = "sqlite:" + filepath.Join(cfg.DataDir, "orders.db")
	}
	if cfg.PaymentsDatabaseURL == "" {
		cfg.PaymentsDatabaseURL = "sqlite:" + filepath.Join(cfg.DataDir, "payments.db")
	}

	// 2. The embedded Redis server, unless one is given.
	if cfg.RedisURL == "" {
		mr := miniredis.NewMiniRedis()
		if err := mr.StartAddr("127.0.0.1:0"); err != nil {
			return fmt.Errorf("start embedded Redis: %w", err)
		}
		defer mr.Close()
		cfg.RedisURL = "redis://" + mr.Addr() + "/0"
		slog.Info("embedded Redis server started", "url", cfg.RedisURL)
	}

	// 3. Telemetry. The OpenTelemetry globals are one per process, but a
	// trace must show three services, not one "devstack": so each service
	// gets providers of its own, whose resource names it (gateway, orders,
	// payments), and is handed them in its configuration, as a binary's
	// service would use the globals. Exporters and sampling come from the
	// same OTEL_* environment; cli.Main's shutdown flushes them all.
	if cfg.telemetry == nil {
		cfg.telemetry = telemetry.ForService
	}
	tel := map[string]telemetry.Providers{}
	for _, name := range []string{"gateway", "orders", "payments"} {
		p, err := cfg.telemetry(ctx, name)
		if err != nil {
			return err
		}
		tel[name] = p
	}

	// 4. The three services; when one stops, all do.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var listening sync.WaitGroup
	listening.Add(3)
	onListen := func(net.Addr) { listening.Done() }

	// Each service gets its own defaults, then devstack's addresses and stores.
	base := func(addr, dbURL string) (service.Config, error) {
		var c service.Config
		err := config.Defaults(&c)
		c.HTTPAddr, c.DatabaseURL, c.RedisURL = addr, dbURL, cfg.RedisURL
		c.LogLevel, c.OnListen = cfg.LogLevel, onListen
		return c, err
	}
	var gw gateway.Config
	if err := config.Defaults(&gw); err != nil {
		return err
	}
	gw.HTTPAddr = cfg.GatewayAddr
	gw.OrdersURL = "http://" + loopback(cfg.OrdersAddr)
	gw.PaymentsURL = "http://" + loopback(cfg.PaymentsAddr)
	gw.LogLevel, gw.OnListen, gw.Telemetry = cfg.LogLevel, onListen, tel["gateway"]
	paymentsCfg, err := base(cfg.PaymentsAddr, cfg.PaymentsDatabaseURL)
	if err != nil {
		return err
	}
	paymentsCfg.Telemetry = tel["payments"]
	ordersCfg, err := base(cfg.OrdersAddr, cfg.OrdersDatabaseURL)
	if err != nil {
		return err
	}
	ordersCfg.Telemetry = tel["orders"]
	services := map[string]func(context.Context) error{
		"payments": func(ctx context.Context) error { return payments.Run(ctx, paymentsCfg) },
		"orders":   func(ctx context.Context) error { return orders.Run(ctx, ordersCfg) },
		"gateway":  func(ctx context.Context) error { return gateway.Run(ctx, gw) },
	}
	errc := make(chan error, len(services))
	for name, run := range services {
		go func() {
			err := run(ctx)
			if errors.Is(err, context.Canceled) && ctx.Err() != nil {
				err = nil // stopped while starting: not a failure
			}
			if err != nil {
				err = fmt.Errorf("%s: %w", name, err)
			}
			cancel()
			errc <- err
		}()
	}
	go func() {
		listening.Wait()
		api := "http://" + loopback(cfg.GatewayAddr)
		fmt.Fprintf(os.Stderr, "\nShop is running.\n  API:      %s\n  Docs:     %s/docs\n  Payments: http://%s/docs\n  Orders:   http://%s/docs\n  Data:     %s\nPress Ctrl-C to stop.\n\n",
			api, api, loopback(cfg.PaymentsAddr), loopback(cfg.OrdersAddr), dataDescription(cfg))
	}()
	var errs []error
	for range services {
		errs = append(errs, <-errc)
	}
	return errors.Join(errs...)
}

// loopback turns a listen address into one a browser on this machine can use.
func loopback(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

func dataDescription(cfg settings) string {
	if cfg.DataDir == "" {
		return "external databases"
	}
	return cfg.DataDir
}
