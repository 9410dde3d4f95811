package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"shop/services/shopctl/internal/forensics"
)

// A debited order that is still NEW is flagged, with when its payment is
// requested next; a message not yet published or applied says "no".
func TestPrintReportFlagsADebitedNewOrder(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	id := uuid.MustParse("01a23326-cce7-7f1e-b74c-232e908dd4a1")
	published := now.Add(-time.Minute)
	r := forensics.Report{
		Order: forensics.Order{ID: id, UserID: 5, Amount: 300, Status: "NEW", CreatedAt: now.Add(-3 * time.Minute),
			UpdatedAt: now.Add(-3 * time.Minute), PaymentRequests: 2, PaymentRequestedAt: now.Add(-time.Minute), PaymentRetryAt: now.Add(time.Minute)},
		Payment: &forensics.Payment{Status: "FINISHED", UserID: 5, Amount: 300, CreatedAt: now.Add(-2 * time.Minute)},
		Debit:   &forensics.Debit{ID: uuid.New(), Amount: 300, CreatedAt: now.Add(-2 * time.Minute)},
		Messages: []forensics.Message{
			{Service: "orders", ID: uuid.New(), Stream: "payments.requests", Payload: `{"order_id":"x"}`, OccurredAt: now.Add(-3 * time.Minute),
				PublishedAt: &published, Traceparent: "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01"},
			{Service: "payments", ID: uuid.New(), Stream: "payments.results", Payload: `{"order_id":"x"}`, OccurredAt: now.Add(-2 * time.Minute)},
		},
	}
	var out bytes.Buffer
	if err := printReport(&out, r, now); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", &out)
	for _, want := range []string{
		"  payment requests  2, the last at 2026-01-01T11:59:00Z; the next at 2026-01-01T12:01:00Z (in 1m0s)\n",
		"payment             as the payments service recorded it\n",
		"  outcome           FINISHED\n",
		"  ATTENTION         debited, yet the order is NEW",
		"traces              0123456789abcdef0123456789abcdef\n",
		"messages: 2\n",
		"dead letters: 0\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if !regexp.MustCompile(`(?m)^  payments +\S+ +payments\.results +\S+ +no +no +- `).MatchString(out.String()) {
		t.Error("the unpublished result does not say so")
	}
}
