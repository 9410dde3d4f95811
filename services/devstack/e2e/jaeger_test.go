package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"shop/services/contract/shopattr"
	"shop/services/platform/database/dbtest"
	"shop/services/platform/jaegertest"
	"shop/services/platform/polltest"
	"shop/services/platform/service/servicetest"
)

// TestJaegerHoldsOneTracePerOrder runs a real Jaeger (in-memory storage) and
// the three services as processes exporting OTLP to it, the gateway over
// gRPC and the services over HTTP, creates an order through the gateway and
// asks Jaeger's HTTP API for its trace until it holds the spans of gateway,
// orders and payments, down to the orders consumer applying the result.
func TestJaegerHoldsOneTracePerOrder(t *testing.T) {
	jaeger := jaegertest.Start(t)
	redisURL := servicetest.RedisURL(t)
	ordersDB, paymentsDB := dbtest.PostgresURL(t), dbtest.PostgresURL(t)
	otlp := func(protocol, endpoint string) []string {
		return []string{
			"OTEL_EXPORTER_OTLP_PROTOCOL=" + protocol,
			"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + endpoint,
			"OTEL_BSP_SCHEDULE_DELAY=100", // export within 0.1s, not 5s
			"OTEL_METRIC_EXPORT_INTERVAL=1000",
		}
	}
	common := []string{"REDIS_URL=" + redisURL, "LOG_LEVEL=warn"}
	payments := servicetest.Start(t, "payments", servicetest.Build(t, "payments"),
		slices.Concat(common, otlp("http/protobuf", jaeger.OTLPHTTP), []string{"DATABASE_URL=" + paymentsDB})...)
	orders := servicetest.Start(t, "orders", servicetest.Build(t, "orders"),
		slices.Concat(common, otlp("http/protobuf", jaeger.OTLPHTTP), []string{"DATABASE_URL=" + ordersDB})...)
	gateway := servicetest.Start(t, "gateway", servicetest.Build(t, "gateway"),
		slices.Concat(otlp("grpc", jaeger.OTLPGRPC), gatewayAuth(redisURL), []string{"ORDERS_URL=" + orders.URL, "PAYMENTS_URL=" + payments.URL, "LOG_LEVEL=info"})...)

	c := newClient(TestSecret).as(1)
	c.mustCall(t, "POST", gateway.URL+"/accounts", map[string]any{"user_id": 1}, nil)
	c.mustCall(t, "POST", gateway.URL+"/accounts/top-up", map[string]any{"user_id": 1, "amount": "10.00"}, nil)
	// The client starts the trace, so the test knows its id.
	traceID := randomHex(16)
	req, _ := http.NewRequest("POST", gateway.URL+"/orders", strings.NewReader(`{"user_id": 1, "amount": "2.50"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-"+traceID+"-"+randomHex(8)+"-01")
	if err := c.authorize(req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var created order
	json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /orders: %d", resp.StatusCode)
	}
	if o := waitStatus(t, c, gateway.URL, created.ID, 10*time.Second); o.Status != "FINISHED" {
		t.Fatalf("order is %s, want FINISHED", o.Status)
	}

	want := map[string][]string{
		"gateway":  {"POST /orders"},
		"orders":   {"POST /orders", "outbox insert", "payments.requests publish", "payments.results process"},
		"payments": {"payments.requests process", "outbox insert", "payments.results publish"},
	}
	var got map[string][]string
	polltest.Until(t, 30*time.Second, func() error {
		if got = jaegerTraceOf(t, jaeger, traceID); !hasAll(got, want) {
			return fmt.Errorf("Jaeger's trace %s has %v, want at least %v\njaeger output:\n%s", traceID, got, want, jaeger.Log())
		}
		return nil
	})
	// What shopctl trace searches: the orders span tagged with the order id.
	if found := jaegerByOrderID(t, jaeger, "orders", created.ID); len(found) != 1 || found[0].TraceID != traceID {
		t.Errorf("searching Jaeger for %s=%s finds %d traces, want trace %s", shopattr.OrderID, created.ID, len(found), traceID)
	}
	// What the README tells a reader to click: service gateway, Find Traces.
	if !jaegerFinds(t, jaeger, "gateway", "POST /orders", traceID) {
		t.Errorf("searching Jaeger for service gateway, operation POST /orders does not find trace %s", traceID)
	}
	// The gateway's request log line carries the same trace id.
	if !strings.Contains(gateway.Output(), `"trace_id":"`+traceID+`"`) {
		t.Errorf("no gateway log line with trace_id %s:\n%s", traceID, gateway.Output())
	}

	// What the README's "Find an order's trace" tells a reader: with only
	// an order id, search by tag, and read who paid what and how it ended.
	var declined order
	c.mustCall(t, "POST", gateway.URL+"/orders", map[string]any{"user_id": 1, "amount": "100.00"}, &declined)
	if o := waitStatus(t, c, gateway.URL, declined.ID, 10*time.Second); o.Status != "CANCELLED" {
		t.Fatalf("order is %s, want CANCELLED", o.Status)
	}
	for _, tt := range []struct {
		order   order
		traceID string // "" when the test does not know it
		status  string
		reason  string
		balance [2]string
	}{
		{created, traceID, "FINISHED", "", [2]string{"10.00", "7.50"}},
		{declined, "", "CANCELLED", "insufficient funds", [2]string{"7.50", "7.50"}},
	} {
		t.Run(tt.status, func(t *testing.T) {
			var tr jaegerTrace
			polltest.Until(t, 30*time.Second, func() error {
				found := jaegerByOrderID(t, jaeger, "payments", tt.order.ID)
				if len(found) != 1 {
					return fmt.Errorf("searching service payments by tag %s=%s finds %d traces, want 1", shopattr.OrderID, tt.order.ID, len(found))
				}
				tr = found[0]
				if tr.span("orders", "payments.results process") == nil || tr.span("gateway", "POST /orders") == nil {
					return fmt.Errorf("trace %s is not complete yet: %v", tr.TraceID, tr.operations())
				}
				return nil
			})
			if tt.traceID != "" && tr.TraceID != tt.traceID {
				t.Errorf("the search by order id finds trace %s, want %s", tr.TraceID, tt.traceID)
			}
			for _, svc := range []string{"gateway", "orders"} {
				if found := jaegerByOrderID(t, jaeger, svc, tt.order.ID); len(found) != 1 || found[0].TraceID != tr.TraceID {
					t.Errorf("searching service %s by order id finds %d traces, want trace %s", svc, len(found), tr.TraceID)
				}
			}
			want := map[string]string{
				string(shopattr.OrderID): tt.order.ID, string(shopattr.UserID): "1", string(shopattr.Amount): tt.order.Amount,
				string(shopattr.PaymentStatus): tt.status,
			}
			if tt.reason != "" {
				want[string(shopattr.PaymentReason)] = tt.reason
			}
			pay := tr.span("payments", "payments.requests process")
			checkTags(t, "payments.requests process", pay.tags(), want)
			if pay.tags()["error"] != "" {
				t.Errorf("payments.requests process is marked an error: %v", pay.tags())
			}
			event := map[string]string{
				string(shopattr.PaymentStatus): tt.status,
				string(shopattr.BalanceBefore): tt.balance[0], string(shopattr.BalanceAfter): tt.balance[1],
			}
			if tt.reason != "" {
				event[string(shopattr.PaymentReason)] = tt.reason
			}
			checkTags(t, "event "+shopattr.PaymentDecided, pay.event(shopattr.PaymentDecided), event)
			settle := tr.span("orders", "payments.results process")
			checkTags(t, "payments.results process", settle.tags(), map[string]string{
				string(shopattr.OrderID): tt.order.ID, string(shopattr.OrderStatus): tt.status,
			})
			checkTags(t, "event "+shopattr.OrderSettled, settle.event(shopattr.OrderSettled), map[string]string{string(shopattr.OrderStatus): tt.status})
			checkTags(t, "orders POST /orders", tr.span("orders", "POST /orders").tags(), map[string]string{
				string(shopattr.OrderID): tt.order.ID, string(shopattr.UserID): "1", string(shopattr.Amount): tt.order.Amount,
			})
		})
	}
}

func checkTags(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s = %q, want %q (all: %v)", what, k, got[k], v, got)
		}
	}
}

func hasAll(got, want map[string][]string) bool {
	for svc, ops := range want {
		for _, op := range ops {
			if !slices.Contains(got[svc], op) {
				return false
			}
		}
	}
	return true
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// trace returns the operations of trace id by service name, or nil while
// Jaeger does not know the trace.
func jaegerTraceOf(t *testing.T, j *jaegertest.Jaeger, id string) map[string][]string {
	t.Helper()
	var out struct {
		Data []jaegerTrace `json:"data"`
	}
	if !jaegerGet(t, j, "/api/traces/"+id, &out) || len(out.Data) == 0 {
		return nil
	}
	return out.Data[0].operations()
}

// found reports whether searching service's operation finds trace id.
func jaegerFinds(t *testing.T, j *jaegertest.Jaeger, service, operation, id string) bool {
	t.Helper()
	var out struct {
		Data []jaegerTrace `json:"data"`
	}
	path := "/api/traces?limit=20&lookback=1h&service=" + service + "&operation=" + strings.ReplaceAll(operation, " ", "%20")
	if !jaegerGet(t, j, path, &out) {
		return false
	}
	return slices.ContainsFunc(out.Data, func(tr jaegerTrace) bool { return tr.TraceID == id })
}

// byOrderID searches service's traces by the tag shop.order.id=id, as the
// README tells a reader to.
func jaegerByOrderID(t *testing.T, j *jaegertest.Jaeger, service, id string) []jaegerTrace {
	t.Helper()
	var out struct {
		Data []jaegerTrace `json:"data"`
	}
	tags, _ := json.Marshal(map[string]string{string(shopattr.OrderID): id})
	q := url.Values{"service": {service}, "lookback": {"1h"}, "limit": {"20"}, "tags": {string(tags)}}
	if !jaegerGet(t, j, "/api/traces?"+q.Encode(), &out) {
		return nil
	}
	return out.Data
}

func jaegerGet(t *testing.T, j *jaegertest.Jaeger, path string, out any) bool {
	t.Helper()
	resp, err := http.Get(j.QueryURL() + path)
	if err != nil {
		t.Fatalf("Jaeger query: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return false
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("Jaeger query %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("Jaeger query %s: %v", path, err)
	}
	return true
}

// jaegerTrace is the part of a trace in Jaeger's HTTP API the test reads.
type jaegerTrace struct {
	TraceID   string       `json:"traceID"`
	Spans     []jaegerSpan `json:"spans"`
	Processes map[string]struct {
		ServiceName string `json:"serviceName"`
	} `json:"processes"`
}

type jaegerSpan struct {
	OperationName string      `json:"operationName"`
	ProcessID     string      `json:"processID"`
	Tags          []jaegerTag `json:"tags"`
	Logs          []struct {
		Fields []jaegerTag `json:"fields"`
	} `json:"logs"`
}

type jaegerTag struct {
	Key   string `json:"key"`
	Value any    `json:"value"`
}

func tagMap(tags []jaegerTag) map[string]string {
	m := map[string]string{}
	for _, tag := range tags {
		m[tag.Key] = fmt.Sprint(tag.Value)
	}
	return m
}

// span returns the first span of service named operation, or nil.
func (tr jaegerTrace) span(service, operation string) *jaegerSpan {
	for i, s := range tr.Spans {
		if s.OperationName == operation && tr.Processes[s.ProcessID].ServiceName == service {
			return &tr.Spans[i]
		}
	}
	return nil
}

func (s *jaegerSpan) tags() map[string]string {
	if s == nil {
		return nil
	}
	return tagMap(s.Tags)
}

// event returns the fields of the span event (a log, in Jaeger) named
// name, or nil.
func (s *jaegerSpan) event(name string) map[string]string {
	if s == nil {
		return nil
	}
	for _, l := range s.Logs {
		if f := tagMap(l.Fields); f["event"] == name {
			return f
		}
	}
	return nil
}

func (tr jaegerTrace) operations() map[string][]string {
	ops := map[string][]string{}
	for _, s := range tr.Spans {
		svc := tr.Processes[s.ProcessID].ServiceName
		ops[svc] = append(ops[svc], s.OperationName)
	}
	return ops
}

// TestCollectorConfigIsValid checks the root otel-collector.yaml with the
// binary the collector Deployment runs (Jaeger v2, the version kustomize/base
// pins): every component type known and configured correctly.
func TestCollectorConfigIsValid(t *testing.T) {
	bin := jaegertest.Binary(t)
	out, err := exec.Command("go", "env", "GOWORK").Output()
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(filepath.Dir(strings.TrimSpace(string(out))), "otel-collector.yaml")
	if out, err := exec.Command(bin, "validate", "--config", "file:"+config).CombinedOutput(); err != nil {
		t.Fatalf("jaeger validate %s: %v\n%s", config, err, out)
	}
}
