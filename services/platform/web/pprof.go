package web

import (
	"log/slog"
	"net/http"
	"net/http/pprof"
)

// ServePprof serves the Go profiler (/debug/pprof/) on addr, for benchmarks
// and debugging (PPROF_ADDR): keep it on loopback, never on a public
// port.
func ServePprof(addr string) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	go func() {
		// The profiler is an aid: failing to listen must not stop the service.
		if err := http.ListenAndServe(addr, mux); err != nil {
			slog.Warn("pprof server stopped", "addr", addr, "error", err)
		}
	}()
}
