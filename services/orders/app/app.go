// Package app wires the orders service: storage, use cases, the HTTP API,
// and its part in the message flow (the outbox relay of payment requests,
// the consumer of payment results). The orders binary and the all-in-one
// devstack both run it.
package app

import (
	"context"

	"shop/services/contract"
	"shop/services/orders/internal/httpapi"
	"shop/services/orders/internal/store"
	"shop/services/orders/internal/usecase"
	"shop/services/platform/idempotency"
	"shop/services/platform/outbox"
	"shop/services/platform/service"
)

// Migrations are the service's schema (store.Migrations): Run applies them,
// and the benchmark's reference transaction runs on them.
var Migrations = store.Migrations

// DefaultConfig is the configuration before the environment is read.
func DefaultConfig() service.Config {
	return service.Config{HTTPAddr: ":8002", DatabaseURL: "sqlite:data/orders.db"}
}

// App is the wired orders service.
type App struct {
	service.Wired
	Orders *usecase.Orders
	Store  *store.Store
}

// New wires the service on infrastructure that is already open.
func New(infra *service.Infra) *App {
	st := store.New(infra.DB)
	ob := outbox.New(infra.DB, outbox.Config{Telemetry: infra.Telemetry})
	keys := idempotency.New(infra.DB, idempotency.Config{})
	orders := usecase.New(usecase.Deps{DB: infra.DB, Orders: st, Outbox: ob, Keys: keys}, usecase.Config{})
	h := service.NewHTTP(infra, "Orders", "Orders and their status; each order is paid for automatically.")
	httpapi.Register(h.API, orders)
	httpapi.RegisterInternal(h.Internal, orders)
	// It publishes payment requests from its outbox and consumes the results.
	m := service.Messaging{Outbox: ob, Stream: contract.PaymentResultsStream, Group: contract.OrdersGroup, Handler: orders.HandleResults}
	return &App{Wired: service.Wired{HTTP: h, Messaging: m}, Orders: orders, Store: st}
}

// Run runs the orders service until ctx ends.
func Run(ctx context.Context, cfg service.Config) error {
	return service.Serve(ctx, cfg, Migrations, func(infra *service.Infra) service.Wired { return New(infra).Wired })
}
