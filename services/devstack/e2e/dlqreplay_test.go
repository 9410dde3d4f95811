package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"shop/services/contract"
	"shop/services/platform/database/dbtest"
	"shop/services/platform/polltest"
	"shop/services/platform/service/servicetest"
)

// TestDLQReplaySettlesTheOrder makes a real dead letter the way an
// operator's mistake would: an orders replica started on the wrong (empty)
// database joins the orders group and takes a payment result whose order
// it does not know, a permanent failure, so the result is dead-lettered
// while the user is debited and the order stays NEW (reconciliation is an
// hour away here). Once the stray replica is gone, `shopctl dlq replay`
// puts the result back with its message id and the right replica settles
// the order; replaying again finds nothing and changes nothing.
func TestDLQReplaySettlesTheOrder(t *testing.T) {
	redisURL := servicetest.RedisURL(t)
	s := startShop(t, 1, "REDIS_URL="+redisURL, "RECONCILE_AFTER=1h")
	ordersURL, paymentsURL := s.orders[0].URL, s.payments[0].URL
	ctx := context.Background()

	mustPost(t, paymentsURL+"/accounts", `{"user_id":1}`)
	mustPost(t, paymentsURL+"/accounts/top-up", `{"user_id":1,"amount":"50.00"}`)

	// The request waits on its stream while payments is down; then the
	// right orders replica goes, and a stray one on an empty database comes.
	s.payments[0].Stop()
	id := createOrder(t, ordersURL, `{"user_id":1,"amount":"12.30"}`)
	rdb := redisClient(t, redisURL)
	waitStreamLen(t, rdb, contract.PaymentRequestsStream, 1)
	s.orders[0].Stop()
	stray := servicetest.Start(t, "orders-stray", servicetest.Build(t, "orders"),
		"REDIS_URL="+redisURL, "DATABASE_URL="+dbtest.PostgresURL(t), "CONSUMER_NAME=orders-stray", "LOG_LEVEL=warn")
	s.payments[0].Restart()
	dlq := contract.PaymentResultsStream + ".dlq"
	polltest.Until(t, 30*time.Second, func() error {
		if n := rdb.XLen(ctx, dlq).Val(); n != 1 {
			return fmt.Errorf("%s holds %d entries, want 1", dlq, n)
		}
		return nil
	})
	stray.Stop()
	s.orders[0].Restart()
	if n := decidedButNew(t, s.ordersDB, s.paymentsDB); n != 1 {
		t.Fatalf("%d orders decided by payments and NEW, want 1", n)
	}

	shopctl := func(args ...string) (int, string) {
		cmd := exec.Command(servicetest.Build(t, "shopctl"), args...)
		cmd.Env = append(os.Environ(), "REDIS_URL="+redisURL)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, string(out)
	}
	code, out := shopctl("dlq", "list", contract.PaymentResultsStream)
	t.Logf("shopctl dlq list:\n%s", out)
	entry := regexp.MustCompile(`(?m)^(\d+-\d+) .*permanent: .*order not found`).FindStringSubmatch(out)
	if code != 0 || entry == nil {
		t.Fatalf("dlq list: exit %d, no dead letter for an unknown order", code)
	}

	code, out = shopctl("dlq", "replay", contract.PaymentResultsStream, "-id", entry[1])
	if code != 0 || !strings.Contains(out, "1 replayed, 0 not") {
		t.Fatalf("dlq replay: exit %d\n%s", code, out)
	}
	polltest.Until(t, 30*time.Second, func() error {
		if st := orderStatus(t, ordersURL, id); st != "FINISHED" {
			return fmt.Errorf("order %s is %s", id, st)
		}
		return nil
	})

	// Twice: nothing left to replay, nothing changes.
	if code, out := shopctl("dlq", "replay", contract.PaymentResultsStream, "-id", entry[1]); code != 1 || !strings.Contains(out, "no such dead letter") {
		t.Errorf("second replay by id: exit %d\n%s", code, out)
	}
	if code, out := shopctl("dlq", "replay", contract.PaymentResultsStream, "-all"); code != 0 || !strings.Contains(out, "0 replayed, 0 not") {
		t.Errorf("second replay -all: exit %d\n%s", code, out)
	}
	if n := rdb.XLen(ctx, dlq).Val(); n != 0 {
		t.Errorf("%d dead letters left", n)
	}
	if st := orderStatus(t, ordersURL, id); st != "FINISHED" {
		t.Errorf("order %s is %s after the second replay", id, st)
	}
	finished, _ := checkInvariants(t, s.ordersDB, s.paymentsDB)
	if finished != 1 {
		t.Errorf("%d FINISHED orders, want 1", finished)
	}
}

// mustPost posts body (JSON) to url and fails t unless the answer is 2xx.
func mustPost(t *testing.T, url, body string) {
	t.Helper()
	if err := postJSON(http.DefaultClient, url, body); err != nil {
		t.Fatal(err)
	}
}

// createOrder places an order and returns its id.
func createOrder(t *testing.T, ordersURL, body string) string {
	t.Helper()
	resp, err := http.Post(ordersURL+"/orders", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var o struct {
		ID string `json:"id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&o); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /orders: %d, %v", resp.StatusCode, err)
	}
	return o.ID
}

// orderStatus reads an order's status from the orders service.
func orderStatus(t *testing.T, ordersURL, id string) string {
	t.Helper()
	resp, err := http.Get(ordersURL + "/orders/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var o struct {
		Status string `json:"status"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&o); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /orders/%s: %d, %v", id, resp.StatusCode, err)
	}
	return o.Status
}

func redisClient(t *testing.T, url string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}
