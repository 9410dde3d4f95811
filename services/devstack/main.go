// Command devstack runs the whole shop in one process — gateway, payments
// and orders — on embedded SQLite databases and an embedded Redis server, or
// on the PostgreSQL and Redis its environment names. It is `make run`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

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
	OpenAPIDir          string
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
	fs.StringVar(&c.OpenAPIDir, "openapi-dir", "", "write the gateway's and each service's OpenAPI descriptions (3.1 and 3.0, JSON) to this directory and exit; listens on free loopback ports")
}

// Validate checks the addresses, naming devstack's own variables (the
// services would name theirs, HTTP_ADDR, which devstack does not read).
func (c *settings) Validate() error {
	var errs []error
	for _, a := range []struct{ name, value string }{
		{"GATEWAY_ADDR", c.GatewayAddr}, {"PAYMENTS_ADDR", c.PaymentsAddr}, {"ORDERS_ADDR", c.OrdersAddr},
	} {
		if _, _, err := net.SplitHostPort(a.value); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", a.name, err))
		}
	}
	return errors.Join(errs...)
}
func (c *settings) Addr() string      { return c.GatewayAddr }
func (c *settings) Level() slog.Level { return c.LogLevel }

func main() {
	var cfg settings
	cli.Main("devstack", &cfg, func(ctx context.Context) error { return run(ctx, cfg) })
}

func run(ctx context.Context, cfg settings) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	if cfg.OpenAPIDir != "" {
		for _, addr := range []*string{&cfg.GatewayAddr, &cfg.PaymentsAddr, &cfg.OrdersAddr} {
			a, err := freeLoopbackAddr()
			if err != nil {
				return err
			}
			*addr = a
		}
	}

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
	errc := make(chan error, len(services)+1)
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
	if cfg.OpenAPIDir != "" {
		// Write the descriptions, then stop everything.
		go func() {
			listening.Wait()
			err := writeOpenAPI(ctx, "http://"+loopback(cfg.GatewayAddr), "http://"+loopback(cfg.OrdersAddr),
				"http://"+loopback(cfg.PaymentsAddr), cfg.OpenAPIDir)
			if err != nil {
				errc <- fmt.Errorf("write OpenAPI: %w", err)
			} else {
				errc <- nil
			}
			cancel()
		}()
		var errs []error
		for range len(services) + 1 {
			errs = append(errs, <-errc)
		}
		return errors.Join(errs...)
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

// freeLoopbackAddr returns a loopback address with a port free just now.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// writeOpenAPI waits until the gateway is ready (it holds the complete
// merged description then) and writes every description to dir as
// <name>.openapi.json (3.1) and <name>.openapi-3.0.json.
func writeOpenAPI(ctx context.Context, gatewayURL, ordersURL, paymentsURL, dir string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(gatewayURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gateway not ready within 60s (last: %v)", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, base := range map[string]string{"gateway": gatewayURL, "orders": ordersURL, "payments": paymentsURL} {
		for _, v := range []string{"", "-3.0"} {
			resp, err := http.Get(base + "/openapi" + v + ".json")
			if err != nil {
				return err
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("GET %s/openapi%s.json: %s", base, v, resp.Status)
			}
			if err := os.WriteFile(filepath.Join(dir, name+".openapi"+v+".json"), body, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
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
