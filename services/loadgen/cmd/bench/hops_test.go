package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestOrderTimesHops(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 20, 0, 0, 0, time.UTC)
	at := func(us int) time.Time { return t0.Add(time.Duration(us) * time.Microsecond) }
	// The request's entry id rounds down to 0 ms, before the order's
	// 700 µs: that hop is 0 and the next one starts at 700 µs.
	o := orderTimes{created: at(700), requested: at(0), paid: at(3_200), resulted: at(4_000), settled: at(9_500)}
	got := o.hops()
	want := [4]time.Duration{0, 2_500 * time.Microsecond, 800 * time.Microsecond, 5_500 * time.Microsecond}
	if got != want {
		t.Errorf("hops = %v, want %v", got, want)
	}
	var sum time.Duration
	for _, h := range got {
		sum += h
	}
	if sum != o.settled.Sub(o.created) {
		t.Errorf("hops add up to %v, want created → settled %v", sum, o.settled.Sub(o.created))
	}
	// Every timestamp rounded below the first: all hops 0 but the last.
	o = orderTimes{created: at(900), requested: at(0), paid: at(100), resulted: at(0), settled: at(1_000)}
	if got, want := o.hops(), [4]time.Duration{0, 0, 0, 100 * time.Microsecond}; got != want {
		t.Errorf("hops = %v, want %v", got, want)
	}
}

func TestBudget(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 20, 0, 0, 0, time.UTC)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	var times []orderTimes
	for i := range 100 { // hop k of order i takes (k+1)·(i+1)/10 ms
		c := ms(1000 * i)
		d := func(k int) time.Duration { return time.Duration((k+1)*(i+1)) * time.Millisecond / 10 }
		r := c.Add(d(0))
		p := r.Add(d(1))
		s := p.Add(d(2))
		times = append(times, orderTimes{created: c, requested: r, paid: p, resulted: s, settled: s.Add(d(3))})
	}
	got := budget(times)
	if len(got) != len(hopNames) {
		t.Fatalf("%d hops, want %d", len(got), len(hopNames))
	}
	for k, h := range got {
		r := func(x float64) float64 { return math.Round(x*100) / 100 }
		f := float64(k + 1)
		want := hopStat{Name: hopNames[k], P50: r(5 * f), P95: r(9.5 * f), P99: r(9.9 * f)}
		if h != want {
			t.Errorf("hop %d = %+v, want %+v", k, h, want)
		}
	}
}

func TestPGWork(t *testing.T) {
	before := pgSample{
		commits:   map[string]int64{"shop_bench_orders": 1000, "shop_bench_payments": 500},
		rollbacks: map[string]int64{"shop_bench_orders": 1, "shop_bench_payments": 0},
		statements: map[stmtKey]stmtCalls{
			{1, 10, 7}: {"shop_bench_orders", "INSERT INTO orders", 100},
			{1, 10, 8}: {"shop_bench_orders", "BEGIN", 50},
			{2, 10, 9}: {"shop_bench_payments", "SELECT 1", 5}, // unchanged
		},
	}
	after := pgSample{
		commits:   map[string]int64{"shop_bench_orders": 2000, "shop_bench_payments": 1000},
		rollbacks: map[string]int64{"shop_bench_orders": 11, "shop_bench_payments": 0},
		statements: map[stmtKey]stmtCalls{
			{1, 10, 7}: {"shop_bench_orders", "INSERT   INTO\n orders", 1100},
			{1, 10, 8}: {"shop_bench_orders", "BEGIN", 2050},
			{2, 10, 9}: {"shop_bench_payments", "SELECT 1", 5},
			{2, 10, 3}: {"shop_bench_payments", "UPDATE accounts", 500}, // new: counts whole
		},
	}
	p := pgWork(before, after, 1000, 2)
	if p.Commits != 1.5 || p.Rollbacks != 0.01 || p.CommitsBy["shop_bench_orders"] != 1 || p.CommitsBy["shop_bench_payments"] != 0.5 {
		t.Errorf("commits %+v", p)
	}
	if p.Statements == nil || *p.Statements != 3.5 {
		t.Fatalf("statements %v, want 3.5", p.Statements)
	}
	if got := byDB(p.StatementsBy, "shop_bench_"); got != "orders 3.00, payments 0.50" {
		t.Errorf("by database %q", got)
	}
	want := []topStatement{{"shop_bench_orders", 2, "BEGIN"}, {"shop_bench_orders", 1, "INSERT INTO orders"}}
	if !reflect.DeepEqual(p.Top, want) {
		t.Errorf("top %+v, want %+v", p.Top, want)
	}
	// Without pg_stat_statements: commits only.
	before.statements, after.statements = nil, nil
	if p := pgWork(before, after, 1000, 2); p.Statements != nil || p.Top != nil || p.Commits != 1.5 {
		t.Errorf("without statements: %+v", p)
	}
}

func TestOneLine(t *testing.T) {
	if got := oneLine("SELECT  a,\n\t b FROM t", 100); got != "SELECT a, b FROM t" {
		t.Errorf("oneLine = %q", got)
	}
	if got := oneLine("SELECT ééé FROM t", 9); got != "SELECT é…" {
		t.Errorf("oneLine = %q", got)
	}
}

func TestWriteJSON(t *testing.T) {
	statements := 7.25
	b := &bench{
		results: []result{{"shop: settled orders/s (flat out)", "861"}},
		pgFlat:  &pgPerOrder{Commits: 1.5, CommitsBy: map[string]float64{"shop_bench_orders": 1, "shop_bench_payments": 0.5}, Statements: &statements},
		pgHalf:  &pgPerOrder{Commits: 3.5},
		hops:    &hopBudget{Orders: 3, Hops: []hopStat{{Name: hopNames[0], P50: 1, P95: 2, P99: 3}}},
	}
	path := filepath.Join(t.TempDir(), "bench.json")
	if err := b.writeJSON(path); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Results []struct{ Name, Value string }
		PG      map[string]any `json:"postgres_per_settled_order_flat_out"`
		PGHalf  map[string]any `json:"postgres_per_settled_order_half_load"`
		Hops    struct {
			Orders int
			Hops   []map[string]any
		} `json:"hops_half_load"`
	}
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	if len(got.Results) != 1 || got.Results[0].Value != "861" || got.PG["commits"] != 1.5 || got.PG["statements"] != 7.25 || got.PGHalf["commits"] != 3.5 ||
		got.Hops.Orders != 3 || got.Hops.Hops[0]["p99_ms"] != 3.0 {
		t.Errorf("JSON report:\n%s", data)
	}
}
