package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"shop/services/contract/shopattr"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"shop/services/platform/jaegertest"
)

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// span is one span to send to Jaeger over OTLP/HTTP (JSON).
type span struct {
	service, name, id, parent string
	start, end                time.Time
	attrs                     map[string]string
}

// sendOTLP posts spans of trace traceID to Jaeger's OTLP/HTTP receiver,
// one resource per service, as the shop's exporters do.
func sendOTLP(t *testing.T, j *jaegertest.Jaeger, traceID string, spans []span) {
	t.Helper()
	byService := map[string][]any{}
	var order []string
	for _, s := range spans {
		var attrs []any
		for k, v := range s.attrs {
			attrs = append(attrs, map[string]any{"key": k, "value": map[string]any{"stringValue": v}})
		}
		if _, ok := byService[s.service]; !ok {
			order = append(order, s.service)
		}
		byService[s.service] = append(byService[s.service], map[string]any{
			"traceId": traceID, "spanId": s.id, "parentSpanId": s.parent, "name": s.name, "kind": 2,
			"startTimeUnixNano": fmt.Sprint(s.start.UnixNano()), "endTimeUnixNano": fmt.Sprint(s.end.UnixNano()),
			"attributes": attrs,
		})
	}
	var resourceSpans []any
	for _, svc := range order {
		resourceSpans = append(resourceSpans, map[string]any{
			"resource":   map[string]any{"attributes": []any{map[string]any{"key": "service.name", "value": map[string]any{"stringValue": svc}}}},
			"scopeSpans": []any{map[string]any{"scope": map[string]any{"name": "test"}, "spans": byService[svc]}},
		})
	}
	body, _ := json.Marshal(map[string]any{"resourceSpans": resourceSpans})
	resp, err := http.Post("http://"+j.OTLPHTTP+"/v1/traces", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("OTLP export: %s", resp.Status)
	}
}

