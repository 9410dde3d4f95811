// Package ratelimit bounds how fast one caller may send requests, across
// every replica of the gateway: the counts live in Redis (GCRA, through
// redis_rate). When Redis cannot be asked, requests pass: a rate limit that
// fails closed would turn a Redis outage into the whole shop's.
package ratelimit

import (
	"context"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/metric"

	"shop/services/platform/telemetry"
)

// Config is a limit: Rate requests per second, with bursts up to Burst.
type Config struct {
	Rate  int
	Burst int
	// Pause is how long Redis is not asked after it failed, so that a
	// Redis that hangs does not slow every request by its timeout
	// (default 1s).
	Pause time.Duration
	// LogEvery bounds the log lines about Redis failing to one per this
	// interval (default 10s).
	LogEvery time.Duration
}

func (c Config) withDefaults() Config {
	if c.Burst < 1 {
		c.Burst = max(c.Rate, 1)
	}
	if c.Pause <= 0 {
		c.Pause = time.Second
	}
	if c.LogEvery <= 0 {
		c.LogEvery = 10 * time.Second
	}
	return c
}

// Limiter decides whether a caller's request may pass.
type Limiter struct {
	cfg         Config
	limit       redis_rate.Limit
	rdb         *redis.Client
	limiter     *redis_rate.Limiter
	unavailable metric.Int64Counter
	limitValue  string // RateLimit-Limit, the same on every answer
	policy      string // RateLimit-Policy, likewise

	pausedUntil atomic.Int64 // unix nanoseconds

	logMu      sync.Mutex
	loggedAt   time.Time
	suppressed int
}

// New returns a Limiter that keeps its counts in rdb.
func New(rdb *redis.Client, cfg Config, tel telemetry.Providers) (*Limiter, error) {
	cfg = cfg.withDefaults()
	counter, err := tel.MeterProvider().Meter("shop/services/gateway/ratelimit").Int64Counter(
		"gateway.ratelimit.unavailable", metric.WithUnit("{request}"),
		metric.WithDescription("Requests let through unlimited because Redis could not be asked."))
	if err != nil {
		return nil, err
	}
	return &Limiter{
		cfg:         cfg,
		limit:       redis_rate.Limit{Rate: cfg.Rate, Burst: cfg.Burst, Period: time.Second},
		rdb:         rdb,
		limiter:     redis_rate.NewLimiter(rdb),
		unavailable: counter,
		limitValue:  strconv.Itoa(cfg.Burst),
		policy:      strconv.Itoa(cfg.Burst) + ";w=" + strconv.Itoa(max(1, seconds(time.Duration(float64(cfg.Burst)/float64(cfg.Rate)*float64(time.Second))))),
	}, nil
}

// Decision is the answer for one request.
type Decision struct {
	// Allowed is false when the caller is over the limit.
	Allowed bool
	// Known is false when Redis could not be asked; the request passes.
	Known      bool
	Limit      int
	Remaining  int
	RetryAfter time.Duration // when not allowed: until one more request passes
	ResetAfter time.Duration // until the full burst is available again
}

// Allow takes one request from key's allowance.
func (l *Limiter) Allow(ctx context.Context, key string) Decision {
	if time.Now().UnixNano() < l.pausedUntil.Load() {
		l.failed(ctx, nil)
		return Decision{Allowed: true}
	}
	res, err := l.limiter.Allow(ctx, key, l.limit)
	if err != nil {
		if ctx.Err() == nil {
			l.pausedUntil.Store(time.Now().Add(l.cfg.Pause).UnixNano())
		}
		l.failed(ctx, err)
		return Decision{Allowed: true}
	}
	return Decision{
		Allowed:    res.Allowed > 0,
		Known:      true,
		Limit:      l.cfg.Burst,
		Remaining:  res.Remaining,
		RetryAfter: res.RetryAfter,
		ResetAfter: res.ResetAfter,
	}
}

// failed counts a request let through unlimited and logs it, at most once
// per LogEvery; err is nil while Redis is paused after a failure.
func (l *Limiter) failed(ctx context.Context, err error) {
	l.unavailable.Add(ctx, 1)
	l.logMu.Lock()
	defer l.logMu.Unlock()
	if err == nil || time.Since(l.loggedAt) < l.cfg.LogEvery {
		l.suppressed++
		return
	}
	slog.WarnContext(ctx, "rate limits off: Redis cannot be asked; requests pass unlimited",
		"error", err, "unlimited_since_last_log", l.suppressed)
	l.loggedAt = time.Now()
	l.suppressed = 0
}

// Check reports whether Redis answers: a detail for /health, never a
// reason to be unready.
func (l *Limiter) Check(ctx context.Context) error {
	return l.rdb.Ping(ctx).Err()
}

// The RateLimit-* header names as http.Header keys them. Setting them
// through Header.Set would canonicalize each name again on every answer.
var (
	limitHeader     = http.CanonicalHeaderKey("RateLimit-Limit")
	remainingHeader = http.CanonicalHeaderKey("RateLimit-Remaining")
	resetHeader     = http.CanonicalHeaderKey("RateLimit-Reset")
	policyHeader    = http.CanonicalHeaderKey("RateLimit-Policy")
	retryHeader     = http.CanonicalHeaderKey("Retry-After")
)

// SetHeaders writes d's RateLimit-* headers (and Retry-After when it
// refuses) on an answer. A decision made without Redis writes none.
func (l *Limiter) SetHeaders(h http.Header, d Decision) {
	if !d.Known {
		return
	}
	// One backing array for the values, each header a one-element slice of
	// it with no room to grow into its neighbour: every request answers
	// these, and each would otherwise be an allocation of its own.
	v := [...]string{l.limitValue, strconv.Itoa(d.Remaining), strconv.Itoa(seconds(d.ResetAfter)), l.policy}
	h[limitHeader] = v[0:1:1]
	h[remainingHeader] = v[1:2:2]
	h[resetHeader] = v[2:3:3]
	h[policyHeader] = v[3:4:4]
	if !d.Allowed {
		h[retryHeader] = []string{strconv.Itoa(max(1, seconds(d.RetryAfter)))}
	}
}

// seconds rounds d up to whole seconds, never below 0.
func seconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int(math.Ceil(d.Seconds()))
}
