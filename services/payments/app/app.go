// Package app wires the payments service: storage, use cases, the HTTP
// API, and its part in the message flow (the consumer of payment requests,
// the outbox relay of results). The payments binary and the all-in-one
// devstack both run it.
package app

import (
	"context"

	"shop/services/contract"
	"shop/services/payments/internal/httpapi"
	"shop/services/payments/internal/store"
	"shop/services/payments/internal/usecase"
	"shop/services/platform/idempotency"
	"shop/services/platform/outbox"
	"shop/services/platform/service"
)

// Migrations are the service's schema (store.Migrations), which Run applies.
var Migrations = store.Migrations

// DefaultConfig is the configuration before the environment is read.
func DefaultConfig() service.Config {
	return service.Config{HTTPAddr: ":8001", DatabaseURL: "sqlite:data/payments.db"}
}

// App is the wired payments service.
type App struct {
	service.Wired
	Payments *usecase.Payments
	Store    *store.Store
}

// New wires the service on infrastructure that is already open.
func New(infra *service.Infra) *App {
	st := store.New(infra.DB)
	ob := outbox.New(infra.DB, outbox.Config{Telemetry: infra.Telemetry})
	payments := usecase.New(usecase.Deps{DB: infra.DB, Accounts: st, Ledger: st, Outbox: ob, Keys: idempotency.New(infra.DB, idempotency.Config{})}, usecase.Config{Telemetry: infra.Telemetry})
	h := service.NewHTTP(infra, "Payments", "Accounts and balances; pays for orders.")
	httpapi.Register(h.API, payments)
	httpapi.RegisterInternal(h.Internal, payments)
	// It consumes payment requests and publishes the results from its outbox.
	m := service.Messaging{Outbox: ob, Stream: contract.PaymentRequestsStream, Group: contract.PaymentsGroup, Handler: payments.HandleRequests}
	return &App{Wired: service.Wired{HTTP: h, Messaging: m}, Payments: payments, Store: st}
}

// Run runs the payments service until ctx ends.
func Run(ctx context.Context, cfg service.Config) error {
	return service.Serve(ctx, cfg, Migrations, func(infra *service.Infra) service.Wired { return New(infra).Wired })
}
