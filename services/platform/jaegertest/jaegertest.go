// Package jaegertest runs a real Jaeger (v2 all-in-one, in-memory storage)
// for tests: the version services/tools pins, built once and cached under
// ${XDG_CACHE_HOME:-$HOME/.cache}/shop (make jaeger builds the same file).
package jaegertest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"shop/services/platform/database/dbtest"
	"shop/services/platform/service/servicetest"
)

// jaegerConfig is Jaeger v2's all-in-one configuration with in-memory
// storage, on the ports the test chose.
const jaegerConfig = `
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  healthcheckv2:
    use_v2: true
    http:
      endpoint: {{health}}
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: {{query}}
    grpc:
      endpoint: {{queryGRPC}}
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {{otlpGRPC}}
      http:
        endpoint: {{otlpHTTP}}
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`

// Jaeger is a running Jaeger all-in-one with in-memory storage.
type Jaeger struct {
	// OTLPGRPC and OTLPHTTP are the host:port of its OTLP receivers, Query
	// that of its query service (API and UI).
	OTLPGRPC, OTLPHTTP, Query string
	log                       *servicetest.Buffer
}

// QueryURL is the base URL of its query service: /api/traces/… there.
func (j *Jaeger) QueryURL() string { return "http://" + j.Query }

// Log is what Jaeger has written so far.
func (j *Jaeger) Log() string { return j.log.String() }

// Start starts the Jaeger that services/tools pins and waits until it is
// healthy; it is stopped when t ends.
func Start(t testing.TB) *Jaeger {
	t.Helper()
	bin := Binary(t)
	j := &Jaeger{
		OTLPGRPC: servicetest.FreeAddr(t), OTLPHTTP: servicetest.FreeAddr(t), Query: servicetest.FreeAddr(t),
		log: &servicetest.Buffer{},
	}
	health := servicetest.FreeAddr(t)
	config := strings.NewReplacer("{{health}}", health, "{{query}}", j.Query, "{{queryGRPC}}", servicetest.FreeAddr(t),
		"{{otlpGRPC}}", j.OTLPGRPC, "{{otlpHTTP}}", j.OTLPHTTP).Replace(jaegerConfig)
	path := filepath.Join(t.TempDir(), "jaeger.yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", "file:"+path)
	out := j.log
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("Jaeger exited:\n%s", out.String())
		default:
		}
		if resp, err := http.Get("http://" + health + "/status"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return j
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("Jaeger not healthy within 60s:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Binary returns the Jaeger binary of the version services/tools
// pins, built with GOWORK=off (its dependencies must not raise the
// services') and cached under ${XDG_CACHE_HOME:-$HOME/.cache}/shop, keyed by
// the tool module's go.sum, so only the first run pays for the build. A
// failed build skips the test on a laptop and fails it with CI=true.
func Binary(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOWORK").Output()
	gowork := strings.TrimSpace(string(out))
	if err != nil || gowork == "" || gowork == "off" {
		t.Fatalf("find go.work: %v", err)
	}
	tools := filepath.Join(filepath.Dir(gowork), "services", "tools")
	path, err := cachePath(tools)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err == nil {
		return path
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	cmd := exec.Command("go", "build", "-o", tmp, "github.com/jaegertracing/jaeger/cmd/jaeger")
	cmd.Dir = tools
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		dbtest.Unavailable(t, fmt.Sprintf("build Jaeger in %s: %v\n%s", tools, err, out))
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	t.Logf("built %s in %s", path, time.Since(start).Round(time.Second))
	return path
}

// cachePath is where the Jaeger binary of the tool module in dir is
// cached: jaeger-<version>-<go.sum hash>.
func cachePath(dir string) (string, error) {
	mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return "", err
	}
	m := regexp.MustCompile(`(?m)^\s*github\.com/jaegertracing/jaeger (v\S+)`).FindSubmatch(mod)
	if m == nil {
		return "", fmt.Errorf("%s/go.mod requires no github.com/jaegertracing/jaeger", dir)
	}
	sum, err := os.ReadFile(filepath.Join(dir, "go.sum"))
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(sum)
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "shop", fmt.Sprintf("jaeger-%s-%s", m[1], hex.EncodeToString(h[:6]))), nil
}
