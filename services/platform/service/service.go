// Package service starts and stops a stateful service the same way for
// orders and payments: open the database and apply migrations, connect to
// Redis, serve HTTP while background workers (relays, consumers, janitors)
// run, and on shutdown drain in order.
package service

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/extra/bunotel"

	"shop/services/platform/database"
	"shop/services/platform/telemetry"
	"shop/services/platform/web"
)

// Infra is what a stateful service runs on.
type Infra struct {
	DB    *bun.DB
	Redis *redis.Client
	// Migrations are the service's schema; readiness checks they are all
	// applied (nil: not checked).
	Migrations fs.FS
	// Telemetry is what the service reports through (zero: the globals).
	Telemetry telemetry.Providers
}

// Open connects to the database at databaseURL, applies migrations, and
// connects to Redis at redisURL. A Redis that is down at start-up is not an
// error: readiness reports it and the workers retry until it is back. Both
// clients report to tel: queries and Redis commands are spans of the request
// or message that makes them (never with argument values), and their
// metrics go to tel's meter provider.
func Open(ctx context.Context, databaseURL, redisURL string, migrations fs.FS, tel telemetry.Providers) (*Infra, error) {
	db, err := database.Open(ctx, databaseURL, database.Options{})
	if err != nil {
		return nil, err
	}
	applied, err := database.Migrate(ctx, db, migrations)
	if err != nil {
		db.Close()
		return nil, err
	}
	slog.InfoContext(ctx, "database ready", "dialect", db.Dialect().Name().String(), "migrations_applied", applied)
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("parse REDIS_URL: %w", err)
	}
	rdb := redis.NewClient(opts)
	if err := instrument(db, rdb, tel); err != nil {
		rdb.Close()
		db.Close()
		return nil, err
	}
	return &Infra{DB: db, Redis: rdb, Migrations: migrations, Telemetry: tel}, nil
}

// instrument adds bunotel and redisotel to the clients. Migrations ran
// before, so they make no spans.
func instrument(db *bun.DB, rdb *redis.Client, tel telemetry.Providers) error {
	children := telemetry.ChildrenOnly(tel.TracerProvider())
	db.AddQueryHook(bunotel.NewQueryHook(
		bunotel.WithTracerProvider(children),
		bunotel.WithMeterProvider(tel.MeterProvider()),
		// Statements with placeholders, not values: no payloads or personal
		// data in traces, and one statement text per query shape.
		bunotel.WithFormattedQueries(false),
	))
	if err := redisotel.InstrumentTracing(rdb,
		redisotel.WithTracerProvider(children),
		// A command's arguments are message payloads: keep them out.
		redisotel.WithDBStatement(false),
	); err != nil {
		return fmt.Errorf("trace Redis: %w", err)
	}
	if err := redisotel.InstrumentMetrics(rdb, redisotel.WithMeterProvider(tel.MeterProvider())); err != nil {
		return fmt.Errorf("Redis metrics: %w", err)
	}
	return nil
}

// Checks are the health checks of the infrastructure. Readiness means the
// service can serve its API: the database answers and has every migration
// applied. Redis is optional: while it is down, orders are still taken
// (their messages wait in the outbox) and payments' API still answers, so
// taking every replica out of its Service would stop the shop for nothing;
// its state shows in /health, in dependency.up and in the log.
func (i *Infra) Checks() []web.Check {
	return []web.Check{
		{Name: "database", Check: i.checkDatabase},
		{Name: "redis", Check: func(ctx context.Context) error { return i.Redis.Ping(ctx).Err() }, Optional: true},
	}
}

// checkDatabase pings the database and checks that no migration is pending.
func (i *Infra) checkDatabase(ctx context.Context) error {
	if err := i.DB.PingContext(ctx); err != nil {
		return err
	}
	if i.Migrations == nil {
		return nil
	}
	n, err := database.Pending(ctx, i.DB, i.Migrations)
	if err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("%d migrations not applied", n)
	}
	return nil
}

// Close closes the connections.
func (i *Infra) Close() error {
	return errors.Join(i.Redis.Close(), i.DB.Close())
}

