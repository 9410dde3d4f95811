package servicetest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var builds struct {
	sync.Mutex
	dir  string
	bins map[string]string
}

// Build builds ./services/<name> from the repository root (the folder of
// go.work) once per test binary and returns the binary's path.
func Build(t testing.TB, name string) string {
	t.Helper()
	builds.Lock()
	defer builds.Unlock()
	if bin, ok := builds.bins[name]; ok {
		return bin
	}
	if builds.dir == "" {
		dir, err := os.MkdirTemp("", "shop-bin-")
		if err != nil {
			t.Fatal(err)
		}
		builds.dir, builds.bins = dir, map[string]string{}
	}
	out, err := exec.Command("go", "env", "GOWORK").Output()
	gowork := strings.TrimSpace(string(out))
	if err != nil || gowork == "" || gowork == "off" {
		t.Fatalf("find go.work: %v (GOWORK=%q)", err, gowork)
	}
	bin := filepath.Join(builds.dir, name)
	args := append([]string{"build"}, buildFlags...)
	cmd := exec.Command("go", append(args, "-o", bin, "./services/"+name)...)
	cmd.Dir = filepath.Dir(gowork)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./services/%s: %v\n%s", name, err, out)
	}
	builds.bins[name] = bin
	return bin
}

// FreeAddr returns a loopback address with a port that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Process is a service binary running as a child process.
type Process struct {
	Name string
	URL  string // http://127.0.0.1:port

	t    testing.TB
	bin  string
	env  []string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  *Buffer
}

// Start runs bin with env plus HTTP_ADDR on a free port, and waits until
// its /readyz answers 200. The process is stopped when t ends; its output is
// logged if t failed.
func Start(t testing.TB, name, bin string, env ...string) *Process {
	t.Helper()
	p := &Process{Name: name, URL: "http://" + FreeAddr(t), t: t, bin: bin, env: slices.Clone(env), log: &Buffer{}}
	p.start()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("%s output (last 8 KiB):\n%s", name, tail(p.log, 8<<10))
		}
	})
	return p
}

func (p *Process) start() {
	p.t.Helper()
	p.mu.Lock()
	cmd := exec.Command(p.bin)
	cmd.Env = append(append(os.Environ(), p.env...), "HTTP_ADDR="+strings.TrimPrefix(p.URL, "http://"))
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		p.mu.Unlock()
		p.t.Fatalf("start %s: %v", p.Name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	p.WaitReady(60 * time.Second)
}

// WaitReady polls /readyz until it answers 200.
func (p *Process) WaitReady(limit time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		p.mu.Lock()
		done := p.done
		p.mu.Unlock()
		select {
		case <-done:
			p.t.Fatalf("%s exited before it was ready\n%s", p.Name, tail(p.log, 8<<10))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		cancel()
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s not ready within %s\n%s", p.Name, limit, tail(p.log, 8<<10))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill kills the process with SIGKILL, as a crash would, and waits for it.
func (p *Process) Kill() { p.signal(syscall.SIGKILL, 0) }

// Stop asks the process to stop (SIGTERM) and kills it after 30s.
func (p *Process) Stop() { p.signal(syscall.SIGTERM, 30*time.Second) }

// Restart starts the process again on the same address.
func (p *Process) Restart() { p.start() }

func (p *Process) signal(sig syscall.Signal, grace time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	select {
	case <-done:
		return
	default:
	}
	cmd.Process.Signal(sig)
	if grace == 0 {
		<-done
		return
	}
	select {
	case <-done:
	case <-time.After(grace):
		cmd.Process.Kill()
		<-done
	}
}

// Output is what the process wrote so far.
func (p *Process) Output() string { return tail(p.log, 1<<30) }

// tail is the last n bytes of what the process wrote.
func tail(b *Buffer, n int) string {
	s := b.String()
	if len(s) > n {
		s = fmt.Sprintf("…%s", s[len(s)-n:])
	}
	return s
}
