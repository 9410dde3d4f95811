package app

import (
	"shop/services/contract"
	"shop/services/platform/service"
)

// Messaging is the orders service's part in the flow: it publishes payment
// requests from its outbox and consumes results as group "orders".
func Messaging(a *App) service.Messaging {
	return service.Messaging{
		Outbox:  a.Outbox,
		Stream:  contract.PaymentResultsStream,
		Group:   contract.OrdersGroup,
		Handler: a.Orders.HandleResults,
	}
}
