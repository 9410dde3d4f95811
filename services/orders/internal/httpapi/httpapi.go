// Package httpapi is the orders service's HTTP API: orders for clients
// (through the gateway) and the internal payment-status entry point. Its
// handlers only translate between HTTP and the use cases (package usecase).
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"shop/services/orders/internal/order"
	"shop/services/orders/internal/usecase"
	"shop/services/platform/idempotency"
	"shop/services/platform/money"
	"shop/services/platform/web"
)

// UseCases are what the handlers call (usecase.Orders); the handlers
// translate between HTTP and them, nothing more.
type UseCases interface {
	Create(ctx context.Context, o order.Order, key idempotency.Request, answer func(order.Order) (idempotency.Response, error)) (*idempotency.Response, error)
	Get(ctx context.Context, id uuid.UUID) (order.Order, error)
	List(ctx context.Context, userID int64, limit int) ([]order.Order, error)
	Settle(ctx context.Context, messageID uuid.UUID, res usecase.Result) (order.Order, error)
}

// OrderBody is an order as clients see it.
type OrderBody struct {
	ID           uuid.UUID    `json:"id" format:"uuid" doc:"Order id (UUIDv7)."`
	UserID       int64        `json:"user_id" example:"42"`
	Amount       money.Amount `json:"amount"`
	Description  string       `json:"description"`
	Status       string       `json:"status" enum:"NEW,FINISHED,CANCELLED" doc:"NEW until the payment settles, then FINISHED (paid) or CANCELLED."`
	CancelReason string       `json:"cancel_reason,omitempty" doc:"Why the order was cancelled."`
	CreatedAt    time.Time    `json:"created_at"`
	UpdatedAt    time.Time    `json:"updated_at"`
}

func orderBody(o order.Order) OrderBody {
	return OrderBody{
		ID: o.ID, UserID: o.UserID, Amount: o.Amount, Description: o.Description,
		Status: string(o.Status), CancelReason: o.CancelReason, CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt,
	}
}

type orderOutput struct {
	Body OrderBody
}

// CreateOrderBody is what a client sends to create an order.
type CreateOrderBody struct {
	UserID      int64          `json:"user_id,omitempty" required:"false" minimum:"1" maximum:"9007199254740991" example:"42" doc:"Whose order. Positive user id; defaults to the authenticated user, and must be that user when given."`
	Amount      money.Positive `json:"amount"`
	Description string         `json:"description" maxLength:"500" example:"Two coffees" doc:"Free text, at most 500 characters." required:"false"`
}

// createOutput is a new order and where it lives: the gateway puts the id
// from Location on its span.
type createOutput struct {
	Status   int
	Location string `header:"Location" doc:"The new order's path, /orders/{order_id}."`
	Replayed string `header:"Idempotent-Replayed" enum:"true" doc:"\"true\" when this answer repeats the first answer to the request's Idempotency-Key; absent otherwise."`
	Body     OrderBody
}

type createInput struct {
	idempotency.KeyInput
	Body CreateOrderBody
}

// createRequest is a create as its idempotency key's fingerprint sees it:
// the validated input, with the user it acts for and the amount written
// one way.
type createRequest struct {
	UserID      int64  `json:"user_id"`
	Amount      string `json:"amount"`
	Description string `json:"description"`
}

type listInput struct {
	UserID int64 `query:"user_id" minimum:"1" maximum:"9007199254740991" example:"42" doc:"Whose orders. Defaults to the authenticated user, and must be that user when given."`
	Limit  int   `query:"limit" minimum:"1" maximum:"1000" default:"100" doc:"At most this many orders, newest first."`
}

type listOutput struct {
	Body []OrderBody
}

type getInput struct {
	OrderID uuid.UUID `path:"order_id" format:"uuid" doc:"The order's id, as POST /orders answered it."`
}

// PaymentStatusBody is the internal payment result: the same message the
// payments.results stream carries, with its id for deduplication.
type PaymentStatusBody struct {
	MessageID uuid.UUID `json:"message_id" format:"uuid" doc:"Deduplication key: a message id is applied at most once."`
	OrderID   uuid.UUID `json:"order_id" format:"uuid"`
	Status    string    `json:"status" enum:"FINISHED,CANCELLED"`
	Reason    string    `json:"reason,omitempty" maxLength:"500" doc:"Why the payment was declined."`
}

type paymentStatusInput struct {
	Body PaymentStatusBody
}

