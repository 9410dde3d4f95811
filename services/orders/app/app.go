// Package app wires the orders service: storage, use cases, the HTTP API,
// and its part in the message flow (the outbox relay of payment requests,
// the consumer of payment results). The orders binary and the all-in-one
// devstack both run it.
package app

import (
	"context"
	"errors"
	"time"

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

// Config is the orders service's configuration: a stateful service's, and
// when to request the payment of an order still NEW again.
type Config struct {
	service.Config
	ReconcileAfter time.Duration `env:"RECONCILE_AFTER" envDefault:"1m" help:"request payment again for an order still NEW this long after its last request (then 2, 4 … times as long, at most 1h): what heals an order whose request or result the broker lost"`
}

// Validate checks the values before anything starts.
func (c *Config) Validate() error {
	err := c.Config.Validate()
	if c.ReconcileAfter <= 0 {
		err = errors.Join(err, errors.New("RECONCILE_AFTER: must be positive"))
	}
	return err
}

// DefaultConfig is the configuration before the environment is read.
func DefaultConfig() Config {
	return Config{Config: service.Config{HTTPAddr: ":8002", DatabaseURL: "sqlite:data/orders.db"}, ReconcileAfter: time.Minute}
}

// App is the wired orders service.
type App struct {
	service.Wired
	Orders *usecase.Orders
	Store  *store.Store
}

// New wires the service on infrastructure that is already open; of cfg it
// reads ReconcileAfter (zero: the default).
func New(infra *service.Infra, cfg Config) *App {
	st := store.New(infra.DB)
	ob := outbox.New(infra.DB, outbox.Config{Telemetry: infra.Telemetry})
	keys := idempotency.New(infra.DB, idempotency.Config{})
	orders := usecase.New(usecase.Deps{DB: infra.DB, Orders: st, Outbox: ob, Keys: keys},
		usecase.Config{ReconcileAfter: cfg.ReconcileAfter, Telemetry: infra.Telemetry})
	h := service.NewHTTP(infra, "Orders", "Orders and their status; each order is paid for automatically.")
	httpapi.Register(h.API, orders)
	httpapi.RegisterInternal(h.Internal, orders)
	// It publishes payment requests from its outbox and consumes the results.
	m := service.Messaging{Outbox: ob, Stream: contract.PaymentResultsStream, Group: contract.OrdersGroup, Handler: orders.HandleResults}
	// Orders still NEW are requested again: nothing a broker loses strands one.
	reconciler := usecase.NewReconciler(orders, usecase.ReconcilerConfig{})
	w := service.Wired{HTTP: h, Messaging: m, Workers: []service.Worker{{Name: "reconciler", Run: reconciler.Run}}}
	return &App{Wired: w, Orders: orders, Store: st}
}

// Run runs the orders service until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	return service.Serve(ctx, cfg.Config, Migrations, func(infra *service.Infra) service.Wired { return New(infra, cfg).Wired })
}
