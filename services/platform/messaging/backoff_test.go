package messaging_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"shop/services/platform/messaging"
)

func TestEveryRunsUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var runs atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		messaging.Every(ctx, time.Millisecond, func(context.Context) {
			if runs.Add(1) == 3 {
				cancel()
			}
		})
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Every did not return after its context ended")
	}
	if n := runs.Load(); n != 3 {
		t.Fatalf("ran %d times, want 3 (none after cancel)", n)
	}
}

func TestBackoffGrowsToMaxAndResets(t *testing.T) {
	b := messaging.Backoff{Min: 10 * time.Millisecond, Max: 40 * time.Millisecond}
	for i, hi := range []time.Duration{10, 20, 40, 40} {
		d := b.Next()
		if d < hi*time.Millisecond/2 || d > hi*time.Millisecond {
			t.Fatalf("wait %d = %v, want within [%v, %v]", i, d, hi*time.Millisecond/2, hi*time.Millisecond)
		}
	}
	b.Reset()
	if d := b.Next(); d > 10*time.Millisecond {
		t.Fatalf("after Reset the wait is %v, want at most 10ms", d)
	}
}
