package ratelimit_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"shop/services/gateway/internal/ratelimit"
	"shop/services/platform/telemetry"
)

// The embedded broker of the development stack is miniredis: the limits
// work on it too.
func TestLimitOnMiniredis(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	l, err := ratelimit.New(rdb, ratelimit.Config{Rate: 1, Burst: 2}, telemetry.Providers{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i, want := range []bool{true, true, false} {
		d := l.Allow(ctx, "user:1")
		if d.Allowed != want || !d.Known {
			t.Fatalf("request %d: %+v, want allowed %v", i+1, d, want)
		}
		if i == 2 {
			h := http.Header{}
			l.SetHeaders(h, d)
			if h.Get("Retry-After") != "1" || h.Get("RateLimit-Remaining") != "0" || h.Get("RateLimit-Limit") != "2" || h.Get("RateLimit-Policy") != "2;w=2" {
				t.Errorf("headers on a refusal: %v", h)
			}
		}
	}
	if d := l.Allow(ctx, "user:2"); !d.Allowed {
		t.Errorf("another key refused: %+v", d)
	}
	if err := l.Check(ctx); err != nil {
		t.Errorf("Check: %v", err)
	}
}

func TestRedisDownLetsThrough(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1, DialerRetries: 1})
	t.Cleanup(func() { rdb.Close() })
	l, err := ratelimit.New(rdb, ratelimit.Config{Rate: 1, Burst: 1, Pause: time.Millisecond}, telemetry.Providers{})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	restore := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	t.Cleanup(func() { slog.SetDefault(restore) })
	mr.Close()
	for range 3 {
		d := l.Allow(context.Background(), "user:1")
		if !d.Allowed || d.Known {
			t.Fatalf("with Redis down: %+v, want allowed and unknown", d)
		}
		h := http.Header{}
		l.SetHeaders(h, d)
		if len(h) != 0 {
			t.Errorf("headers without a decision: %v", h)
		}
	}
	if l.Check(context.Background()) == nil {
		t.Error("Check passes with Redis down")
	}
	// Redis was asked three times (Pause is 1ms), and failed each time:
	// one log line, not one per request.
	if n := strings.Count(logs.String(), "rate limits off"); n != 1 {
		t.Errorf("%d log lines for 3 requests, want 1:\n%s", n, logs.String())
	}
}
