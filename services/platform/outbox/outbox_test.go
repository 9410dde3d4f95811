package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"shop/services/platform/database"
	"shop/services/platform/database/dbtest"
	"shop/services/platform/messaging"
	mt "shop/services/platform/messaging/messagingtest"
	"shop/services/platform/outbox"
)

// AddAll writes every message with one INSERT, each under an "outbox
// insert" span that is a child of the span in its own context (or in the
// context of the call when it has none), and stores that insert span's
// context, so messages of different traces keep their own trace. Ids and
// times are filled in; a preset id is kept.
func TestAddAllKeepsEachMessageInItsOwnTrace(t *testing.T) {
	for _, d := range mt.Databases(t) {
		t.Run(d.Name, func(t *testing.T) {
			ctx := context.Background()
			o := outbox.New(d.DB, outbox.Config{})
			preset := uuid.Must(uuid.NewV7())
			var pending []outbox.Pending
			var parents []trace.Span
			for i := range 4 {
				pctx, parent := otel.Tracer("test").Start(ctx, fmt.Sprintf("writer %d", i))
				defer parent.End()
				parents = append(parents, parent)
				msg := messaging.Message{Stream: "s", Type: "test.happened", Payload: []byte(fmt.Sprintf(`{"n":%d}`, i))}
				if i == 2 {
					msg.ID = preset
				}
				pending = append(pending, outbox.Pending{Trace: trace.SpanContextFromContext(pctx), Message: msg})
			}
			// The last message has no trace of its own: it takes the call's.
			callCtx := trace.ContextWithSpan(ctx, parents[3])
			pending[3].Trace = trace.SpanContext{}

			stmts := dbtest.Count(t, d.DB)
			var msgs []messaging.Message
			err := d.DB.RunInTx(callCtx, nil, func(ctx context.Context, tx bun.Tx) error {
				var err error
				msgs, err = o.AddAll(ctx, tx, pending)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if ops := stmts.Ops(); !slices.Equal(ops, []string{"INSERT"}) {
				t.Fatalf("AddAll ran %v, want one INSERT", ops)
			}
			if len(msgs) != len(pending) {
				t.Fatalf("AddAll returned %d messages, want %d", len(msgs), len(pending))
			}

			var rows []outbox.Row
			if err := d.DB.NewSelect().Model(&rows).Scan(ctx); err != nil {
				t.Fatal(err)
			}
			stored := map[uuid.UUID]outbox.Row{}
			for _, r := range rows {
				stored[r.ID] = r
			}
			if len(rows) != len(pending) || len(stored) != len(pending) {
				t.Fatalf("table holds %d rows (%d ids), want %d", len(rows), len(stored), len(pending))
			}

			inserts := map[trace.SpanID][]sdktrace.ReadOnlySpan{} // by parent
			for _, sp := range spans.Ended() {
				if sp.Name() == "outbox insert" {
					inserts[sp.Parent().SpanID()] = append(inserts[sp.Parent().SpanID()], sp)
				}
			}
			for i, msg := range msgs {
				if msg.ID == uuid.Nil || msg.OccurredAt.IsZero() {
					t.Fatalf("message %d: id %s, occurred at %v; want both filled", i, msg.ID, msg.OccurredAt)
				}
				if i == 2 && msg.ID != preset {
					t.Fatalf("message with preset id %s stored as %s", preset, msg.ID)
				}
				if string(msg.Payload) != string(pending[i].Payload) {
					t.Fatalf("message %d has payload %s, want %s", i, msg.Payload, pending[i].Payload)
				}
				row, ok := stored[msg.ID]
				if !ok {
					t.Fatalf("message %d (%s) has no row", i, msg.ID)
				}
				if !row.OccurredAt.Equal(msg.OccurredAt) || row.Traceparent != msg.Traceparent || string(row.Payload) != string(msg.Payload) {
					t.Fatalf("row %+v differs from the message returned %+v", row, msg)
				}

				parent := parents[i].SpanContext()
				got := inserts[parent.SpanID()]
				if len(got) != 1 {
					t.Fatalf("message %d: %d insert spans below its writer's span, want 1", i, len(got))
				}
				insert := got[0].SpanContext()
				if insert.TraceID() != parent.TraceID() {
					t.Fatalf("message %d: insert span in trace %s, want the writer's %s", i, insert.TraceID(), parent.TraceID())
				}
				if want := fmt.Sprintf("00-%s-%s-01", parent.TraceID(), insert.SpanID()); row.Traceparent != want {
					t.Fatalf("message %d: traceparent %q, want %q (its writer's trace, the insert span)", i, row.Traceparent, want)
				}
				if id := attr(got[0], "messaging.message.id"); id != msg.ID.String() {
					t.Fatalf("message %d: insert span is about message %q, want %s", i, id, msg.ID)
				}
			}
		})
	}
}

func attr(sp sdktrace.ReadOnlySpan, key string) string {
	for _, a := range sp.Attributes() {
		if string(a.Key) == key {
			return a.Value.Emit()
		}
	}
	return ""
}

// AddAll of nothing writes nothing and is no error.
func TestAddAllOfNothing(t *testing.T) {
	db := mt.SQLite(t)
	msgs, err := outbox.New(db, outbox.Config{}).AddAll(context.Background(), db, nil)
	if err != nil || len(msgs) != 0 {
		t.Fatalf("AddAll(nil) = %v, %v; want nothing and no error", msgs, err)
	}
}

// failingReader is a source of randomness that always fails.
type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("no entropy") }

// When a message id cannot be made, AddAll returns the error and writes
// nothing, rather than panicking while it ends its spans.
func TestAddAllReturnsTheErrorOfANewID(t *testing.T) {
	db := mt.SQLite(t)
	o := outbox.New(db, outbox.Config{})
	uuid.SetRand(failingReader{})
	defer uuid.SetRand(nil)
	err := func() (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic: %v", p)
			}
		}()
		_, err = o.AddAll(context.Background(), db, []outbox.Pending{{Message: messaging.Message{Stream: "s", Type: "t"}}})
		return err
	}()
	if err == nil || strings.HasPrefix(err.Error(), "panic") {
		t.Fatalf("AddAll = %v, want the error of the new id", err)
	}
	if unpublished(t, db) != 0 {
		t.Fatal("a row was written")
	}
}

// Messages added in a transaction with after-commit work (a stream
// consumer's) wake the relay once it commits, not before and not after a
// rollback; elsewhere the writer calls Notify itself.
func TestAddAllWakesTheRelayAfterTheCommit(t *testing.T) {
	db := mt.SQLite(t)
	o := outbox.New(db, outbox.Config{})
	woken := func() bool {
		select {
		case <-o.Wake():
			return true
		default:
			return false
		}
	}
	add := func(ctx context.Context) {
		t.Helper()
		msg := messaging.Message{Stream: "s", Type: "test.happened", Payload: []byte(`{}`)}
		if _, err := o.AddAll(ctx, db, []outbox.Pending{{Message: msg}}); err != nil {
			t.Fatal(err)
		}
	}

	add(context.Background())
	if woken() {
		t.Fatal("woke the relay without after-commit work: that is the writer's Notify")
	}
	for _, committed := range []bool{false, true} {
		ctx, ended := database.WithAfterCommit(context.Background())
		add(ctx)
		if woken() {
			t.Fatal("woke the relay before the transaction ended")
		}
		ended(committed)
		if woken() != committed {
			t.Fatalf("committed %v: relay woken %v", committed, !committed)
		}
	}
}
