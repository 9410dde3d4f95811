package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"

	"shop/services/contract"
	"shop/services/platform/database"
	"shop/services/platform/database/dbtest"
	"shop/services/platform/polltest"
	"shop/services/platform/service/servicetest"
)

// The dead-letter limit of the consumers (stream.ConsumerConfig's default
// MaxDeliveries) and the CLAIM_IDLE the test runs them with: without the
// transient/permanent distinction every message that failed during an
// outage longer than their product would be dead-lettered.
const (
	maxDeliveries = 5
	outageClaim   = time.Second
	outage        = 3 * maxDeliveries * outageClaim
)

// TestDatabaseOutageLongerThanTheDeadLetterLimit blocks the databases of
// both services (ALLOW_CONNECTIONS false, backends terminated) for three
// times as long as the dead-letter limit would allow, with payment requests
// and then results on the streams. Meanwhile the API answers 503 with
// Retry-After and /readyz is 503; once the databases are back nothing is
// dead-lettered, every order settles, and every balance equals its ledger.
// The services are called directly: this is about them, not the gateway.
func TestDatabaseOutageLongerThanTheDeadLetterLimit(t *testing.T) {
	redisURL := servicetest.RedisURL(t)
	ordersDB, paymentsDB := ownDatabase(t, "orders"), ownDatabase(t, "payments")
	// Info: the consumers log their resumption at that level.
	common := []string{"REDIS_URL=" + redisURL, "LOG_LEVEL=info", "SHUTDOWN_TIMEOUT=10s", "CLAIM_IDLE=" + outageClaim.String()}
	payments := servicetest.Start(t, "payments", servicetest.Build(t, "payments"),
		append(slices.Clone(common), "DATABASE_URL="+paymentsDB.url, "CONSUMER_NAME=payments-0")...)
	orders := servicetest.Start(t, "orders", servicetest.Build(t, "orders"),
		append(slices.Clone(common), "DATABASE_URL="+ordersDB.url, "CONSUMER_NAME=orders-0")...)
	c := newOutageClient()
	const users = 4
	for u := 1; u <= users; u++ {
		c.must(t, payments.URL+"/accounts", fmt.Sprintf(`{"user_id":%d}`, u), http.StatusCreated)
		c.must(t, payments.URL+"/accounts/top-up", fmt.Sprintf(`{"user_id":%d,"amount":"100.00"}`, u), http.StatusOK)
	}

	// Payments' database goes first: requests pile up on its stream.
	paymentsDB.block(t)
	placed := 0
	for i := range 24 {
		// Some orders exceed what is left: both outcomes cross the outage.
		c.must(t, orders.URL+"/orders", fmt.Sprintf(`{"user_id":%d,"amount":"%d.00"}`, i%users+1, 10+i%3*15), http.StatusCreated)
		placed++
	}
	c.waitStatus(t, payments.URL+"/readyz", http.StatusServiceUnavailable)
	c.expectUnavailable(t, payments.URL+"/accounts/top-up", `{"user_id":1,"amount":"1.00"}`)

	// Half the outage later, orders' database goes too.
	sleepChecking(t, outage/2, redisURL)
	ordersDB.block(t)
	c.waitStatus(t, orders.URL+"/readyz", http.StatusServiceUnavailable)
	c.expectUnavailable(t, orders.URL+"/orders", `{"user_id":1,"amount":"1.00"}`)
	sleepChecking(t, outage/2, redisURL)

	// Payments comes back and answers: results pile up for orders, whose
	// database is still down for as long again.
	paymentsDB.unblock(t)
	c.waitStatus(t, payments.URL+"/readyz", http.StatusOK)
	sleepChecking(t, outage, redisURL)
	c.expectUnavailable(t, orders.URL+"/orders", `{"user_id":1,"amount":"1.00"}`)
	ordersDB.unblock(t)
	c.waitStatus(t, orders.URL+"/readyz", http.StatusOK)

	back := time.Now()
	odb, pdb := openDB(t, ordersDB.url), openDB(t, paymentsDB.url)
	waitSettled(t, odb, time.Minute)
	t.Logf("every order settled %v after the databases were back", time.Since(back).Round(100*time.Millisecond))
	var count int
	if err := odb.NewRaw("SELECT count(*) FROM orders").Scan(context.Background(), &count); err != nil || count != placed {
		t.Fatalf("%d orders (%v), want %d", count, err, placed)
	}
	finished, cancelled := checkInvariants(t, odb, pdb)
	if finished == 0 || cancelled == 0 {
		t.Fatalf("%d finished, %d cancelled: want both outcomes", finished, cancelled)
	}
	checkNoDeadLetters(t, redisURL)
	for _, p := range []*servicetest.Process{orders, payments} {
		if !strings.Contains(p.Output(), "consumer paused") || !strings.Contains(p.Output(), "consumer resumed") {
			t.Errorf("%s did not log its consumer's pause and resumption", p.Name)
		}
	}
}

