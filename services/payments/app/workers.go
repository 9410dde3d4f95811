package app

import (
	"shop/services/contract"
	"shop/services/platform/service"
)

// Messaging is the payments service's part in the flow: it consumes payment
// requests as group "payments" and publishes results from its outbox.
func Messaging(a *App) service.Messaging {
	return service.Messaging{
		Outbox:  a.Outbox,
		Stream:  contract.PaymentRequestsStream,
		Group:   contract.PaymentsGroup,
		Handler: a.Payments.HandleRequests,
	}
}
