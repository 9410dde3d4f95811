package app

import (
	"shop/services/payments/internal/payment"
	"shop/services/platform/service"
)

// Messaging is the payments service's part in the flow: it consumes payment
// requests as group "payments" and publishes results from its outbox.
func Messaging(a *App) service.Messaging {
	return service.Messaging{
		Outbox:    a.Outbox,
		Stream:    payment.RequestsStream,
		Group:     "payments",
		Handler:   a.Processor.Handle,
		Permanent: payment.ErrPermanent,
	}
}
