// Command payments runs the payments service: accounts, balances, and the
// consumer that pays for orders.
package main

import (
	"context"

	"shop/services/payments/app"
	"shop/services/platform/cli"
)

func main() {
	cfg := app.DefaultConfig()
	cli.Main("payments", &cfg, func(ctx context.Context) error { return app.Run(ctx, cfg) })
}
