package main

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"

	"shop/services/platform/messaging"
	mt "shop/services/platform/messaging/messagingtest"
	"shop/services/platform/service/servicetest"
	"shop/services/platform/stream"
)

// TestDLQReplayOfARealDeadLetter runs a real consumer on a real Redis: a
// message it cannot process yet is dead-lettered; `shopctl dlq list` shows
// it; once the cause is fixed, `shopctl dlq replay` puts it back on its
// stream with its message id, the consumer processes it once, and the
// dead-letter stream is empty. A second replay finds nothing and adds
// nothing, and replaying a message the consumer had processed after all
// leaves it processed once: the inbox drops it.
func TestDLQReplayOfARealDeadLetter(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url := servicetest.RedisURL(t)
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	db := mt.SQLite(t)
	const s = "payments.results"

	var broken atomic.Bool
	broken.Store(true)
	var mu sync.Mutex
	applied := map[uuid.UUID]int{}
	handler := func(_ context.Context, _ bun.IDB, batch []stream.Delivery) error {
		for _, d := range batch {
			if broken.Load() {
				return stream.Permanent(fmt.Errorf("order of %s not found", d.Message.ID))
			}
			mu.Lock()
			applied[d.Message.ID]++
			mu.Unlock()
		}
		return nil
	}
	c := stream.NewConsumer(db, rdb, stream.ConsumerConfig{
		Stream: s, Group: "orders", Name: "c1", Block: 20 * time.Millisecond,
		ClaimIdle: time.Second, ClaimInterval: 50 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
	}, handler)
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()

	msg := messaging.Message{ID: uuid.Must(uuid.NewV7()), Stream: s, Type: "payment.succeeded",
		Payload: []byte(`{"order_id":"x"}`), OccurredAt: time.Now().UTC()}
	originalEntry, err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: s, Values: msg.Values()}).Result()
	if err != nil {
		t.Fatal(err)
	}
	mt.Eventually(t, 10*time.Second, "the message is dead-lettered", func() bool {
		return rdb.XLen(ctx, stream.DLQ(s)).Val() == 1
	})

	shopctl := func(args ...string) (int, string) {
		var out, errOut bytes.Buffer
		code := run(ctx, append([]string{"dlq"}, append(args, "-redis", url)...), &out, &errOut)
		return code, out.String() + errOut.String()
	}
	code, out := shopctl("list")
	if code != 0 {
		t.Fatalf("dlq list: exit %d\n%s", code, out)
	}
	t.Logf("shopctl dlq list:\n%s", out)
	row := regexp.MustCompile(`(?m)^(\d+-\d+) +` + msg.ID.String() + ` +payment\.succeeded +orders +1 +\d+s +permanent: order of ` + msg.ID.String() + ` not found$`)
	m := row.FindStringSubmatch(out)
	if !strings.HasPrefix(out, s+".dlq: 1 dead letter\n") || m == nil {
		t.Fatalf("dlq list printed\n%s\nwant a header and the row of message %s", out, msg.ID)
	}
	dlqEntry := m[1]

	broken.Store(false)
	if code, out := shopctl("replay", s, "-id", dlqEntry); code != 0 || !strings.Contains(out, "1 replayed, 0 not") {
		t.Fatalf("dlq replay: exit %d\n%s", code, out)
	}
	if n := rdb.XLen(ctx, stream.DLQ(s)).Val(); n != 0 {
		t.Errorf("%d dead letters left after the replay", n)
	}
	entries, _ := rdb.XRange(ctx, s, "-", "+").Result()
	if len(entries) != 2 || entries[0].ID != originalEntry {
		t.Fatalf("stream holds %v, want the original entry and its replay", entries)
	}
	replayed, err := messaging.Decode(s, entries[1].Values)
	if err != nil || replayed.ID != msg.ID || replayed.Type != msg.Type || string(replayed.Payload) != string(msg.Payload) {
		t.Errorf("replayed message %+v (%v), want %+v", replayed, err, msg)
	}
	mt.Eventually(t, 10*time.Second, "the replayed message is processed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return applied[msg.ID] == 1
	})

	// Again, by id and with -all: nothing to replay, nothing added.
	if code, out := shopctl("replay", s, "-id", dlqEntry); code != 1 || !strings.Contains(out, "no such dead letter") {
		t.Errorf("second replay by id: exit %d, want 1 and \"no such dead letter\"\n%s", code, out)
	}
	if code, out := shopctl("replay", s, "-all"); code != 0 || !strings.Contains(out, "0 replayed, 0 not") {
		t.Errorf("replay -all of an empty dead-letter stream: exit %d\n%s", code, out)
	}
	if n := rdb.XLen(ctx, s).Val(); n != 2 {
		t.Errorf("stream holds %d entries after the second replay, want 2", n)
	}

	// A dead letter of a message that was processed after all (written
	// here by hand, as a consumer would): the replay reaches the consumer,
	// whose inbox drops it.
	values := msg.Values()
	values[stream.FieldReason], values[stream.FieldGroup] = "delivered 5 times", "orders"
	values[stream.FieldDeliveries], values[stream.FieldOriginalID] = 5, originalEntry
	if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream.DLQ(s), Values: values}).Err(); err != nil {
		t.Fatal(err)
	}
	if code, out := shopctl("replay", s, "-all"); code != 0 || !strings.Contains(out, "1 replayed, 0 not") {
		t.Fatalf("replay -all: exit %d\n%s", code, out)
	}
	mt.Eventually(t, 10*time.Second, "the consumer acknowledges the replay", func() bool {
		p, err := rdb.XPending(ctx, s, "orders").Result()
		return err == nil && p.Count == 0 && rdb.XLen(ctx, s).Val() == 3
	})
	mu.Lock()
	defer mu.Unlock()
	if applied[msg.ID] != 1 {
		t.Errorf("message applied %d times, want once", applied[msg.ID])
	}
}