// TestTracePrintsTheOrdersTree runs a real Jaeger, sends it the trace of an
// order (and of another order, to be ignored), and checks that `shopctl
// trace ORDER_ID` prints that trace as an indented tree.
func TestTracePrintsTheOrdersTree(t *testing.T) {
	j := jaegertest.Start(t)
	orderID := uuid.Must(uuid.NewV7())
	t0 := time.Now().Add(-2 * time.Second).Truncate(time.Millisecond)
	ms := func(n float64) time.Time { return t0.Add(time.Duration(n * float64(time.Millisecond))) }
	traceID := randomHex(16)
	ids := map[string]string{}
	for _, k := range []string{"gw", "call", "orders", "insert", "publish", "process", "result"} {
		ids[k] = randomHex(8)
	}
	sendOTLP(t, j, traceID, []span{
		{"gateway", "POST /orders", ids["gw"], "", ms(0), ms(12), nil},
		{"gateway", "HTTP POST", ids["call"], ids["gw"], ms(1), ms(11), nil},
		{"orders", "POST /orders", ids["orders"], ids["call"], ms(2), ms(10), map[string]string{string(shopattr.OrderID): orderID.String()}},
		{"orders", "outbox insert", ids["insert"], ids["orders"], ms(3), ms(4), nil},
		{"orders", "payments.requests publish", ids["publish"], ids["insert"], ms(20), ms(21.5), nil},
		{"payments", "payments.requests process", ids["process"], ids["publish"], ms(25), ms(1325), nil},
		{"orders", "payments.results process", ids["result"], ids["process"], ms(1400), ms(1405), nil},
	})
	other := randomHex(16)
	sendOTLP(t, j, other, []span{
		{"orders", "POST /orders", randomHex(8), "", ms(0), ms(5), map[string]string{string(shopattr.OrderID): uuid.Must(uuid.NewV7()).String()}},
	})

	var out, errOut bytes.Buffer
	deadline := time.Now().Add(30 * time.Second)
	for {
		out.Reset()
		errOut.Reset()
		code := run(context.Background(), []string{"trace", "-jaeger", j.QueryURL(), orderID.String()}, &out, &errOut)
		if code == 0 && strings.Count(out.String(), "\n") == 9 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("shopctl trace: exit %d\nstdout:\n%s\nstderr:\n%s\njaeger:\n%s", code, &out, &errOut, j.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("shopctl trace %s:\n%s", orderID, &out)

	// Each line: service, indented operation, duration, start offset.
	want := []struct {
		service, indent, op, duration, start string
	}{
		{"gateway", "", "POST /orders", "12ms", "+0s"},
		{"gateway", "  ", "HTTP POST", "10ms", "+1ms"},
		{"orders", "    ", "POST /orders", "8ms", "+2ms"},
		{"orders", "      ", "outbox insert", "1ms", "+3ms"},
		{"orders", "        ", "payments.requests publish", "1.5ms", "+20ms"},
		{"payments", "          ", "payments.requests process", "1.3s", "+25ms"},
		{"orders", "            ", "payments.results process", "5ms", "+1.4s"},
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if lines[0] != "trace "+traceID+": 7 spans" {
		t.Errorf("first line %q", lines[0])
	}
	if !regexp.MustCompile(`^SERVICE +OPERATION +DURATION +START$`).MatchString(lines[1]) {
		t.Errorf("header %q", lines[1])
	}
	opColumn := strings.Index(lines[1], "OPERATION")
	for i, w := range want {
		line := lines[i+2]
		fields := strings.Fields(line)
		if len(line) < opColumn || strings.TrimSpace(line[:opColumn]) != w.service || !strings.HasPrefix(line[opColumn:], w.indent+w.op) ||
			line[opColumn+len(w.indent)] == ' ' || fields[len(fields)-2] != w.duration || fields[len(fields)-1] != w.start {
			t.Errorf("line %d = %q, want service %s, operation %q indented %d, duration %s, start %s",
				i, line, w.service, w.op, len(w.indent), w.duration, w.start)
		}
	}

	// An order Jaeger knows nothing of is an error, not an empty tree.
	out.Reset()
	errOut.Reset()
	if code := run(context.Background(), []string{"trace", "-jaeger", j.QueryURL(), uuid.Must(uuid.NewV7()).String()}, &out, &errOut); code != 1 ||
		!strings.Contains(errOut.String(), "holds no trace of order") {
		t.Errorf("unknown order: exit %d, stderr %q", code, &errOut)
	}
}

func TestUsage(t *testing.T) {
	tests := []struct {
		args     []string
		code     int
		stdout   []string
		stderr   []string
		noStdout bool
	}{
		{args: []string{"-h"}, code: 0, stdout: []string{"Commands:", "trace ORDER_ID", "JAEGER_URL"}},
		{args: nil, code: 2, stderr: []string{"Commands:", "no command given"}},
		{args: []string{"frobnicate"}, code: 2, stderr: []string{"Commands:", `unknown command "frobnicate"`}},
		{args: []string{"trace", "-h"}, code: 0, stderr: []string{"Usage: shopctl trace", "-jaeger", "JAEGER_URL"}},
		{args: []string{"trace"}, code: 2, stderr: []string{"Usage: shopctl trace", "want exactly one ORDER_ID"}},
		{args: []string{"trace", "not-a-uuid"}, code: 2, stderr: []string{`"not-a-uuid" is not a UUID`}},
		{args: []string{"trace", "-nope", "x"}, code: 2, stderr: []string{"flag provided but not defined: -nope"}},
		{args: []string{"-h"}, code: 0, stdout: []string{"dlq list [STREAM] | replay STREAM", "REDIS_URL"}},
		{args: []string{"dlq", "-h"}, code: 0, stderr: []string{"Usage: shopctl dlq", "-redis", "-all", "-id", "-limit", "REDIS_URL", "inbox"}},
		{args: []string{"dlq"}, code: 2, stderr: []string{"want list or replay"}},
		{args: []string{"dlq", "purge"}, code: 2, stderr: []string{`unknown dlq command "purge"`}},
		{args: []string{"dlq", "list", "a", "b"}, code: 2, stderr: []string{"at most one STREAM"}},
		{args: []string{"dlq", "list", "-all"}, code: 2, stderr: []string{"-all and -id belong to replay"}},
		{args: []string{"dlq", "replay", "s"}, code: 2, stderr: []string{"either -id ENTRY_ID… or -all"}},
		{args: []string{"dlq", "replay", "s", "-all", "-id", "1-0"}, code: 2, stderr: []string{"either -id ENTRY_ID… or -all"}},
		{args: []string{"dlq", "replay", "-all"}, code: 2, stderr: []string{"exactly one STREAM"}},
		{args: []string{"dlq", "replay", "s", "-id", "abc"}, code: 2, stderr: []string{`"abc" is not a stream entry id`}},
		{args: []string{"dlq", "list", "-redis", "nope://x"}, code: 2, stderr: []string{"Redis URL"}},
		{args: []string{"-h"}, code: 0, stdout: []string{"order ORDER_ID", "ORDERS_DATABASE_URL", "PAYMENTS_DATABASE_URL"}},
		{args: []string{"order", "-h"}, code: 0, stderr: []string{"Usage: shopctl order", "-orders-db", "-payments-db", "-redis", "dead letters", "inbox"}},
		{args: []string{"order"}, code: 2, stderr: []string{"want exactly one ORDER_ID"}},
		{args: []string{"order", "x", "y"}, code: 2, stderr: []string{"want exactly one ORDER_ID"}},
		{args: []string{"order", "not-a-uuid"}, code: 2, stderr: []string{`"not-a-uuid" is not a UUID`}},
		{args: []string{"order", uuid.NewString(), "-orders-db", "mysql://x"}, code: 2, stderr: []string{"orders database URL"}},
		{args: []string{"order", uuid.NewString(), "-redis", "nope://x"}, code: 2, stderr: []string{"Redis URL"}},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		code := run(context.Background(), tt.args, &out, &errOut)
		if code != tt.code {
			t.Errorf("shopctl %v: exit %d, want %d\n%s%s", tt.args, code, tt.code, &out, &errOut)
		}
		for _, s := range tt.stdout {
			if !strings.Contains(out.String(), s) {
				t.Errorf("shopctl %v: stdout lacks %q:\n%s", tt.args, s, &out)
			}
		}
		for _, s := range tt.stderr {
			if !strings.Contains(errOut.String(), s) {
				t.Errorf("shopctl %v: stderr lacks %q:\n%s", tt.args, s, &errOut)
			}
		}
	}
}
