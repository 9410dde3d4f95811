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

	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"

	"shop/services/platform/database"
	"shop/services/platform/web"
)

// Infra is what a stateful service runs on.
type Infra struct {
	DB    *bun.DB
	Redis *redis.Client
}

// Open connects to the database at databaseURL, applies migrations, and
// connects to Redis at redisURL. A Redis that is down at start-up is not an
// error: readiness reports it and the workers retry until it is back.
func Open(ctx context.Context, databaseURL, redisURL string, migrations fs.FS) (*Infra, error) {
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
	return &Infra{DB: db, Redis: redis.NewClient(opts)}, nil
}

// Checks are the readiness checks of the infrastructure.
func (i *Infra) Checks() []web.Check {
	return []web.Check{
		{Name: "database", Check: i.DB.PingContext},
		{Name: "redis", Check: func(ctx context.Context) error { return i.Redis.Ping(ctx).Err() }},
	}
}

// Close closes the connections.
func (i *Infra) Close() error {
	return errors.Join(i.Redis.Close(), i.DB.Close())
}

// Worker is a background loop that runs until its context ends.
type Worker struct {
	Name string
	Run  func(ctx context.Context) error
}

// RunConfig says where and how long to serve.
type RunConfig struct {
	Addr     string
	Drain    time.Duration
	OnListen func(net.Addr)
}

// Run serves h and runs the workers until ctx ends or one of them fails.
// Then it drains: readiness fails at once, the HTTP server finishes requests
// in flight, and the workers' context is cancelled so they stop reading,
// finish what they hold and return — all within cfg.Drain.
func Run(ctx context.Context, cfg RunConfig, health *web.Health, h http.Handler, workers ...Worker) error {
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

	serveErr := web.Serve(serveCtx, web.NewServer(cfg.Addr, h), cfg.Drain, cfg.OnListen, health.Drain)

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
