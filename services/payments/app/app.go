// Package app wires the payments service: configuration, storage, the HTTP
// API, the outbox relay and the consumer of payment requests. The payments
// binary and the all-in-one devstack both run it.
package app

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"shop/services/payments/internal/httpapi"
	"shop/services/payments/internal/store"
	"shop/services/payments/internal/usecase"
	"shop/services/platform/outbox"
	"shop/services/platform/service"
	"shop/services/platform/web"
)

// Version is the API version in the OpenAPI document.
const Version = "1.0.0"

// DefaultConfig is the configuration before the environment is read.
func DefaultConfig() service.Config {
	return service.Config{HTTPAddr: ":8001", DatabaseURL: "sqlite:data/payments.db"}
}

// App is the wired payments service.
type App struct {
	Handler  http.Handler
	API      huma.API
	Health   *web.Health
	Payments *usecase.Payments
	Outbox   *outbox.Outbox
	Store    *store.Store
}

// New wires the service on infrastructure that is already open.
func New(infra *service.Infra) *App {
	st := store.New(infra.DB)
	ob := outbox.New(infra.DB, outbox.Config{Telemetry: infra.Telemetry})
	payments := usecase.New(usecase.Deps{DB: infra.DB, Accounts: st, Ledger: st, Outbox: ob}, usecase.Config{Telemetry: infra.Telemetry})
	h := service.NewHTTP(infra, "Payments", Version, "Accounts and balances; pays for orders.")
	httpapi.Register(h.API, payments)
	return &App{
		Handler:  h.Handler,
		API:      h.API,
		Health:   h.Health,
		Payments: payments,
		Outbox:   ob,
		Store:    st,
	}
}

// Run runs the payments service until ctx ends.
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

	// 3. Serve, relay results and consume requests until ctx ends; then drain.
	return service.Run(ctx, service.RunConfig{Addr: cfg.HTTPAddr, Pprof: cfg.PprofAddr, Drain: cfg.ShutdownTimeout, OnListen: cfg.OnListen},
		a.Health, a.Handler, Messaging(a).Workers(infra, cfg)...)
}
