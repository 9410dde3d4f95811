// Package httpapi is the payments service's HTTP API: accounts for clients
// (through the gateway) and the internal payment entry point. Its handlers
// only translate between HTTP and the use cases (package usecase).
package httpapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"shop/services/payments/internal/account"
	"shop/services/payments/internal/payment"
	"shop/services/platform/money"
	"shop/services/platform/web"
)

// UseCases are what the handlers call (usecase.Payments); the handlers
// translate between HTTP and them, nothing more.
type UseCases interface {
	OpenAccount(ctx context.Context, userID int64) (account.Account, error)
	TopUp(ctx context.Context, userID int64, amount money.Positive) (account.Account, error)
	Balance(ctx context.Context, userID int64) (account.Account, error)
	Pay(ctx context.Context, messageID uuid.UUID, req payment.Request) (payment.Result, bool, error)
}

// AccountBody is an account as clients see it.
type AccountBody struct {
	UserID  int64        `json:"user_id" example:"42" doc:"The account owner's user id."`
	Balance money.Amount `json:"balance" doc:"Current balance."`
}

type accountOutput struct {
	Body AccountBody
}

func accountBody(a account.Account) *accountOutput {
	return &accountOutput{Body: AccountBody{UserID: a.UserID, Balance: a.Balance}}
}

// CreateAccountBody is what a client sends to open an account.
type CreateAccountBody struct {
	UserID int64 `json:"user_id" minimum:"1" maximum:"9007199254740991" example:"42" doc:"Positive user id; one account per user."`
}

type createAccountInput struct {
	Body CreateAccountBody
}

// TopUpBody is what a client sends to add money to an account.
type TopUpBody struct {
	UserID int64          `json:"user_id" minimum:"1" maximum:"9007199254740991" example:"42"`
	Amount money.Positive `json:"amount"`
}

type topUpInput struct {
	Body TopUpBody
}

type balanceInput struct {
	UserID int64 `path:"user_id" minimum:"1" maximum:"9007199254740991" example:"42" doc:"Whose account."`
}

// ProcessBody is the internal payment request: the same message the
// payments.requests stream carries, with its id for deduplication.
type ProcessBody struct {
	MessageID uuid.UUID      `json:"message_id" format:"uuid" doc:"Deduplication key: a message id is processed at most once."`
	OrderID   uuid.UUID      `json:"order_id" format:"uuid"`
	UserID    int64          `json:"user_id" minimum:"1" maximum:"9007199254740991"`
	Amount    money.Positive `json:"amount"`
}

type processInput struct {
	Body ProcessBody
}

// ProcessResult is the outcome of an internal payment request.
type ProcessResult struct {
	OrderID   uuid.UUID `json:"order_id" format:"uuid"`
	Status    string    `json:"status" enum:"FINISHED,CANCELLED" doc:"The order status the payment leads to."`
	Reason    string    `json:"reason,omitempty" doc:"Why the payment was declined."`
	Duplicate bool      `json:"duplicate" doc:"True when this message id was processed before; nothing changed."`
}

type processOutput struct {
	Body ProcessResult
}

// Register adds the operations to api.
func Register(api huma.API, uc UseCases) {
	h := &handlers{uc}
	web.Tag(api, "accounts", "Accounts and their balances: one account per user, topped up by the user, debited by the orders it pays for.")
	huma.Register(api, huma.Operation{
		OperationID:   "create-account",
		Method:        http.MethodPost,
		Path:          "/accounts",
		Summary:       "Create an account",
		Description:   "Opens an account with a zero balance for a user. One account per user.",
		Tags:          []string{"accounts"},
		DefaultStatus: http.StatusCreated,
		Errors:        []int{http.StatusConflict, http.StatusUnprocessableEntity},
	}, h.createAccount)
	huma.Register(api, huma.Operation{
		OperationID: "top-up-account",
		Method:      http.MethodPost,
		Path:        "/accounts/top-up",
		Summary:     "Top up an account",
		Description: "Adds money to a user's balance.",
		Tags:        []string{"accounts"},
		Errors:      []int{http.StatusNotFound, http.StatusUnprocessableEntity},
	}, h.topUp)
	huma.Register(api, huma.Operation{
		OperationID: "get-account-balance",
		Method:      http.MethodGet,
		Path:        "/accounts/{user_id}/balance",
		Summary:     "Get a balance",
		Description: "The current balance of a user's account.",
		Tags:        []string{"accounts"},
		Errors:      []int{http.StatusNotFound, http.StatusUnprocessableEntity},
	}, h.balance)
}

// RegisterInternal adds the internal operations, which only the other
// service calls, to api: the internal listener's API (service.HTTP.Internal).
func RegisterInternal(api huma.API, uc UseCases) {
	h := &handlers{uc}
	huma.Register(api, web.Internal(huma.Operation{
		OperationID: "process-payment",
		Method:      http.MethodPost,
		Path:        "/payments/process",
		Summary:     "Process a payment (internal)",
		Description: "Internal entry into the payment use case the payments.requests stream feeds, " +
			"with the same idempotency by message id. On the internal listener only, behind the service credential.",
		Errors: []int{http.StatusUnauthorized, http.StatusUnprocessableEntity},
	}), h.process)
}

type handlers struct{ uc UseCases }

func (h *handlers) createAccount(ctx context.Context, in *createAccountInput) (*accountOutput, error) {
	a, err := h.uc.OpenAccount(ctx, in.Body.UserID)
	if errors.Is(err, account.ErrExists) {
		return nil, huma.Error409Conflict("an account for this user already exists")
	}
	if err != nil {
		return nil, err
	}
	return accountBody(a), nil
}

func (h *handlers) topUp(ctx context.Context, in *topUpInput) (*accountOutput, error) {
	a, err := h.uc.TopUp(ctx, in.Body.UserID, in.Body.Amount)
	switch {
	case errors.Is(err, account.ErrNotFound):
		return nil, huma.Error404NotFound("no account for this user")
	case errors.Is(err, account.ErrBalanceLimit):
		return nil, huma.Error422UnprocessableEntity(err.Error())
	case err != nil:
		return nil, err
	}
	return accountBody(a), nil
}

func (h *handlers) balance(ctx context.Context, in *balanceInput) (*accountOutput, error) {
	a, err := h.uc.Balance(ctx, in.UserID)
	if errors.Is(err, account.ErrNotFound) {
		return nil, huma.Error404NotFound("no account for this user")
	}
	if err != nil {
		return nil, err
	}
	return accountBody(a), nil
}

func (h *handlers) process(ctx context.Context, in *processInput) (*processOutput, error) {
	b := in.Body
	if b.MessageID == uuid.Nil || b.OrderID == uuid.Nil {
		return nil, huma.Error422UnprocessableEntity("message_id and order_id must be non-nil UUIDs")
	}
	req := payment.Request{OrderID: b.OrderID, UserID: b.UserID, Amount: money.Amount(b.Amount)}
	res, duplicate, err := h.uc.Pay(ctx, b.MessageID, req)
	if errors.Is(err, payment.ErrInvalid) {
		return nil, huma.Error422UnprocessableEntity(err.Error())
	}
	if err != nil {
		return nil, err
	}
	return &processOutput{Body: ProcessResult{OrderID: res.OrderID, Status: string(res.Status), Reason: res.Reason, Duplicate: duplicate}}, nil
}
