package web

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/danielgtaylor/huma/v2"
)

// Check is one dependency the service reports on: the database, the broker.
type Check struct {
	Name  string
	Check func(context.Context) error
	// Optional marks a dependency the API can serve without (a service's
	// broker: messages wait in the outbox; the gateway's Redis: rate limits
	// fail open): its state shows in /health, but it does not make the
	// service unready.
	Optional bool
}

// Health serves /livez (the process answers), /readyz and /health (every
// check that is not optional passes and the service is not draining;
// /health lists the state of every check, and says "degraded" while an
// optional one fails).
type Health struct {
	checks   []Check
	draining atomic.Bool
}

// NewHealth returns a Health that runs checks on each readiness request.
func NewHealth(checks ...Check) *Health {
	return &Health{checks: checks}
}

// Add adds a readiness check. Call it before serving.
func (h *Health) Add(c Check) { h.checks = append(h.checks, c) }

// Drain makes readiness fail from now on, so load balancers stop sending
// traffic while the server finishes what it has.
func (h *Health) Drain() { h.draining.Store(true) }

// HealthPaths are the routes Health serves; request logs and traces skip them.
var HealthPaths = []string{"/health", "/livez", "/readyz"}

// IsHealthPath reports whether path is one of HealthPaths.
func IsHealthPath(path string) bool {
	for _, p := range HealthPaths {
		if path == p {
			return true
		}
	}
	return false
}

// Status is the body of a successful health answer.
type Status struct {
	Status string            `json:"status" example:"ok" enum:"ok,degraded" doc:"ok when the service and every dependency are up; degraded when it can serve requests but an optional dependency (Redis) is down"`
	Checks map[string]string `json:"checks,omitempty" doc:"each dependency and its state"`
}

type statusOutput struct {
	Body Status
}

// Register adds the health routes to api.
func (h *Health) Register(api huma.API) {
	huma.Register(api, huma.Operation{
		OperationID: "get-health",
		Method:      http.MethodGet,
		Path:        "/health",
		Summary:     "Service health",
		Description: "Reports whether the service and its dependencies are ready; 503 when not.",
		Tags:        []string{HealthTag},
		Errors:      []int{http.StatusServiceUnavailable},
	}, h.ready)
	huma.Register(api, huma.Operation{
		OperationID: "readyz",
		Method:      http.MethodGet,
		Path:        "/readyz",
		Summary:     "Readiness probe",
		Hidden:      true,
	}, h.ready)
	huma.Register(api, huma.Operation{
		OperationID: "livez",
		Method:      http.MethodGet,
		Path:        "/livez",
		Summary:     "Liveness probe",
		Hidden:      true,
	}, func(context.Context, *struct{}) (*statusOutput, error) {
		return &statusOutput{Body: Status{Status: "ok"}}, nil
	})
}

func (h *Health) ready(ctx context.Context, _ *struct{}) (*statusOutput, error) {
	if h.draining.Load() {
		return nil, &huma.ErrorModel{Status: http.StatusServiceUnavailable, Title: "Service Unavailable", Detail: "shutting down"}
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	results := make(map[string]string, len(h.checks))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range h.checks {
		wg.Go(func() {
			state := "ok"
			if err := c.Check(ctx); err != nil {
				state = "unavailable"
			}
			mu.Lock()
			results[c.Name] = state
			mu.Unlock()
		})
	}
	wg.Wait()
	var failed []string
	status := "ok"
	for _, c := range h.checks {
		if results[c.Name] == "ok" {
			continue
		}
		if c.Optional {
			status = "degraded"
			continue
		}
		failed = append(failed, c.Name)
	}
	if len(failed) > 0 {
		sort.Strings(failed)
		return nil, &huma.ErrorModel{
			Status: http.StatusServiceUnavailable,
			Title:  "Service Unavailable",
			Detail: "not ready: " + strings.Join(failed, ", ") + " unavailable",
		}
	}
	return &statusOutput{Body: Status{Status: status, Checks: results}}, nil
}
