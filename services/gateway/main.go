// Command gateway runs the shop's public HTTP entry point in front of the
// orders and payments services. `gateway -h` lists its configuration.
package main

import (
	"context"

	"shop/services/gateway/app"
	"shop/services/platform/cli"
)

func main() {
	var cfg app.Config
	cli.Main("gateway", &cfg, func(ctx context.Context) error { return app.Run(ctx, cfg) })
}