// Wired is a stateful service wired on its infrastructure: its HTTP side
// and its part in the message flow.
type Wired struct {
	*HTTP
	Messaging Messaging
	// Workers are the service's own background loops, run beside the
	// messaging workers (orders: the reconciler).
	Workers []Worker
}

// Serve runs a stateful service until ctx ends, the same way for orders and
// payments: it checks cfg, opens the database (applying migrations) and
// Redis, wires the service on them with wire, then serves HTTP and runs the
// messaging workers until ctx ends, and drains.
func Serve(ctx context.Context, cfg Config, migrations fs.FS, wire func(*Infra) Wired) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	// 1. Database (migrated) and Redis.
	infra, err := Open(ctx, cfg.DatabaseURL, cfg.RedisURL, migrations, cfg.Telemetry)
	if err != nil {
		return err
	}
	defer infra.Close()

	// 2. The HTTP API and the message handlers.
	w := wire(infra)

	// 3. Serve, relay and consume until ctx ends; then drain.
	rc := RunConfig{Addr: cfg.HTTPAddr, Pprof: cfg.PprofAddr, Drain: cfg.ShutdownTimeout, OnListen: cfg.OnListen}
	if cfg.InternalAddr != "" {
		rc.InternalAddr, rc.OnInternalListen = cfg.InternalAddr, cfg.OnInternalListen
		rc.InternalHandler = w.InternalHandler(cfg.InternalToken)
	} else {
		slog.InfoContext(ctx, "internal endpoints not served: INTERNAL_ADDR is empty")
	}
	workers := append(w.Messaging.Workers(infra, cfg), Worker{Name: "dependency watcher", Run: infra.Watch})
	workers = append(workers, w.Workers...)
	return Run(ctx, rc, w.Health, w.Handler, workers...)
}

// Worker is a background loop that runs until its context ends.
type Worker struct {
	Name string
	Run  func(ctx context.Context) error
}

// RunConfig says where and how long to serve.
type RunConfig struct {
	Addr     string
	Pprof    string // where to serve the Go profiler; "" for nowhere
	Drain    time.Duration
	OnListen func(net.Addr)

	// InternalAddr, when set, is where InternalHandler is served: a second
	// listener, started and drained with the first.
	InternalAddr     string
	InternalHandler  http.Handler
	OnInternalListen func(net.Addr)
}

// Run serves h and runs the workers until ctx ends or one of them fails.
// Then it drains: readiness fails at once, the HTTP server finishes requests
// in flight, and the workers' context is cancelled so they stop reading,
// finish what they hold and return — all within cfg.Drain.
func Run(ctx context.Context, cfg RunConfig, health *web.Health, h http.Handler, workers ...Worker) error {
	if cfg.Pprof != "" {
		web.ServePprof(cfg.Pprof)
	}
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	serveCtx, stopServing := context.WithCancel(ctx)
	defer stopServing()

	errc := make(chan error, len(workers)+1)
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() {
			if err := w.Run(workCtx); err != nil && !errors.Is(err, context.Canceled) {
				errc <- fmt.Errorf("%s: %w", w.Name, err)
				stopServing()
			}
		})
	}

	internalErr := make(chan error, 1)
	if cfg.InternalAddr != "" {
		go func() {
			err := web.Serve(serveCtx, web.NewServer(cfg.InternalAddr, cfg.InternalHandler), cfg.Drain, cfg.OnInternalListen, nil)
			if err != nil {
				err = fmt.Errorf("internal listener: %w", err)
				stopServing()
			}
			internalErr <- err
		}()
	} else {
		internalErr <- nil
	}

	serveErr := web.Serve(serveCtx, web.NewServer(cfg.Addr, h), cfg.Drain, cfg.OnListen, health.Drain)
	stopServing()
	serveErr = errors.Join(serveErr, <-internalErr)

	stopWork()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(cfg.Drain):
		serveErr = errors.Join(serveErr, errors.New("workers did not stop within the drain timeout"))
	}
	close(errc)
	errs := []error{serveErr}
	for err := range errc {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
