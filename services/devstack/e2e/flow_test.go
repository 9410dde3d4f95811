package e2e

import "testing"

// TestOrderIsPaidThroughTheGateway is the scenario of the README on the real
// binaries, PostgreSQL and Redis.
func TestOrderIsPaidThroughTheGateway(t *testing.T) {
	s := startShop(t, 1)
	RunPaymentScenario(t, s.gateway.URL, TestSecret)
	checkInvariants(t, s.ordersDB, s.paymentsDB)
}
