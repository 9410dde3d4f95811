package service

import (
	"cmp"

	"shop/services/platform/idempotency"
	"shop/services/platform/inbox"
	"shop/services/platform/outbox"
	"shop/services/platform/stream"
)

// Messaging describes a service's part in the message flow: the outbox it
// publishes from and the stream it consumes.
type Messaging struct {
	Outbox *outbox.Outbox
	// Stream and Group say what the service consumes, as which group.
	Stream string
	Group  string
	// Handler applies a batch of messages in the transaction of their inbox
	// records; an error it marks stream.Permanent dead-letters the message.
	Handler stream.Handler

	Relay    outbox.RelayConfig
	Consumer stream.ConsumerConfig
	Inbox    inbox.JanitorConfig
	// IdempotencyKeys configures the janitor of the idempotency keys,
	// whose table is among the platform's (messaging.Migrations) too.
	IdempotencyKeys idempotency.JanitorConfig
}

// Workers returns the background loops of m on infra: the outbox relay (with
// its janitor), the consumer, the trimmer of the consumed stream, the
// inbox janitor and the janitor of expired idempotency keys. The
// consumer's name and claim time come from cfg.
func (m Messaging) Workers(infra *Infra, cfg Config) []Worker {
	cc := m.Consumer
	cc.Stream, cc.Group = m.Stream, m.Group
	cc.Name = cmp.Or(cc.Name, cfg.ConsumerName)
	cc.ClaimIdle = cmp.Or(cc.ClaimIdle, cfg.ClaimIdle)
	// A handler may run as long as an entry may stay unclaimed.
	cc.HandlerTimeout = cmp.Or(cc.HandlerTimeout, cc.ClaimIdle)
	// The relay and the consumer report through the service's providers.
	ro := m.Relay
	ro.Telemetry, cc.Telemetry = infra.Telemetry, infra.Telemetry
	return []Worker{
		{Name: "outbox relay", Run: outbox.NewRelay(m.Outbox, infra.Redis, ro).Run},
		{Name: "consumer of " + m.Stream, Run: stream.NewConsumer(infra.DB, infra.Redis, cc, m.Handler).Run},
		{Name: "trimmer of " + m.Stream, Run: stream.NewTrimmer(infra.Redis, stream.TrimmerConfig{Stream: m.Stream}).Run},
		{Name: "inbox janitor", Run: inbox.NewJanitor(infra.DB, m.Inbox).Run},
		{Name: "idempotency key janitor", Run: idempotency.NewJanitor(infra.DB, m.IdempotencyKeys).Run},
	}
}
