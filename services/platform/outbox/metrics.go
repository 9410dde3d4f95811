package outbox

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
)

// count records a committed batch: messages per stream and the batch size.
func (r *Relay) count(ctx context.Context, rows []Row) {
	perStream := map[string]int64{}
	for _, row := range rows {
		perStream[row.Stream]++
	}
	for stream, n := range perStream {
		r.published.Add(ctx, n, metric.WithAttributes(semconv.MessagingDestinationName(stream)))
	}
	r.batchSize.Record(ctx, int64(len(rows)))
}

// observeBacklog reports how many rows wait to be published and how old the
// oldest is. The two queries run only when the metrics are collected (each
// export), never on a timer of their own, and both read the small partial
// index of unpublished rows.
func (r *Relay) observeBacklog() (metric.Registration, error) {
	backlog, err := r.meter.Int64ObservableGauge("outbox.backlog",
		metric.WithUnit("{message}"), metric.WithDescription("Outbox rows not yet published"))
	if err != nil {
		return nil, err
	}
	age, err := r.meter.Float64ObservableGauge("outbox.oldest.age",
		metric.WithUnit("s"), metric.WithDescription("Age of the oldest unpublished outbox row; 0 when none waits"))
	if err != nil {
		return nil, err
	}
	return r.meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		n, err := r.outbox.db.NewSelect().Model((*Row)(nil)).Where("published_at IS NULL").Count(ctx)
		if err != nil {
			return err
		}
		var oldest []time.Time
		if n > 0 {
			err = r.outbox.db.NewSelect().Model((*Row)(nil)).Column("occurred_at").
				Where("published_at IS NULL").OrderExpr("id").Limit(1).Scan(ctx, &oldest)
			if err != nil {
				return err
			}
		}
		seconds := 0.0
		if len(oldest) > 0 {
			seconds = max(time.Since(oldest[0]).Seconds(), 0)
		}
		attrs := metric.WithAttributes(attribute.String("db.collection.name", "outbox"))
		o.ObserveInt64(backlog, int64(n), attrs)
		o.ObserveFloat64(age, seconds, attrs)
		return nil
	}, backlog, age)
}
