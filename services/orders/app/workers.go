package app

import (
	"shop/services/platform/service"
)

// Workers are the service's background loops. The messaging issue wires the
// relay and the payment-result consumer here.
func Workers(infra *service.Infra, a *App) []service.Worker {
	return nil
}