// sleepChecking waits d, checking all along that nothing is dead-lettered.
func sleepChecking(t *testing.T, d time.Duration, redisURL string) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); {
		checkNoDeadLetters(t, redisURL)
		time.Sleep(250 * time.Millisecond)
	}
}

func checkNoDeadLetters(t *testing.T, redisURL string) {
	t.Helper()
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	for _, s := range []string{contract.PaymentRequestsStream, contract.PaymentResultsStream} {
		n, err := rdb.XLen(context.Background(), s+".dlq").Result()
		if err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Fatalf("%d entries dead-lettered on %s.dlq", n, s)
		}
	}
}

// pgDatabase is a PostgreSQL database of the test's own, which it may block.
type pgDatabase struct {
	name, url string
	admin     *bun.DB
}

// ownDatabase creates a database on the server of TEST_DATABASE_URL,
// dropped when t ends; connections to it are allowed again first, whatever
// happened.
func ownDatabase(t *testing.T, purpose string) *pgDatabase {
	t.Helper()
	base := os.Getenv("TEST_DATABASE_URL")
	if base == "" {
		dbtest.Unavailable(t, "TEST_DATABASE_URL is not set")
	}
	ctx := context.Background()
	admin, err := database.Open(ctx, base, database.Options{MaxOpenConns: 2})
	if err != nil {
		dbtest.Unavailable(t, fmt.Sprintf("PostgreSQL at TEST_DATABASE_URL: %v", err))
	}
	b := make([]byte, 6)
	rand.Read(b)
	name := "shop_outage_" + purpose + "_" + hex.EncodeToString(b)
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		admin.Close()
		t.Fatalf("create database: %v", err)
	}
	d := &pgDatabase{name: name, admin: admin}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "ALTER DATABASE "+name+" ALLOW_CONNECTIONS true"); err != nil {
			t.Errorf("allow connections to %s again: %v", name, err)
		}
		if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
		admin.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	d.url = u.String()
	return d
}

// block refuses new connections to the database and ends the open ones, as
// an outage would.
func (d *pgDatabase) block(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	if _, err := d.admin.ExecContext(ctx, "ALTER DATABASE "+d.name+" ALLOW_CONNECTIONS false"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.admin.ExecContext(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = ?", d.name); err != nil {
		t.Fatal(err)
	}
}

func (d *pgDatabase) unblock(t *testing.T) {
	t.Helper()
	if _, err := d.admin.ExecContext(context.Background(), "ALTER DATABASE "+d.name+" ALLOW_CONNECTIONS true"); err != nil {
		t.Fatal(err)
	}
}

// outageClient calls a service directly. Requests go through do, the one
// place to add credentials (a bearer token, the service credential) should
// the services require them.
type outageClient struct {
	http   *http.Client
	header http.Header
}

func newOutageClient() *outageClient {
	return &outageClient{http: &http.Client{Timeout: 10 * time.Second}, header: http.Header{}}
}

type answer struct {
	status int
	header http.Header
	body   string
}

func (c *outageClient) do(method, url, body string) (answer, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return answer{}, err
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: string(b)}, err
}

// must POSTs body to url and fails t unless the answer has status.
func (c *outageClient) must(t *testing.T, url, body string, status int) {
	t.Helper()
	a, err := c.do(http.MethodPost, url, body)
	if err != nil || a.status != status {
		t.Fatalf("POST %s %s: %d %s %v, want %d", url, body, a.status, a.body, err, status)
	}
}

// expectUnavailable POSTs body to url and checks the answer is a 503
// problem with Retry-After that says nothing of the cause.
func (c *outageClient) expectUnavailable(t *testing.T, url, body string) {
	t.Helper()
	a, err := c.do(http.MethodPost, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") == "" ||
		!strings.HasPrefix(a.header.Get("Content-Type"), "application/problem+json") {
		t.Fatalf("POST %s with the database down: %d, Retry-After %q, %s; want 503 problem+json with Retry-After",
			url, a.status, a.header.Get("Retry-After"), a.body)
	}
	for _, leak := range []string{"ALLOW_CONNECTIONS", "accepting connections", "shop_outage", "SQLSTATE", "connect"} {
		if strings.Contains(a.body, leak) {
			t.Fatalf("503 body leaks %q: %s", leak, a.body)
		}
	}
}

// waitStatus polls GET url until it answers status.
func (c *outageClient) waitStatus(t *testing.T, url string, status int) {
	t.Helper()
	polltest.Until(t, 30*time.Second, func() error {
		a, err := c.do(http.MethodGet, url, "")
		if err != nil {
			return err
		}
		if a.status != status {
			return fmt.Errorf("GET %s: %d %s, want %d", url, a.status, a.body, status)
		}
		return nil
	})
}
