package service

import (
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
)

// PprofEnv names the variable that, when set to an address such as
// 127.0.0.1:6060, serves the Go profiler (/debug/pprof/) there. It is for
// benchmarks and debugging: keep it on loopback, never on a public port.
const PprofEnv = "PPROF_ADDR"

func init() {
	addr := os.Getenv(PprofEnv)
	if addr == "" {
		return
	}
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
