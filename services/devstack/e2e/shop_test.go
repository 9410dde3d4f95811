package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"shop/services/platform/database"
	"shop/services/platform/database/dbtest"
	"shop/services/platform/polltest"
	"shop/services/platform/service/servicetest"
)

// shop is the three services as processes on PostgreSQL and Redis.
type shop struct {
	t          *testing.T
	orders     []*servicetest.Process
	payments   []*servicetest.Process
	gateway    *servicetest.Process
	ordersDB   *bun.DB // for checking invariants, read-only
	paymentsDB *bun.DB
}

// startShop starts replicas of orders and payments (each replica a consumer
// of its own name) and a gateway in front of the first replicas.
func startShop(t *testing.T, replicas int, env ...string) *shop {
	t.Helper()
	redisURL := servicetest.RedisURL(t)
	ordersURL, paymentsURL := dbtest.PostgresURL(t), dbtest.PostgresURL(t)
	s := &shop{t: t}
	common := slices.Concat([]string{"REDIS_URL=" + redisURL, "LOG_LEVEL=warn", "SHUTDOWN_TIMEOUT=10s"}, env)
	for i := range replicas {
		s.payments = append(s.payments, servicetest.Start(t, fmt.Sprintf("payments-%d", i), servicetest.Build(t, "payments"),
			slices.Concat(common, []string{"DATABASE_URL=" + paymentsURL, fmt.Sprintf("CONSUMER_NAME=payments-%d", i)})...))
		s.orders = append(s.orders, servicetest.Start(t, fmt.Sprintf("orders-%d", i), servicetest.Build(t, "orders"),
			slices.Concat(common, []string{"DATABASE_URL=" + ordersURL, fmt.Sprintf("CONSUMER_NAME=orders-%d", i)})...))
	}
	s.gateway = servicetest.Start(t, "gateway", servicetest.Build(t, "gateway"),
		slices.Concat(gatewayAuth(redisURL), []string{"ORDERS_URL=" + s.orders[0].URL, "PAYMENTS_URL=" + s.payments[0].URL, "LOG_LEVEL=warn"})...)
	s.ordersDB = openDB(t, ordersURL)
	s.paymentsDB = openDB(t, paymentsURL)
	return s
}

// gatewayAuth is the gateway's environment for authentication on, with
// TestSecret, and its rate limits in the tests' Redis.
func gatewayAuth(redisURL string) []string {
	return []string{"AUTH=jwt", "JWT_HS256_SECRET=" + TestSecret, "REDIS_URL=" + redisURL}
}

func openDB(t *testing.T, url string) *bun.DB {
	t.Helper()
	db, err := database.Open(context.Background(), url, database.Options{MaxOpenConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// waitSettled polls until every order in the orders database is terminal.
func waitSettled(t *testing.T, db *bun.DB, limit time.Duration) {
	t.Helper()
	polltest.Until(t, limit, func() error {
		var pending int
		if err := db.NewRaw("SELECT count(*) FROM orders WHERE status = 'NEW'").Scan(context.Background(), &pending); err != nil {
			return err
		}
		if pending > 0 {
			return fmt.Errorf("%d orders still NEW", pending)
		}
		return nil
	})
}
