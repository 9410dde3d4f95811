package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"

	"shop/services/contract"
	"shop/services/loadgen/internal/load"
	"shop/services/platform/messaging"
)

// The latency budget per hop: where create → settled goes for each order,
// from timestamps the shop already records. Each is taken as a service
// handles that step, before its transaction commits (the commit itself is
// not recorded):
//
//	created    orders.created_at (the order's row)
//	requested  the payments.requests entry of the order's first request:
//	           the millisecond of its stream entry id when the entry is
//	           still on the stream, else the outbox row's published_at
//	           (the relay's claim, just before its XADD)
//	paid       payments.created_at (the payment's outcome, paid or declined)
//	resulted   the payments.results entry of that outcome, likewise
//	settled    orders.updated_at (FINISHED or CANCELLED)
//
// All clocks are the one machine's. A stream entry id has millisecond
// resolution, so the hops on either side of it are off by up to 1 ms.

// hopNames name the hops between successive timestamps of orderTimes.
var hopNames = [4]string{
	"order written → on payments.requests",
	"→ payment written",
	"→ on payments.results",
	"→ order settled",
}

// orderTimes are the timestamps of one order's way through the shop.
type orderTimes struct {
	created, requested, paid, resulted, settled time.Time
}

// hops are the durations between successive timestamps. A timestamp earlier
// than the one before it (the millisecond of a stream entry id rounds down)
// counts as that one, so no hop is negative and the hops add up to
// created → settled.
func (o orderTimes) hops() [4]time.Duration {
	ts := [5]time.Time{o.created, o.requested, o.paid, o.resulted, o.settled}
	var h [4]time.Duration
	prev := ts[0]
	for i, t := range ts[1:] {
		if t.Before(prev) {
			t = prev
		}
		h[i] = t.Sub(prev)
		prev = t
	}
	return h
}

// hopStat is the p50/p95/p99 of one hop, in milliseconds.
type hopStat struct {
	Name string  `json:"name"`
	P50  float64 `json:"p50_ms"`
	P95  float64 `json:"p95_ms"`
	P99  float64 `json:"p99_ms"`
}

// hopBudget is the per-hop budget of a set of orders.
type hopBudget struct {
	Orders int `json:"orders"`
	// FromEntryID counts the requested and resulted timestamps taken from
	// stream entry ids; the others are outbox published_at.
	FromEntryID [2]int `json:"from_entry_id"`
	// Create is the create request's round trip as the load generator
	// timed it (set by the bench); Hops follow the order's row.
	Create hopStat   `json:"create_request"`
	Hops   []hopStat `json:"hops"`
}

// budget is the p50/p95/p99 of each hop over times.
func budget(times []orderTimes) []hopStat {
	per := make([][]time.Duration, len(hopNames))
	for _, o := range times {
		for i, d := range o.hops() {
			per[i] = append(per[i], d)
		}
	}
	out := make([]hopStat, len(hopNames))
	for i, name := range hopNames {
		p := load.Percentiles(per[i], 50, 95, 99)
		out[i] = hopStat{Name: name, P50: p[0], P95: p[1], P99: p[2]}
	}
	return out
}

// hopsGroup is the consumer group that holds the streams' entries while
// the bench reads them: the trimmer keeps every entry some group has not
// read, and this group reads none.
const hopsGroup = "bench-hops"

var hopStreams = []string{contract.PaymentRequestsStream, contract.PaymentResultsStream}

// holdStreams keeps the entries added to the payment streams from now on
// until release is called.
func holdStreams(ctx context.Context, rdb redis.UniversalClient) (release func(), err error) {
	for _, s := range hopStreams {
		if err := rdb.XGroupCreateMkStream(ctx, s, hopsGroup, "$").Err(); err != nil && !strings.Contains(err.Error(), "BUSYGROUP") {
			return nil, fmt.Errorf("hold %s: %w", s, err)
		}
	}
	return func() {
		for _, s := range hopStreams {
			rdb.XGroupDestroy(context.WithoutCancel(ctx), s, hopsGroup)
		}
	}, nil
}

// entryTimes maps the message id of each entry of stream added since since
// to the millisecond of its entry id.
func entryTimes(ctx context.Context, rdb redis.UniversalClient, stream string, since time.Time) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	start := strconv.FormatInt(since.UnixMilli(), 10)
	for {
		entries, err := rdb.XRangeN(ctx, stream, start, "+", 5000).Result()
		if err != nil {
			return nil, fmt.Errorf("XRANGE %s: %w", stream, err)
		}
		for _, e := range entries {
			ms, _, _ := strings.Cut(e.ID, "-")
			n, err := strconv.ParseInt(ms, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s: entry id %q", stream, e.ID)
			}
			if id, ok := e.Values[messaging.FieldID].(string); ok {
				out[id] = time.UnixMilli(n)
			}
		}
		if len(entries) < 5000 {
			return out, nil
		}
		start = "(" + entries[len(entries)-1].ID
	}
}

