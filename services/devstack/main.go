// Command devstack runs the whole shop in one process — gateway, payments
// and orders — on embedded SQLite databases and an embedded Redis server, or
// on the PostgreSQL and Redis its environment names. It is `make run`.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"shop/services/devstack/stack"
	"shop/services/platform/cli"
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
	shop, err := stack.Start(ctx, stack.Options{
		GatewayAddr: cfg.GatewayAddr, PaymentsAddr: cfg.PaymentsAddr, OrdersAddr: cfg.OrdersAddr,
		OrdersDatabaseURL: cfg.OrdersDatabaseURL, PaymentsDatabaseURL: cfg.PaymentsDatabaseURL,
		RedisURL: cfg.RedisURL, DataDir: cfg.DataDir, LogLevel: cfg.LogLevel, Telemetry: cfg.telemetry,
	})
	if err != nil {
		return err
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
