package deadletter_test

import (
	"context"
	"errors"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"shop/services/platform/stream"
	"shop/services/shopctl/internal/deadletter"
)

// message is the fields of an original entry, as a relay writes them.
func message(id string) map[string]any {
	return map[string]any{"id": id, "type": "payment.requested", "payload": `{"amount":5}`,
		"traceparent": "", "tracestate": "", "occurred_at": "2026-01-01T00:00:00Z"}
}

// deadLetter writes a dead letter as stream.Consumer does: the original
// fields plus the consumer's.
func deadLetter(t *testing.T, rdb redis.UniversalClient, s, originalID string, fields map[string]any) string {
	t.Helper()
	values := map[string]any{stream.FieldReason: "permanent: no such order", stream.FieldGroup: "payments",
		stream.FieldDeliveries: 3, stream.FieldOriginalID: originalID}
	for k, v := range fields {
		values[k] = v
	}
	id, err := rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: stream.DLQ(s), Values: values}).Result()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func newClient(t *testing.T) redis.UniversalClient {
	mini := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mini.Addr()})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

func TestListReadsTheConsumersFields(t *testing.T) {
	ctx := context.Background()
	rdb := newClient(t)
	a := deadLetter(t, rdb, "payments.requests", "1-0", message("m-a"))
	deadLetter(t, rdb, "payments.requests", "2-0", message("m-b"))
	deadLetter(t, rdb, "payments.results", "3-0", nil)
	rdb.XAdd(ctx, &redis.XAddArgs{Stream: "orders.other", Values: map[string]any{"k": "v"}}) // no dlq
	rdb.Set(ctx, "not.a.stream.dlq", "x", 0)

	streams, err := deadletter.Streams(ctx, rdb)
	if err != nil {
		t.Fatal(err)
	}
	if len(streams) != 2 || streams[0] != "payments.requests" || streams[1] != "payments.results" {
		t.Fatalf("Streams = %q", streams)
	}

	letters, total, err := deadletter.List(ctx, rdb, "payments.requests", 1)
	if err != nil {
		t.Fatal(err)
	}
	if total != 2 || len(letters) != 1 {
		t.Fatalf("List(limit 1): %d letters of %d, want 1 of 2", len(letters), total)
	}
	l := letters[0]
	if l.EntryID != a || l.OriginalID != "1-0" || l.MessageID != "m-a" || l.Type != "payment.requested" ||
		l.Reason != "permanent: no such order" || l.Group != "payments" || l.Deliveries != 3 || l.At.IsZero() {
		t.Errorf("letter = %+v", l)
	}
	if len(l.Message) != 6 || l.Message["payload"] != `{"amount":5}` {
		t.Errorf("message fields = %v, want the six original ones", l.Message)
	}
}

func TestReplayReaddsTheOriginalMessageThenDeletes(t *testing.T) {
	ctx := context.Background()
	rdb := newClient(t)
	const s = "payments.results"
	id := deadLetter(t, rdb, s, "5-0", message("m-1"))
	other := deadLetter(t, rdb, s, "6-0", message("m-2"))

	newID, err := deadletter.Replay(ctx, rdb, s, id)
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := rdb.XRange(ctx, s, "-", "+").Result()
	if len(entries) != 1 || entries[0].ID != newID {
		t.Fatalf("stream holds %v, want one entry %s", entries, newID)
	}
	want := message("m-1")
	if len(entries[0].Values) != len(want) {
		t.Errorf("replayed fields %v, want exactly %v", entries[0].Values, want)
	}
	for k, v := range want {
		if entries[0].Values[k] != v {
			t.Errorf("replayed %s = %v, want %v", k, entries[0].Values[k], v)
		}
	}
	left, _ := rdb.XRange(ctx, stream.DLQ(s), "-", "+").Result()
	if len(left) != 1 || left[0].ID != other {
		t.Errorf("dead letters left %v, want only %s", left, other)
	}

	// Again: nothing left to replay, nothing added.
	if _, err := deadletter.Replay(ctx, rdb, s, id); !errors.Is(err, deadletter.ErrNotFound) {
		t.Errorf("second replay: %v, want ErrNotFound", err)
	}
	if n := rdb.XLen(ctx, s).Val(); n != 1 {
		t.Errorf("stream length %d after the second replay, want 1", n)
	}
}

func TestReplayKeepsWhatCannotBeReplayed(t *testing.T) {
	ctx := context.Background()
	rdb := newClient(t)
	const s = "payments.requests"
	// The message was deleted from the stream before it was dead-lettered.
	empty := deadLetter(t, rdb, s, "7-0", nil)
	if _, err := deadletter.Replay(ctx, rdb, s, empty); !errors.Is(err, deadletter.ErrNoContent) {
		t.Errorf("replay of an empty dead letter: %v, want ErrNoContent", err)
	}
	// The stream key holds something else: XADD fails, the letter stays.
	id := deadLetter(t, rdb, s, "8-0", message("m-3"))
	rdb.Set(ctx, s, "not a stream", 0)
	if _, err := deadletter.Replay(ctx, rdb, s, id); err == nil || errors.Is(err, deadletter.ErrNotFound) {
		t.Errorf("replay onto a non-stream: %v, want the XADD's error", err)
	}
	if n := rdb.XLen(ctx, stream.DLQ(s)).Val(); n != 2 {
		t.Errorf("%d dead letters left, want both", n)
	}
}
