package web

import (
	"encoding/json"
	"net/http"
	"sync"

	"github.com/danielgtaylor/huma/v2"
)

// serveSpec serves oapi at /openapi.json, /openapi.yaml and, for older
// tools, /openapi-3.0.json and /openapi-3.0.yaml. Each is rendered once, on
// its first request, when every operation has been registered. Huma's own
// handlers cache the same way without a lock: two first requests at once
// (the gateway fetching a service's description while a browser opens its
// docs) race on the cached bytes.
func serveSpec(mux *http.ServeMux, oapi *huma.OpenAPI) {
	for _, s := range []struct {
		path, contentType string
		render            func() ([]byte, error)
	}{
		{"/openapi.json", "application/openapi+json", func() ([]byte, error) { return json.Marshal(oapi) }},
		{"/openapi.yaml", "application/openapi+yaml", func() ([]byte, error) { return oapi.YAML() }},
		// Closures, not method values: Downgrade has a value receiver, and
		// its method value would copy the description before any operation
		// is registered.
		{"/openapi-3.0.json", "application/openapi+json", func() ([]byte, error) { return oapi.Downgrade() }},
		{"/openapi-3.0.yaml", "application/openapi+yaml", func() ([]byte, error) { return oapi.DowngradeYAML() }},
	} {
		render := sync.OnceValues(s.render)
		mux.HandleFunc("GET "+s.path, func(w http.ResponseWriter, r *http.Request) {
			b, err := render()
			if err != nil {
				WriteProblem(w, r, http.StatusInternalServerError, "internal error")
				return
			}
			w.Header().Set("Content-Type", s.contentType)
			w.Write(b)
		})
	}
}
