package outbox

import (
	"context"

	"github.com/uptrace/bun"

	"shop/services/platform/messaging"
)

// Add writes one message in tx, in the trace of ctx, as AddAll writes many.
func (o *Outbox) Add(ctx context.Context, tx bun.IDB, msg messaging.Message) (messaging.Message, error) {
	msgs, err := o.AddAll(ctx, tx, []Pending{{Message: msg}})
	if err != nil {
		return msg, err
	}
	return msgs[0], nil
}

// DB is the database the outbox lives in.
func (o *Outbox) DB() *bun.DB { return o.db }

// SetBeforeCommit makes r call f after a batch is on its streams and before
// it is marked published; an error from f rolls the batch back, as a crash
// there would.
func SetBeforeCommit(r *Relay, f func() error) { r.beforeCommit = f }

// SetListening makes r call f each time its LISTEN is in place.
func SetListening(r *Relay, f func()) { r.listening = f }
