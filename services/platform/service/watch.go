package service

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// WatchInterval is how often Watch checks the infrastructure.
const WatchInterval = 5 * time.Second

// Watch checks each dependency (Checks) every WatchInterval until ctx ends:
// it logs once when one becomes unavailable and once when it is back, and
// reports the gauge dependency.up (1 or 0, by dependency.name), so an
// outage shows in the log and on dashboards even though only the database
// makes the service unready.
func (i *Infra) Watch(ctx context.Context) error {
	meter := i.Telemetry.MeterProvider().Meter("shop/services/platform/service")
	var mu sync.Mutex
	up := map[string]bool{}
	gauge, err := meter.Int64ObservableGauge("dependency.up", metric.WithUnit("1"),
		metric.WithDescription("1 while the dependency (database, redis) answers its health check, 0 while it does not"))
	if err != nil {
		return err
	}
	reg, err := meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		mu.Lock()
		defer mu.Unlock()
		for name, ok := range up {
			v := int64(0)
			if ok {
				v = 1
			}
			o.ObserveInt64(gauge, v, metric.WithAttributes(attribute.String("dependency.name", name)))
		}
		return nil
	}, gauge)
	if err != nil {
		return err
	}
	defer reg.Unregister()

	since := map[string]time.Time{}
	check := func(ctx context.Context) {
		for _, c := range i.Checks() {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			err := c.Check(cctx)
			cancel()
			mu.Lock()
			was, known := up[c.Name]
			up[c.Name] = err == nil
			mu.Unlock()
			switch {
			case err != nil && (was || !known):
				since[c.Name] = time.Now()
				slog.WarnContext(ctx, "dependency unavailable", "dependency", c.Name, "required_for_readiness", !c.Optional, "error", err)
			case err == nil && known && !was:
				slog.InfoContext(ctx, "dependency available again", "dependency", c.Name,
					"unavailable_for", time.Since(since[c.Name]).Round(time.Second).String())
			}
		}
	}
	check(ctx)
	tick := time.NewTicker(WatchInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			check(ctx)
		}
	}
}
