// Command devstack runs the whole shop in one process — gateway, payments
// and orders — on embedded SQLite databases and an embedded Redis server, or
// on the PostgreSQL and Redis its environment names. It is `make run`.
package main

import (
	"cmp"
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
	"strings"
	"time"

	"shop/services/devstack/stack"
	"shop/services/platform/authtoken"
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
	Auth                string        `env:"AUTH" envDefault:"jwt" help:"gateway authentication: jwt (bearer tokens) or off"`
	JWTSecret           string        `env:"JWT_HS256_SECRET" secret:"true" help:"the gateway's shared token secret, at least 32 bytes; default: a fresh random one per run (printed at start with ready tokens)"`
	OIDCIssuerURL       string        `env:"OIDC_ISSUER_URL" help:"the gateway's OpenID Connect issuer (discovery and JWKS), instead of or besides the secret"`
	OIDCAudience        string        `env:"OIDC_AUDIENCE" help:"the aud the gateway expects (default: shop)"`
	RateLimit           string        `env:"RATE_LIMIT" help:"gateway: requests per second per user (per address when anonymous); 0 = off (default: the gateway's)"`
	RateLimitBurst      string        `env:"RATE_LIMIT_BURST" help:"gateway: burst above RATE_LIMIT (default: the gateway's)"`
	ReconcileAfter      time.Duration `env:"RECONCILE_AFTER" envDefault:"1m" help:"orders: request payment again for an order still NEW this long after its last request (then 2, 4 … times as long, at most 1h)"`

	// telemetry gives each service its providers (default
	// telemetry.ForService); tests record spans with their own.
	telemetry func(ctx context.Context, service string) (telemetry.Providers, error)
	// out receives the start-up banner (default os.Stderr).
	out io.Writer
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
	if c.Auth != "" && c.Auth != "jwt" && c.Auth != "off" {
		errs = append(errs, fmt.Errorf("AUTH: %q is neither jwt nor off", c.Auth))
	}
	if c.JWTSecret != "" && len(c.JWTSecret) < authtoken.MinSecretLen {
		errs = append(errs, fmt.Errorf("JWT_HS256_SECRET: must be at least %d bytes, got %d", authtoken.MinSecretLen, len(c.JWTSecret)))
	}
	if c.ReconcileAfter < 0 {
		errs = append(errs, errors.New("RECONCILE_AFTER: must be positive"))
	}
	return errors.Join(errs...)
}

// gateway returns the settings devstack passes on to the gateway, by
// variable name; unset ones keep the gateway's defaults.
func (c *settings) gateway() map[string]string {
	vars := map[string]string{"AUTH": cmp.Or(c.Auth, "jwt")}
	for name, v := range map[string]string{
		"JWT_HS256_SECRET": c.JWTSecret, "OIDC_ISSUER_URL": c.OIDCIssuerURL, "OIDC_AUDIENCE": c.OIDCAudience,
		"RATE_LIMIT": c.RateLimit, "RATE_LIMIT_BURST": c.RateLimitBurst,
	} {
		if v != "" {
			vars[name] = v
		}
	}
	return vars
}
func (c *settings) Addr() string      { return c.GatewayAddr }
func (c *settings) Level() slog.Level { return c.LogLevel }

func main() {
	if len(os.Args) > 1 && os.Args[1] == "token" {
		os.Exit(tokenCommand(os.Args[2:], os.Getenv, os.Stdout, os.Stderr))
	}
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
		Gateway:        cfg.gateway(),
		ReconcileAfter: cfg.ReconcileAfter,
	})
	if err != nil {
		return err
	}
	if cfg.OpenAPIDir != "" {
		// Write the descriptions, then stop everything.
		werr := writeOpenAPI(ctx, shop, cfg.OpenAPIDir)
		cancel()
		return errors.Join(werr, shop.Wait())
	}
	if err := banner(cmp.Or[io.Writer](cfg.out, os.Stderr), shop, cfg); err != nil {
		cancel()
		return errors.Join(err, shop.Wait())
	}
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
func writeOpenAPI(ctx context.Context, shop *stack.Shop, dir string) error {
	gatewayURL := shop.GatewayURL
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
	for name, base := range map[string]string{
		"gateway": gatewayURL, "orders": shop.OrdersURL, "payments": shop.PaymentsURL,
		"orders-internal": shop.OrdersInternalURL, "payments-internal": shop.PaymentsInternalURL,
	} {
		for _, v := range []string{"", "-3.0"} {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/openapi"+v+".json", nil)
			if err != nil {
				return err
			}
			if strings.HasSuffix(name, "-internal") {
				req.Header.Set("Authorization", "Bearer "+shop.InternalToken)
			}
			resp, err := http.DefaultClient.Do(req)
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
