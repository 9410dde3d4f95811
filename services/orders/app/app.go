// Package app wires the orders service: configuration, storage, the HTTP
// API, the outbox relay and the consumer of payment results. The orders
// binary and the all-in-one devstack both run it.
package app

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"shop/services/orders/internal/httpapi"
	"shop/services/orders/internal/store"
	"shop/services/orders/internal/usecase"
	"shop/services/platform/outbox"
	"shop/services/platform/service"
	"shop/services/platform/web"
)

// Version is the API version in the OpenAPI document.
const Version = "1.0.0"

// Migrations are the orders database's schema: the platform's outbox and
// inbox, then the orders table. The service applies them at start; the
// benchmark's reference transaction runs on them too.
var Migrations = store.Migrations

// DefaultConfig is the configuration before the environment is read.
func DefaultConfig() service.Config {
	return service.Config{HTTPAddr: ":8002", DatabaseURL: "sqlite:data/orders.db"}
}

// App is the wired orders service.
type App struct {
	Handler http.Handler
	API     huma.API
	Health  *web.Health
	Orders  *usecase.Orders
	Outbox  *outbox.Outbox
	Store   *store.Store
}

// New wires the service on infrastructure that is already open.
func New(infra *service.Infra) *App {
	st := store.New(infra.DB)
	ob := outbox.New(infra.DB, outbox.Config{Telemetry: infra.Telemetry})
	orders := usecase.New(usecase.Deps{DB: infra.DB, Orders: st, Outbox: ob}, usecase.Config{})
	h := service.NewHTTP(infra, "Orders", Version, "Orders and their status; each order is paid for automatically.")
	httpapi.Register(h.API, orders)
	return &App{
		Handler: h.Handler,
		API:     h.API,
		Health:  h.Health,
		Orders:  orders,
		Outbox:  ob,
		Store:   st,
	}
}

// Run runs the orders service until ctx ends.
func Run(ctx context.Context, cfg service.Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	// 1. Database (migrated) and Redis.
	infra, err := service.Open(ctx, cfg.DatabaseURL, cfg.RedisURL, store.Migrations, cfg.Telemetry)
	if err != nil {
		return err
	}
	defer infra.Close()

	// 2. The HTTP API and the message handlers.
	a := New(infra)

	// 3. Serve, relay payment requests and consume results until ctx ends; then drain.
	return service.Run(ctx, service.RunConfig{Addr: cfg.HTTPAddr, Pprof: cfg.PprofAddr, Drain: cfg.ShutdownTimeout, OnListen: cfg.OnListen},
		a.Health, a.Handler, Messaging(a).Workers(infra, cfg)...)
}
