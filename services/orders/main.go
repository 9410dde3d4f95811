// Command orders runs the orders service: orders, their status, and the
// consumer that settles them when their payment completes.
package main

import (
	"context"

	"shop/services/orders/app"
	"shop/services/platform/cli"
)

func main() {
	cfg := app.DefaultConfig()
	cli.Main("orders", &cfg, func(ctx context.Context) error { return app.Run(ctx, cfg) })
}
