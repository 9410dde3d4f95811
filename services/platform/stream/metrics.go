package stream

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"

	"shop/services/platform/transient"
)

// consumerMetrics are a consumer's instruments; every measurement carries
// the stream and the consumer group.
type consumerMetrics struct {
	processed, failed, redelivered, deadLettered metric.Int64Counter
	duration                                     metric.Float64Histogram
	pending, dlqLength                           metric.Int64ObservableGauge
	paused                                       metric.Int64Gauge
}

func newConsumerMetrics(m metric.Meter) consumerMetrics {
	// The API's errors here are only for invalid names, which these are not.
	var cm consumerMetrics
	cm.processed, _ = m.Int64Counter("messaging.consumer.processed",
		metric.WithUnit("{message}"), metric.WithDescription("Messages whose handler committed (duplicates included)"))
	cm.failed, _ = m.Int64Counter("messaging.consumer.failed",
		metric.WithUnit("{message}"), metric.WithDescription("Handler runs that failed and rolled back"))
	cm.redelivered, _ = m.Int64Counter("messaging.consumer.redelivered",
		metric.WithUnit("{message}"), metric.WithDescription("Deliveries after the first (reclaimed idle entries)"))
	cm.deadLettered, _ = m.Int64Counter("messaging.consumer.dead_lettered",
		metric.WithUnit("{message}"), metric.WithDescription("Messages moved to the dead-letter stream"))
	cm.duration, _ = m.Float64Histogram("messaging.process.duration",
		metric.WithUnit("s"), metric.WithDescription("Duration of one handler run, for a batch or one message, with its transaction"),
		metric.WithExplicitBucketBoundaries(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
	cm.pending, _ = m.Int64ObservableGauge("messaging.consumer.pending",
		metric.WithUnit("{message}"), metric.WithDescription("Entries delivered to the group and not yet acknowledged"))
	cm.dlqLength, _ = m.Int64ObservableGauge("messaging.consumer.dlq.length",
		metric.WithUnit("{message}"), metric.WithDescription("Entries in the dead-letter stream"))
	cm.paused, _ = m.Int64Gauge("messaging.consumer.paused",
		metric.WithUnit("1"), metric.WithDescription("1 while the consumer holds messages that failed only because a dependency (the database) was unavailable, reading nothing new; 0 otherwise"))
	return cm
}

func (c *Consumer) attrs(extra ...attribute.KeyValue) metric.MeasurementOption {
	return metric.WithAttributes(append([]attribute.KeyValue{
		semconv.MessagingSystemKey.String("redis"),
		semconv.MessagingDestinationName(c.cfg.Stream),
		semconv.MessagingConsumerGroupName(c.cfg.Group),
	}, extra...)...)
}

// errorType is the error.type attribute of a failed run, never the error
// text (unbounded): "permanent" (dead-lettered at once), "timeout" and
// "transient" (held until the dependency is back, never dead-lettered), or
// "error" (anything else: redelivered, and dead-lettered after
// MaxDeliveries).
func errorType(err error) []attribute.KeyValue {
	switch {
	case err == nil:
		return nil
	case IsPermanent(err):
		return []attribute.KeyValue{semconv.ErrorTypeKey.String("permanent")}
	case errors.Is(err, context.DeadlineExceeded):
		return []attribute.KeyValue{semconv.ErrorTypeKey.String("timeout")}
	case transient.Is(err):
		return []attribute.KeyValue{semconv.ErrorTypeKey.String("transient")}
	}
	return []attribute.KeyValue{semconv.ErrorTypeKey.String("error")}
}

// observePending reports the group's pending entries and the dead-letter
// stream's length: two O(1) Redis commands in one round trip, only when the
// metrics are collected.
func (c *Consumer) observePending() (metric.Registration, error) {
	return c.meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		pipe := c.rdb.Pipeline()
		pending := pipe.XPending(ctx, c.cfg.Stream, c.cfg.Group)
		dlq := pipe.XLen(ctx, DLQ(c.cfg.Stream))
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) && !redis.HasErrorPrefix(err, "NOGROUP") {
			return err
		}
		if p, err := pending.Result(); err == nil {
			o.ObserveInt64(c.metrics.pending, p.Count, c.attrs())
		}
		o.ObserveInt64(c.metrics.dlqLength, dlq.Val(), c.attrs())
		return nil
	}, c.metrics.pending, c.metrics.dlqLength)
}
