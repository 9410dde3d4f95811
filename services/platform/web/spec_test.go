package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/danielgtaylor/huma/v2"

	"shop/services/platform/web"
)

// The first requests for the description may come at once (the gateway
// fetching it while a browser opens the docs): each gets the whole
// description, and under -race nothing races.
func TestSpecServedAtOnce(t *testing.T) {
	mux := http.NewServeMux()
	api := web.NewAPI(mux, "Test", "test API")
	// Registered after the description routes, as every service does.
	huma.Get(api, "/widgets", func(context.Context, *struct{}) (*struct{}, error) { return nil, nil })
	paths := []string{"/openapi.json", "/openapi.yaml", "/openapi-3.0.json", "/openapi-3.0.yaml"}
	var wg sync.WaitGroup
	for range 4 {
		for _, path := range paths {
			wg.Go(func() {
				rec := serve(mux, "GET", path, "", nil)
				if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/openapi+") {
					t.Errorf("%s: %d %s", path, rec.Code, rec.Header().Get("Content-Type"))
				}
				if strings.HasSuffix(path, ".json") {
					var doc struct {
						OpenAPI string
						Paths   map[string]any
					}
					if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil || doc.OpenAPI == "" || doc.Paths["/widgets"] == nil {
						t.Errorf("%s: not the whole description: %v %.80s", path, err, rec.Body)
					}
				} else if !strings.Contains(rec.Body.String(), "/widgets:") {
					t.Errorf("%s: no /widgets in %.80s", path, rec.Body)
				}
			})
		}
	}
	wg.Wait()
}
