package messaging

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff spaces the retries of a messaging loop (relay, consumer) while
// Redis or the database is unreachable: the wait doubles from Min up to Max,
// and each wait is jittered so replicas that failed together do not retry in
// lockstep. The zero value waits 100ms to 5s.
type Backoff struct {
	Min, Max time.Duration
	next     time.Duration
}

// Next returns how long to wait before the next attempt.
func (b *Backoff) Next() time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = 100 * time.Millisecond
	}
	if hi <= 0 {
		hi = 5 * time.Second
	}
	if b.next < lo {
		b.next = lo
	}
	d := b.next
	b.next = min(2*b.next, hi)
	// Between half and all of d: spread out, yet never much shorter.
	return d/2 + rand.N(d/2+1)
}

// Reset starts over from Min after a success.
func (b *Backoff) Reset() { b.next = 0 }

// Sleep waits for d or until ctx ends, and reports whether it waited for d.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Every runs fn each interval until ctx ends: the shape of the janitors and
// trimmers, which log their own errors and try again at the next tick.
func Every(ctx context.Context, interval time.Duration, fn func(ctx context.Context)) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if ctx.Err() == nil { // both may be ready: the end wins
				fn(ctx)
			}
		}
	}
}
