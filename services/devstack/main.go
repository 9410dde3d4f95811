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
	"time"

	"shop/services/devstack/stack"
	"shop/services/platform/cli"
	"shop/services/platform/telemetry"
)

// settings is devstack's configuration: where each service listens and what
// it stores in. Empty URLs mean the embedded stores.
type settings struct {
	DataDir             string
	OpenAPIDir          string
	GatewayAddr         string        `env:"GATEWAY_ADDR" envDefault:":8000" help:"gateway listen address"`
	PaymentsAddr        string        `env:"PAYMENTS_ADDR" envDefault:":8001" help:"payments listen address"`
	OrdersAddr          string        `env:"ORDERS_ADDR" envDefault:":8002" help:"orders listen address"`
	OrdersDatabaseURL   string        `env:"ORDERS_DATABASE_URL" help:"orders database (postgres://… or sqlite:PATH); default: SQLite in the data directory"`
	PaymentsDatabaseURL string        `env:"PAYMENTS_DATABASE_URL" help:"payments database; default: SQLite in the data directory"`
	RedisURL            string        `env:"REDIS_URL" help:"Redis for the streams; default: an embedded Redis server"`
	LogLevel            slog.Level    `env:"LOG_LEVEL" envDefault:"info" help:"debug, info, warn or error"`
	ReconcileAfter      time.Duration `env:"RECONCILE_AFTER" envDefault:"1m" help:"orders: request payment again for an order still NEW this long after its last request (then 2, 4 … times as long, at most 1h)"`

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
	if c.ReconcileAfter < 0 {
		errs = append(errs, errors.New("RECONCILE_AFTER: must be positive"))
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
		cfg.GatewayAddr, cfg.PaymentsAddr, cfg.OrdersAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	shop, err := stack.Start(ctx, stack.Options{
		GatewayAddr: cfg.GatewayAddr, PaymentsAddr: cfg.PaymentsAddr, OrdersAddr: cfg.OrdersAddr,
		OrdersDatabaseURL: cfg.OrdersDatabaseURL, PaymentsDatabaseURL: cfg.PaymentsDatabaseURL,
		RedisURL: cfg.RedisURL, DataDir: cfg.DataDir, LogLevel: cfg.LogLevel, Telemetry: cfg.telemetry,
		ReconcileAfter: cfg.ReconcileAfter,
	})
	if err != nil {
		return err
	}
	if cfg.OpenAPIDir != "" {
		// Write the descriptions, then stop everything.
		werr := writeOpenAPI(ctx, shop.GatewayURL, shop.OrdersURL, shop.PaymentsURL, cfg.OpenAPIDir)
		cancel()
		return errors.Join(werr, shop.Wait())
	}
	fmt.Fprintf(os.Stderr, "\nShop is running.\n  API:      %s\n  Docs:     %s/docs\n  Payments: %s/docs\n  Orders:   %s/docs\n  Data:     %s\nPress Ctrl-C to stop.\n\n",
		shop.GatewayURL, shop.GatewayURL, shop.PaymentsURL, shop.OrdersURL, dataDescription(shop.DataDir))
	return shop.Wait()
}

func dataDescription(dir string) string {
	if dir == "" {
		return "external databases"
	}
	return dir
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
