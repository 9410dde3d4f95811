package app

import (
	"shop/services/orders/internal/order"
	"shop/services/platform/service"
)

// Messaging is the orders service's part in the flow: it publishes payment
// requests from its outbox and consumes results as group "orders".
func Messaging(a *App) service.Messaging {
	return service.Messaging{
		Outbox:    a.Outbox,
		Stream:    order.PaymentResultsStream,
		Group:     "orders",
		Handler:   a.Payments.HandleBatch,
		Permanent: order.ErrPermanent,
	}
}