// Register adds the operations to api.
func Register(api huma.API, uc UseCases) {
	h := &handlers{uc}
	web.Tag(api, "orders", "Orders and their status. Creating an order pays for it automatically: it is NEW until the payment settles it as FINISHED or CANCELLED.")
	huma.Register(api, huma.Operation{
		OperationID: "create-order",
		Method:      http.MethodPost,
		Path:        "/orders",
		Summary:     "Create an order",
		Description: "Creates a NEW order; its payment is requested automatically and settles it as FINISHED or CANCELLED shortly after. " +
			"With an Idempotency-Key, a retry of the request answers the first answer again and creates no second order.",
		Tags:          []string{"orders"},
		DefaultStatus: http.StatusCreated,
		Errors:        []int{http.StatusForbidden, http.StatusConflict, http.StatusUnprocessableEntity},
	}, h.create)
	huma.Register(api, huma.Operation{
		OperationID: "list-orders",
		Method:      http.MethodGet,
		Path:        "/orders",
		Summary:     "List a user's orders",
		Description: "The user's orders, newest first.",
		Tags:        []string{"orders"},
		Errors:      []int{http.StatusForbidden, http.StatusUnprocessableEntity},
	}, h.list)
	huma.Register(api, huma.Operation{
		OperationID: "get-order",
		Method:      http.MethodGet,
		Path:        "/orders/{order_id}",
		Summary:     "Get an order",
		Description: "One order with its current status; poll it to see a NEW order settle. Another user's order is 404, as if it did not exist.",
		Tags:        []string{"orders"},
		Errors:      []int{http.StatusNotFound, http.StatusUnprocessableEntity},
	}, h.get)
}

// RegisterInternal adds the internal operations, which only the other
// service calls, to api: the internal listener's API (service.HTTP.Internal).
func RegisterInternal(api huma.API, uc UseCases) {
	h := &handlers{uc}
	huma.Register(api, web.Internal(huma.Operation{
		OperationID: "payment-status",
		Method:      http.MethodPost,
		Path:        "/orders/payment-status",
		Summary:     "Apply a payment result (internal)",
		Description: "Internal entry into the use case the payments.results stream feeds, with the same " +
			"idempotency by message id. A result for a settled order changes nothing. On the internal listener only, behind the service credential.",
		Errors: []int{http.StatusUnauthorized, http.StatusNotFound, http.StatusUnprocessableEntity},
	}), h.paymentStatus)
}

type handlers struct{ uc UseCases }

func (h *handlers) create(ctx context.Context, in *createInput) (*createOutput, error) {
	user, err := web.ActingUser(ctx, in.Body.UserID, "body.user_id")
	if err != nil {
		return nil, err
	}
	o, err := order.NewOrder(user, money.Amount(in.Body.Amount), in.Body.Description, time.Now().UTC())
	if err != nil {
		return nil, err
	}
	key, err := idempotency.NewRequest(user, "create-order", in.IdempotencyKey,
		createRequest{UserID: user, Amount: o.Amount.String(), Description: o.Description})
	if err != nil {
		return nil, err
	}
	replay, err := h.uc.Create(ctx, o, key, answerCreated)
	if err != nil {
		return nil, idempotency.HTTPError(err)
	}
	if replay != nil {
		var b OrderBody
		if err := json.Unmarshal(replay.Body, &b); err != nil {
			return nil, fmt.Errorf("decode the recorded answer: %w", err)
		}
		return created(replay.Status, b, true), nil
	}
	return created(http.StatusCreated, orderBody(o), false), nil
}

// answerCreated is the answer to a create of o, as its idempotency key
// records it.
func answerCreated(o order.Order) (idempotency.Response, error) {
	b, err := json.Marshal(orderBody(o))
	return idempotency.Response{Status: http.StatusCreated, Body: b}, err
}

func created(status int, b OrderBody, replayed bool) *createOutput {
	return &createOutput{Status: status, Location: "/orders/" + b.ID.String(), Replayed: idempotency.Replayed(replayed), Body: b}
}

func (h *handlers) list(ctx context.Context, in *listInput) (*listOutput, error) {
	user, err := web.ActingUser(ctx, in.UserID, "query.user_id")
	if err != nil {
		return nil, err
	}
	orders, err := h.uc.List(ctx, user, in.Limit)
	if err != nil {
		return nil, err
	}
	out := &listOutput{Body: make([]OrderBody, len(orders))}
	for i, o := range orders {
		out.Body[i] = orderBody(o)
	}
	return out, nil
}

func (h *handlers) get(ctx context.Context, in *getInput) (*orderOutput, error) {
	o, err := h.uc.Get(ctx, in.OrderID)
	// Another user's order is answered as one that does not exist: its id
	// tells nothing.
	if errors.Is(err, order.ErrNotFound) || (err == nil && !web.Owns(ctx, o.UserID)) {
		return nil, huma.Error404NotFound("no such order")
	}
	if err != nil {
		return nil, err
	}
	return &orderOutput{Body: orderBody(o)}, nil
}

func (h *handlers) paymentStatus(ctx context.Context, in *paymentStatusInput) (*orderOutput, error) {
	b := in.Body
	if b.MessageID == uuid.Nil || b.OrderID == uuid.Nil {
		return nil, huma.Error422UnprocessableEntity("message_id and order_id must be non-nil UUIDs")
	}
	o, err := h.uc.Settle(ctx, b.MessageID, usecase.Result{OrderID: b.OrderID, Status: order.Status(b.Status), Reason: b.Reason})
	switch {
	case errors.Is(err, order.ErrNotFound):
		return nil, huma.Error404NotFound("no such order")
	case errors.Is(err, order.ErrInvalidResult):
		return nil, huma.Error422UnprocessableEntity(err.Error())
	case err != nil:
		return nil, err
	}
	return &orderOutput{Body: orderBody(o)}, nil
}
