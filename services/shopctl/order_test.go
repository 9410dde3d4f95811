package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"shop/services/contract"
	"shop/services/platform/database/dbtest"
	"shop/services/platform/messaging"
	"shop/services/platform/polltest"
	"shop/services/platform/service/servicetest"
	"shop/services/platform/stream"
)

// post sends body as JSON to url and decodes the answer into out, failing
// t unless it is 2xx.
func post(t *testing.T, method, url string, body, out any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOrderPrintsWhatTheShopKnows runs orders and payments as processes on
// PostgreSQL and Redis: an order is paid; then a result naming another
// amount is put on payments.results, and orders dead-letters it. `shopctl
// order` shows the order FINISHED, its recorded payment and debit, the
// request and the result (published, applied by the other service, in one
// trace), and the dead letter.
func TestOrderPrintsWhatTheShopKnows(t *testing.T) {
	redisURL := servicetest.RedisURL(t)
	ordersDB, paymentsDB := dbtest.PostgresURL(t), dbtest.PostgresURL(t)
	// Spans to stdout: the messages then carry a trace.
	common := []string{"REDIS_URL=" + redisURL, "LOG_LEVEL=warn", "OTEL_TRACES_EXPORTER=console", "OTEL_METRICS_EXPORTER=none"}
	payments := servicetest.Start(t, "payments", servicetest.Build(t, "payments"), append(common, "DATABASE_URL="+paymentsDB)...)
	orders := servicetest.Start(t, "orders", servicetest.Build(t, "orders"), append(common, "DATABASE_URL="+ordersDB)...)

	post(t, "POST", payments.URL+"/accounts", map[string]any{"user_id": 5}, nil)
	post(t, "POST", payments.URL+"/accounts/top-up", map[string]any{"user_id": 5, "amount": "10.00"}, nil)
	var o struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	post(t, "POST", orders.URL+"/orders", map[string]any{"user_id": 5, "amount": "3.00", "description": "tea"}, &o)
	polltest.Until(t, 10*time.Second, func() error {
		post(t, "GET", orders.URL+"/orders/"+o.ID, nil, &o)
		if o.Status != "FINISHED" {
			return fmt.Errorf("order is %s", o.Status)
		}
		return nil
	})

	ctx := context.Background()
	opts, _ := redis.ParseURL(redisURL)
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	forged, _ := json.Marshal(contract.PaymentCompleted{OrderID: uuid.MustParse(o.ID), Status: contract.PaymentFinished, UserID: 5, Amount: 999})
	msg := messaging.Message{ID: uuid.Must(uuid.NewV7()), Stream: contract.PaymentResultsStream, Type: contract.PaymentCompletedType,
		Payload: forged, OccurredAt: time.Now().UTC()}
	if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: msg.Stream, Values: msg.Values()}).Err(); err != nil {
		t.Fatal(err)
	}
	polltest.Until(t, 10*time.Second, func() error {
		if n := rdb.XLen(ctx, stream.DLQ(contract.PaymentResultsStream)).Val(); n != 1 {
			return fmt.Errorf("%d dead letters", n)
		}
		return nil
	})

	var out, errOut bytes.Buffer
	code := run(ctx, []string{"order", o.ID, "-orders-db", ordersDB, "-payments-db", paymentsDB, "-redis", redisURL}, &out, &errOut)
	t.Logf("shopctl order:\n%s%s", &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	text := out.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^order +` + o.ID + `$`),
		regexp.MustCompile(`(?m)^  status +FINISHED$`),
		regexp.MustCompile(`(?m)^  amount +3\.00$`),
		regexp.MustCompile(`(?m)^  payment requests +1, the last at \S+$`), // settled: no next one
		regexp.MustCompile(`(?m)^  outcome +FINISHED$`),
		regexp.MustCompile(`(?m)^  decided +\S+, for user 5, amount 3\.00$`),
		regexp.MustCompile(`(?m)^  debit +3\.00 at `),
		regexp.MustCompile(`(?m)^traces +[0-9a-f]{32}$`), // request and result in one trace
		regexp.MustCompile(`(?m)^messages: 2$`),
		regexp.MustCompile(`(?m)^  orders +[0-9a-f-]{36} +payments\.requests +\S+ +\S+Z +\S+Z +[0-9a-f]{32} +\{`),
		regexp.MustCompile(`(?m)^  payments +[0-9a-f-]{36} +payments\.results +\S+ +\S+Z +\S+Z +[0-9a-f]{32} +\{.*"amount":"3\.00"`),
		regexp.MustCompile(`(?m)^dead letters: 1$`),
		regexp.MustCompile(`(?m)^  payments\.results +\d+-\d+ +` + msg.ID.String() + ` +orders +1 +\d+s +permanent: .*does not match`),
	} {
		if !want.MatchString(text) {
			t.Errorf("output lacks %s", want)
		}
	}

	// An order that does not exist: exit 1, said plainly.
	out.Reset()
	errOut.Reset()
	missing := uuid.NewString()
	if code := run(ctx, []string{"order", missing, "-orders-db", ordersDB, "-payments-db", paymentsDB, "-redis", redisURL}, &out, &errOut); code != 1 ||
		!strings.Contains(errOut.String(), "holds no order "+missing) {
		t.Errorf("missing order: exit %d\n%s%s", code, &out, &errOut)
	}
}
