// Package upstreamtest runs fake orders and payments services for the
// gateway's tests: Huma APIs, built like the real ones on the platform's web
// package, with their public and internal operations and /openapi.json, that
// record every request they receive.
//
// A few paths behave badly on purpose: GET /orders/slow answers only when
// the client gives up, and GET /orders/crash answers 500 with a plain-text
// body full of internal detail.
package upstreamtest

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/danielgtaylor/huma/v2"

	"shop/services/platform/web"
)

// Request is what a fake service received.
type Request struct {
	Method   string
	Path     string // as sent, still escaped
	RawQuery string
	Body     string
	Header   http.Header
}

// Server is a running fake service.
type Server struct {
	*httptest.Server
	API huma.API

	mu   sync.Mutex
	reqs []Request
}

// Requests returns the requests received so far, oldest first, spec fetches
// included.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.reqs...)
}

// Last returns the last request received other than a spec fetch.
func (s *Server) Last() (Request, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.reqs) - 1; i >= 0; i-- {
		if s.reqs[i].Path != "/openapi.json" {
			return s.reqs[i], true
		}
	}
	return Request{}, false
}

// CrashDetail is the internal detail GET /orders/crash puts in its body.
const CrashDetail = "panic: pq: password authentication failed for user shop at 10.0.3.7:5432"

func start(t testing.TB, title string, register func(api huma.API)) *Server {
	return startAt(t, "", title, register)
}

// startAt starts the fake on addr ("" for any free loopback port).
func startAt(t testing.TB, addr, title string, register func(api huma.API)) *Server {
	t.Helper()
	s := &Server{}
	mux := http.NewServeMux()
	s.API = web.NewAPI(mux, title, "fake "+title+" for the gateway's tests")
	web.NewHealth().Register(s.API)
	register(s.API)
	problems := web.WithProblems(mux)
	record := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		s.mu.Lock()
		s.reqs = append(s.reqs, Request{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, string(body), r.Header.Clone()})
		s.mu.Unlock()
		switch r.URL.Path {
		case "/orders/slow":
			<-r.Context().Done()
		case "/orders/crash":
			http.Error(w, CrashDetail, http.StatusInternalServerError)
		default:
			problems.ServeHTTP(w, r)
		}
	})
	s.Server = httptest.NewUnstartedServer(web.WithRequestID(record))
	if addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		s.Server.Listener.Close()
		s.Server.Listener = ln
	}
	s.Server.Start()
	t.Cleanup(s.Close)
	return s
}

// Order is the orders service's order.
type Order struct {
	ID          string `json:"id" format:"uuid"`
	UserID      int64  `json:"user_id" minimum:"1"`
	Amount      string `json:"amount" pattern:"^[0-9]+\\.[0-9]{2}$"`
	Description string `json:"description"`
	Status      string `json:"status" enum:"NEW,FINISHED,CANCELLED"`
}

// NewOrder is the body of POST /orders.
type NewOrder struct {
	UserID      int64  `json:"user_id" minimum:"1"`
	Amount      string `json:"amount"`
	Description string `json:"description" maxLength:"500"`
}

type orderOutput struct{ Body Order }

// PaymentStatus is the body of the internal POST /orders/payment-status.
type PaymentStatus struct {
	MessageID string `json:"message_id"`
	OrderID   string `json:"order_id"`
	Status    string `json:"status"`
}

