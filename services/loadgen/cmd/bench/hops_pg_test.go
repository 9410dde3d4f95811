package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"

	"shop/services/devstack/stack"
	"shop/services/loadgen/internal/load"
	"shop/services/platform/database"
	"shop/services/platform/stream"
	"shop/services/platform/telemetry"
)

// testPostgres is TEST_DATABASE_URL; without it the test is skipped, except
// under CI, where it fails.
func testPostgres(t *testing.T) string {
	t.Helper()
	u := os.Getenv("TEST_DATABASE_URL")
	if u == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("TEST_DATABASE_URL is not set")
		}
		t.Skip("TEST_DATABASE_URL is not set")
	}
	return u
}

// freshDatabase creates a database of its own on the server of adminURL
// and drops it when the test ends.
func freshDatabase(t *testing.T, admin *bun.DB, adminURL, name string) string {
	t.Helper()
	ctx := context.Background()
	if err := exec1(ctx, admin, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)", "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec1(context.Background(), admin, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") })
	return withDatabase(adminURL, name)
}

// startRedis runs a redis-server of its own on a free port: the test's
// streams share no Redis database with other tests.
func startRedis(t *testing.T) *redis.Client {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command("redis-server", "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port)})
	t.Cleanup(func() { rdb.Close() })
	for deadline := time.Now().Add(10 * time.Second); rdb.Ping(context.Background()).Err() != nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("redis-server not ready within 10s")
		}
	}
	return rdb
}

// A small load on a shop with PostgreSQL and Redis: every settled order
// has its five timestamps, the hops are never negative and add up to
// created → settled, the held streams survive a trim, and PostgreSQL
// counted the commits.
func TestHopsAndCommitsRealShop(t *testing.T) {
	adminURL := testPostgres(t)
	ctx := context.Background()
	admin, err := database.Open(ctx, adminURL, database.Options{MaxOpenConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	prefix := fmt.Sprintf("shop_hops_%d_", os.Getpid())
	ordersURL := freshDatabase(t, admin, adminURL, prefix+"orders")
	paymentsURL := freshDatabase(t, admin, adminURL, prefix+"payments")
	refURL := freshDatabase(t, admin, adminURL, prefix+"ref")
	rdb := startRedis(t)

	ref, err := database.Open(ctx, refURL, database.Options{MaxOpenConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	statements, err := enableStatements(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pg_stat_statements loaded: %v", statements)

	slog.SetDefault(slog.New(slog.DiscardHandler))
	shopCtx, stopShop := context.WithCancel(ctx)
	defer stopShop()
	const secret = "hops-test-secret-for-the-gateway-tokens-0123"
	shop, err := stack.Start(shopCtx, stack.Options{
		OrdersDatabaseURL: ordersURL, PaymentsDatabaseURL: paymentsURL, RedisURL: "redis://" + rdb.Options().Addr,
		LogLevel: 8, ConsumerName: "test", ShutdownTimeout: 5 * time.Second,
		Telemetry: func(context.Context, string) (telemetry.Providers, error) { return telemetry.Providers{}, nil },
		Gateway:   map[string]string{"AUTH": "jwt", "JWT_HS256_SECRET": secret},
	})
	if err != nil {
		t.Fatal(err)
	}
	release, err := holdStreams(ctx, rdb)
	if err != nil {
		t.Fatal(err)
	}
	dbs := []string{prefix + "orders", prefix + "payments"}
	before, err := samplePG(ctx, ref, dbs, statements)
	if err != nil {
		t.Fatal(err)
	}
	since := time.Now().Add(-time.Second)
	rep, err := load.Run(ctx, load.Config{Gateway: shop.GatewayURL, JWTSecret: secret, Users: 5, Orders: 60, Workers: 4,
		Unaffordable: 0.2, SettleTimeout: 30 * time.Second, PollEvery: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.OrdersSettled != 60 {
		t.Fatalf("load: %+v", rep)
	}
	// Stopped, the services' backends report their counts as they exit.
	stopShop()
	if err := shop.Wait(); err != nil {
		t.Fatalf("shop: %v", err)
	}

	// The services' groups acked every entry; the held ones stay.
	for _, s := range hopStreams {
		if n, err := stream.NewTrimmer(rdb, stream.TrimmerConfig{Stream: s}).Trim(ctx); err != nil || n != 0 {
			t.Errorf("trim %s while held: %d removed, %v", s, n, err)
		}
	}
	orders, err := database.Open(ctx, ordersURL, database.Options{MaxOpenConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer orders.Close()
	payments, err := database.Open(ctx, paymentsURL, database.Options{MaxOpenConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer payments.Close()
	times, bud, err := readHops(ctx, orders, payments, rdb, since, rep.UserBase+1, rep.UserBase+int64(rep.Users))
	if err != nil {
		t.Fatal(err)
	}
	if bud.Orders != 60 || len(times) != 60 || bud.FromEntryID != [2]int{60, 60} {
		t.Errorf("budget of %d orders (%d times), %v from entry ids; want 60, all from entry ids", bud.Orders, len(times), bud.FromEntryID)
	}
	for _, o := range times {
		var sum time.Duration
		for i, h := range o.hops() {
			if h < 0 {
				t.Errorf("order %+v: hop %d is %v", o, i, h)
			}
			sum += h
		}
		if total := o.settled.Sub(o.created); sum != total || total <= 0 || total > 30*time.Second {
			t.Errorf("order %+v: hops add up to %v, created → settled %v", o, sum, total)
		}
	}
	for _, h := range bud.Hops {
		if h.P50 < 0 || h.P50 > h.P95 || h.P95 > h.P99 || h.P99 > 30_000 {
			t.Errorf("hop %+v", h)
		}
	}
	t.Logf("budget %+v", bud)

	release()
	for _, s := range hopStreams {
		if n, err := stream.NewTrimmer(rdb, stream.TrimmerConfig{Stream: s}).Trim(ctx); err != nil || n == 0 {
			t.Errorf("trim %s once released: %d removed, %v; want the acked entries gone", s, n, err)
		}
	}

	after, err := samplePG(ctx, ref, dbs, statements)
	if err != nil {
		t.Fatal(err)
	}
	pg := pgWork(before, after, rep.OrdersSettled, 5)
	// Each order takes at least its create and its settle, in orders, and
	// its payment, in payments, though batches share transactions.
	if pg.CommitsBy[dbs[0]] <= 0 || pg.CommitsBy[dbs[1]] <= 0 {
		t.Errorf("commits per order by database %v, want some in each", pg.CommitsBy)
	}
	if statements && (pg.Statements == nil || *pg.Statements < 1 || len(pg.Top) == 0) {
		t.Errorf("statements per order %v, top %v", pg.Statements, pg.Top)
	}
	t.Logf("PostgreSQL per order: %+v", pg)
}
