// Package httpapi is the payments service's HTTP API: accounts for clients
// (through the gateway) and the internal payment entry point. Its handlers
// only translate between HTTP and the use cases (package usecase).
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"shop/services/payments/internal/account"
	"shop/services/payments/internal/payment"
	"shop/services/payments/internal/usecase"
	"shop/services/platform/idempotency"
	"shop/services/platform/money"
	"shop/services/platform/web"
)

// UseCases are what the handlers call (usecase.Payments); the handlers
// translate between HTTP and them, nothing more.
type UseCases interface {
	OpenAccount(ctx context.Context, userID int64, key idempotency.Request, answer usecase.Answer) (account.Account, *idempotency.Response, error)
	TopUp(ctx context.Context, userID int64, amount money.Positive, key idempotency.Request, answer usecase.Answer) (account.Account, *idempotency.Response, error)
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

// changedOutput is an account a keyed request may have changed before:
// then the answer repeats the first one.
type changedOutput struct {
	Status   int
	Replayed string `header:"Idempotent-Replayed" enum:"true" doc:"\"true\" when this answer repeats the first answer to the request's Idempotency-Key; absent otherwise."`
	Body     AccountBody
}

// answer returns the account a, as the request's status answers it, or
// the recorded answer replay when it is not nil.
func answer(status int, a account.Account, replay *idempotency.Response) (*changedOutput, error) {
	if replay == nil {
		return &changedOutput{Status: status, Body: AccountBody{UserID: a.UserID, Balance: a.Balance}}, nil
	}
	out := &changedOutput{Status: replay.Status, Replayed: idempotency.Replayed(true)}
	if err := json.Unmarshal(replay.Body, &out.Body); err != nil {
		return nil, fmt.Errorf("decode the recorded answer: %w", err)
	}
	return out, nil
}

// answerWith makes the answer with status that a key records.
func answerWith(status int) usecase.Answer {
	return func(a account.Account) (idempotency.Response, error) {
		b, err := json.Marshal(AccountBody{UserID: a.UserID, Balance: a.Balance})
		return idempotency.Response{Status: status, Body: b}, err
	}
}

// CreateAccountBody is what a client sends to open an account.
type CreateAccountBody struct {
	UserID int64 `json:"user_id,omitempty" required:"false" minimum:"1" maximum:"9007199254740991" example:"42" doc:"Positive user id; one account per user. Defaults to the authenticated user, and must be that user when given."`
}

type createAccountInput struct {
	idempotency.KeyInput
	Body CreateAccountBody
}

// TopUpBody is what a client sends to add money to an account.
type TopUpBody struct {
	UserID int64          `json:"user_id,omitempty" required:"false" minimum:"1" maximum:"9007199254740991" example:"42" doc:"Whose account. Defaults to the authenticated user, and must be that user when given."`
	Amount money.Positive `json:"amount"`
}

type topUpInput struct {
	idempotency.KeyInput
	Body TopUpBody
}

// The requests as their idempotency keys' fingerprints see them: the
// validated input, with the user it acts for and the amount written one
// way.
type (
	createAccountRequest struct {
		UserID int64 `json:"user_id"`
	}
	topUpRequest struct {
		UserID int64  `json:"user_id"`
		Amount string `json:"amount"`
	}
)

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
		OperationID: "create-account",
		Method:      http.MethodPost,
		Path:        "/accounts",
		Summary:     "Create an account",
		Description: "Opens an account with a zero balance for a user. One account per user. " +
			"With an Idempotency-Key, a retry of the request answers the first answer again.",
		Tags:          []string{"accounts"},
		DefaultStatus: http.StatusCreated,
		Errors:        []int{http.StatusForbidden, http.StatusConflict, http.StatusUnprocessableEntity},
	}, h.createAccount)
	huma.Register(api, huma.Operation{
		OperationID: "top-up-account",
		Method:      http.MethodPost,
		Path:        "/accounts/top-up",
		Summary:     "Top up an account",
		Description: "Adds money to a user's balance. With an Idempotency-Key, a retry of the request answers " +
			"the first answer again and adds nothing.",
		Tags:   []string{"accounts"},
		Errors: []int{http.StatusForbidden, http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity},
	}, h.topUp)
	huma.Register(api, huma.Operation{
		OperationID: "get-account-balance",
		Method:      http.MethodGet,
		Path:        "/accounts/{user_id}/balance",
		Summary:     "Get a balance",
		Description: "The current balance of a user's account; only the user's own.",
		Tags:        []string{"accounts"},
		Errors:      []int{http.StatusForbidden, http.StatusNotFound, http.StatusUnprocessableEntity},
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

func (h *handlers) createAccount(ctx context.Context, in *createAccountInput) (*changedOutput, error) {
	user, err := web.ActingUser(ctx, in.Body.UserID, "body.user_id")
	if err != nil {
		return nil, err
	}
	key, err := idempotency.NewRequest(user, "create-account", in.IdempotencyKey, createAccountRequest{UserID: user})
	if err != nil {
		return nil, err
	}
	a, replay, err := h.uc.OpenAccount(ctx, user, key, answerWith(http.StatusCreated))
	if errors.Is(err, account.ErrExists) {
		return nil, huma.Error409Conflict("an account for this user already exists")
	}
	if err != nil {
		return nil, idempotency.HTTPError(err)
	}
	return answer(http.StatusCreated, a, replay)
}

func (h *handlers) topUp(ctx context.Context, in *topUpInput) (*changedOutput, error) {
	user, err := web.ActingUser(ctx, in.Body.UserID, "body.user_id")
	if err != nil {
		return nil, err
	}
	key, err := idempotency.NewRequest(user, "top-up-account", in.IdempotencyKey,
		topUpRequest{UserID: user, Amount: money.Amount(in.Body.Amount).String()})
	if err != nil {
		return nil, err
	}
	a, replay, err := h.uc.TopUp(ctx, user, in.Body.Amount, key, answerWith(http.StatusOK))
	switch {
	case errors.Is(err, account.ErrNotFound):
		return nil, huma.Error404NotFound("no account for this user")
	case errors.Is(err, account.ErrBalanceLimit):
		return nil, huma.Error422UnprocessableEntity(err.Error())
	case err != nil:
		return nil, idempotency.HTTPError(err)
	}
	return answer(http.StatusOK, a, replay)
}

func (h *handlers) balance(ctx context.Context, in *balanceInput) (*accountOutput, error) {
	if !web.Owns(ctx, in.UserID) {
		return nil, huma.Error403Forbidden("this user_id belongs to another user")
	}
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