// NewOrders starts a fake orders service.
func NewOrders(t testing.TB) *Server {
	return start(t, "Orders API", func(api huma.API) {
		huma.Register(api, huma.Operation{OperationID: "create-order", Method: http.MethodPost, Path: "/orders",
			Tags: []string{"orders"}, DefaultStatus: http.StatusCreated},
			func(_ context.Context, in *struct{ Body NewOrder }) (*orderOutput, error) {
				return &orderOutput{Order{ID: "0193a0b4-0000-7000-8000-000000000001", UserID: in.Body.UserID,
					Amount: in.Body.Amount, Description: in.Body.Description, Status: "NEW"}}, nil
			})
		huma.Register(api, huma.Operation{OperationID: "list-orders", Method: http.MethodGet, Path: "/orders",
			Tags: []string{"orders"}},
			func(_ context.Context, in *struct {
				UserID int64 `query:"user_id" minimum:"1"`
			}) (*struct{ Body []Order }, error) {
				return &struct{ Body []Order }{[]Order{{ID: "1", UserID: in.UserID, Status: "NEW"}}}, nil
			})
		huma.Register(api, huma.Operation{OperationID: "get-order", Method: http.MethodGet, Path: "/orders/{order_id}",
			Tags: []string{"orders"}},
			func(_ context.Context, in *struct {
				OrderID string `path:"order_id"`
			}) (*orderOutput, error) {
				if in.OrderID == "missing" {
					return nil, huma.Error404NotFound("order not found")
				}
				return &orderOutput{Order{ID: in.OrderID, Status: "NEW"}}, nil
			})
		huma.Register(api, web.Internal(huma.Operation{OperationID: "payment-status", Method: http.MethodPost,
			Path: "/orders/payment-status", Tags: []string{"payments"}}),
			func(context.Context, *struct{ Body PaymentStatus }) (*struct{}, error) { return nil, nil })
	})
}

// Account is the payments service's account.
type Account struct {
	UserID  int64  `json:"user_id" minimum:"1"`
	Balance string `json:"balance"`
}

// TopUp is the body of POST /accounts/top-up.
type TopUp struct {
	UserID int64  `json:"user_id" minimum:"1"`
	Amount string `json:"amount"`
}

// PaymentRequest is the body of the internal POST /payments/process.
type PaymentRequest struct {
	MessageID string `json:"message_id"`
	OrderID   string `json:"order_id"`
	UserID    int64  `json:"user_id"`
	Amount    string `json:"amount"`
}

type accountOutput struct{ Body Account }

// NewPayments starts a fake payments service.
func NewPayments(t testing.TB) *Server { return NewPaymentsAt(t, "") }

// NewPaymentsAt starts a fake payments service listening on addr.
func NewPaymentsAt(t testing.TB, addr string) *Server {
	return startAt(t, addr, "Payments API", func(api huma.API) {
		huma.Register(api, huma.Operation{OperationID: "create-account", Method: http.MethodPost, Path: "/accounts",
			Tags: []string{"accounts"}, DefaultStatus: http.StatusCreated},
			func(_ context.Context, in *struct {
				Body struct {
					UserID int64 `json:"user_id" minimum:"1"`
				}
			}) (*accountOutput, error) {
				return &accountOutput{Account{UserID: in.Body.UserID, Balance: "0.00"}}, nil
			})
		huma.Register(api, huma.Operation{OperationID: "top-up", Method: http.MethodPost, Path: "/accounts/top-up",
			Tags: []string{"accounts"}},
			func(_ context.Context, in *struct{ Body TopUp }) (*accountOutput, error) {
				return &accountOutput{Account{UserID: in.Body.UserID, Balance: in.Body.Amount}}, nil
			})
		huma.Register(api, huma.Operation{OperationID: "get-balance", Method: http.MethodGet,
			Path: "/accounts/{user_id}/balance", Tags: []string{"accounts"}},
			func(_ context.Context, in *struct {
				UserID int64 `path:"user_id" minimum:"1"`
			}) (*accountOutput, error) {
				return &accountOutput{Account{UserID: in.UserID, Balance: "0.00"}}, nil
			})
		huma.Register(api, web.Internal(huma.Operation{OperationID: "process-payment", Method: http.MethodPost,
			Path: "/payments/process", Tags: []string{"payments"}}),
			func(context.Context, *struct{ Body PaymentRequest }) (*struct{}, error) { return nil, nil })
	})
}
