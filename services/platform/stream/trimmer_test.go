package stream_test

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	mt "shop/services/platform/messaging/messagingtest"
	"shop/services/platform/stream"
)

// A pass trims exactly the entries every group has acknowledged: not a
// group's pending entries, nor those not yet delivered to it.
func TestTrimKeepsWhatAnyGroupStillNeeds(t *testing.T) {
	for _, b := range mt.Brokers(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			rdb := b.Client
			s := b.Stream(t)
			var ids []string // ids[i] is entry i+1
			for range 10 {
				ids = append(ids, rdb.XAdd(ctx, &redis.XAddArgs{Stream: s, Values: map[string]any{"k": "v"}}).Val())
			}
			read := func(group string, n int64) {
				rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: group, Consumer: "c", Streams: []string{s, ">"}, Count: n})
			}
			for _, g := range []string{"fast", "slow"} {
				if err := rdb.XGroupCreate(ctx, s, g, "0").Err(); err != nil {
					t.Fatal(err)
				}
			}
			trimmer := stream.NewTrimmer(rdb, stream.TrimmerConfig{Stream: s})
			trim := func(wantRemoved int64, wantFirst string) {
				t.Helper()
				n, err := trimmer.Trim(ctx)
				if err != nil || n != wantRemoved {
					t.Fatalf("Trim removed %d (%v), want %d", n, err, wantRemoved)
				}
				left := rdb.XRange(ctx, s, "-", "+").Val()
				if len(left) == 0 || left[0].ID != wantFirst || left[len(left)-1].ID != ids[9] {
					t.Fatalf("left %d entries from %v, want %s to %s", len(left), left, wantFirst, ids[9])
				}
			}

			// fast: 1-7 delivered, 1-5 acknowledged, 6 and 7 pending.
			// slow: 1-3 delivered and acknowledged, 4-10 not yet delivered.
			read("fast", 7)
			rdb.XAck(ctx, s, "fast", ids[:5]...)
			read("slow", 3)
			rdb.XAck(ctx, s, "slow", ids[:3]...)
			trim(3, ids[3])

			// slow catches up; fast still holds 6 and 7.
			read("slow", 10)
			rdb.XAck(ctx, s, "slow", ids[3:]...)
			trim(2, ids[5])

			// fast acknowledges 6 and 7; 8-10 are not delivered to it yet.
			rdb.XAck(ctx, s, "fast", ids[5:7]...)
			trim(2, ids[7])
		})
	}
}

// Without groups nothing is trimmed: a group created later starts at the
// beginning. A stream that does not exist is no error.
func TestTrimWithoutGroupsKeepsEverything(t *testing.T) {
	for _, b := range mt.Brokers(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			s := b.Stream(t)
			trimmer := stream.NewTrimmer(b.Client, stream.TrimmerConfig{Stream: s})
			if n, err := trimmer.Trim(ctx); n != 0 || err != nil {
				t.Fatalf("missing stream: Trim = %d, %v", n, err)
			}
			for range 3 {
				b.Client.XAdd(ctx, &redis.XAddArgs{Stream: s, Values: map[string]any{"k": "v"}})
			}
			if n, err := trimmer.Trim(ctx); n != 0 || err != nil || b.Client.XLen(ctx, s).Val() != 3 {
				t.Fatalf("no groups: Trim = %d, %v", n, err)
			}
		})
	}
}