// ordersHopsSQL reads, from the orders database, each settled order of the
// users in a range with the outbox row of its first payment request.
const ordersHopsSQL = `
WITH req AS (
    SELECT DISTINCT ON (order_id) order_id, id, published_at
    FROM (SELECT (payload::json->>'order_id')::uuid AS order_id, id, published_at
          FROM outbox WHERE stream = ? AND occurred_at >= ?) AS r
    ORDER BY order_id, id
)
SELECT o.id::text AS order_id, o.created_at, o.updated_at, req.id::text AS request_id, req.published_at
FROM orders AS o JOIN req ON req.order_id = o.id
WHERE o.user_id BETWEEN ? AND ? AND o.status <> 'NEW' AND o.created_at >= ?`

// paymentsHopsSQL reads, from the payments database, each payment decided
// since a moment with the outbox row of its first result.
const paymentsHopsSQL = `
WITH res AS (
    SELECT DISTINCT ON (order_id) order_id, id, published_at
    FROM (SELECT (payload::json->>'order_id')::uuid AS order_id, id, published_at
          FROM outbox WHERE stream = ? AND occurred_at >= ?) AS r
    ORDER BY order_id, id
)
SELECT p.order_id::text AS order_id, p.created_at, res.id::text AS result_id, res.published_at
FROM payments AS p JOIN res ON res.order_id = p.order_id
WHERE p.created_at >= ?`

// readHops gathers the timestamps of the settled orders of users
// userFrom…userTo created since since, and the budget of their hops. The
// stream entries must still be there (holdStreams); an entry that is not
// counts with its outbox row's published_at.
func readHops(ctx context.Context, orders, payments *bun.DB, rdb redis.UniversalClient, since time.Time, userFrom, userTo int64) ([]orderTimes, hopBudget, error) {
	var bud hopBudget
	var ords []struct {
		OrderID     string     `bun:"order_id"`
		CreatedAt   time.Time  `bun:"created_at"`
		UpdatedAt   time.Time  `bun:"updated_at"`
		RequestID   string     `bun:"request_id"`
		PublishedAt *time.Time `bun:"published_at"`
	}
	if err := orders.NewRaw(ordersHopsSQL, contract.PaymentRequestsStream, since, userFrom, userTo, since).Scan(ctx, &ords); err != nil {
		return nil, bud, fmt.Errorf("orders' timestamps: %w", err)
	}
	var pays []struct {
		OrderID     string     `bun:"order_id"`
		CreatedAt   time.Time  `bun:"created_at"`
		ResultID    string     `bun:"result_id"`
		PublishedAt *time.Time `bun:"published_at"`
	}
	if err := payments.NewRaw(paymentsHopsSQL, contract.PaymentResultsStream, since, since).Scan(ctx, &pays); err != nil {
		return nil, bud, fmt.Errorf("payments' timestamps: %w", err)
	}
	var entries [2]map[string]time.Time
	for i, s := range hopStreams {
		var err error
		if entries[i], err = entryTimes(ctx, rdb, s, since); err != nil {
			return nil, bud, err
		}
	}
	type payment struct {
		paid, resulted time.Time
		fromEntry      bool
	}
	byOrder := make(map[string]payment, len(pays))
	for _, p := range pays {
		t, ok := entries[1][p.ResultID]
		if !ok {
			if p.PublishedAt == nil {
				continue
			}
			t = *p.PublishedAt
		}
		byOrder[p.OrderID] = payment{paid: p.CreatedAt, resulted: t, fromEntry: ok}
	}
	var times []orderTimes
	for _, o := range ords {
		p, ok := byOrder[o.OrderID]
		if !ok {
			continue
		}
		req, fromEntry := entries[0][o.RequestID]
		if !fromEntry {
			if o.PublishedAt == nil {
				continue
			}
			req = *o.PublishedAt
		}
		if fromEntry {
			bud.FromEntryID[0]++
		}
		if p.fromEntry {
			bud.FromEntryID[1]++
		}
		times = append(times, orderTimes{created: o.CreatedAt, requested: req, paid: p.paid, resulted: p.resulted, settled: o.UpdatedAt})
	}
	if len(times) == 0 {
		return nil, bud, errors.New("no settled order found with its payment")
	}
	bud.Orders = len(times)
	bud.Hops = budget(times)
	return times, bud, nil
}
