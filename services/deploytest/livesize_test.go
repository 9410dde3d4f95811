package deploytest

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// productionTmpLimit is the most /tmp a production pod may have: its binary lives in the
// image, so /tmp holds only scratch files. Only the development values raise it.
var productionTmpLimit = resource.MustParse("64Mi")

// tiltCompile is one compile resource of the Tiltfile: its `go build`, read from its command.
type tiltCompile struct {
	resource string
	env      []string // VAR=value before `go build`
	flags    []string // build flags, values joined (-ldflags=-s -w)
	out, pkg string
}

// goBuildValueFlags are the build flags that take a separate value.
var goBuildValueFlags = map[string]bool{
	"-o": true, "-ldflags": true, "-gcflags": true, "-asmflags": true, "-tags": true,
	"-mod": true, "-p": true, "-pgo": true, "-overlay": true,
}

// parseTiltCompile reads a local_resource command of the form `VAR=v ... go build FLAGS -o OUT
// PKG`. ok is false for a command that is no `go build`; a `go build` this cannot read exactly
// (pipes, several commands) is an error, so the tests never build something else than Tilt.
func parseTiltCompile(name, cmd string) (c tiltCompile, ok bool, err error) {
	fields := shellFields(cmd)
	i := 0
	for ; i < len(fields) && strings.Contains(fields[i], "=") && !strings.HasPrefix(fields[i], "-"); i++ {
		c.env = append(c.env, fields[i])
	}
	if i+1 >= len(fields) || fields[i] != "go" || fields[i+1] != "build" {
		if strings.Contains(cmd, "go build") {
			return c, false, fmt.Errorf("local_resource %s: cannot read the go build command %q", name, cmd)
		}
		return c, false, nil
	}
	c.resource = name
	args := fields[i+2:]
	for j := 0; j < len(args); j++ {
		a := args[j]
		switch {
		case a == "&&" || a == ";" || a == "|" || a == "||":
			return c, false, fmt.Errorf("local_resource %s: %q runs more than go build; the tests could not build the same", name, cmd)
		case a == "-o" || a == "--o":
			if j+1 >= len(args) {
				return c, false, fmt.Errorf("local_resource %s: -o without a value", name)
			}
			j++
			c.out = args[j]
		case strings.HasPrefix(a, "-o="):
			c.out = strings.TrimPrefix(a, "-o=")
		case strings.HasPrefix(a, "-"):
			if goBuildValueFlags[a] && j+1 < len(args) {
				j++
				a += "=" + args[j]
			}
			c.flags = append(c.flags, a)
		case c.pkg != "":
			return c, false, fmt.Errorf("local_resource %s: go build of several packages %q", name, cmd)
		default:
			c.pkg = a
		}
	}
	if c.out == "" || c.pkg == "" {
		return c, false, fmt.Errorf("local_resource %s: want go build -o OUT PKG, got %q", name, cmd)
	}
	return c, true, nil
}

func tiltCompiles(t *testing.T, rec *tiltRecord) []tiltCompile {
	t.Helper()
	var out []tiltCompile
	for _, lr := range rec.localResources {
		c, ok, err := parseTiltCompile(lr.name, lr.cmd)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		t.Fatal("the Tiltfile compiles nothing")
	}
	return out
}

// build runs the compile resource's go build, writing the binary into dir instead of OUT.
func (c tiltCompile) build(t *testing.T, dir string) string {
	t.Helper()
	out := filepath.Join(dir, filepath.Base(c.out))
	cmd := exec.Command("go", append(append([]string{"build"}, c.flags...), "-o", out, c.pkg)...)
	// Tilt runs local_resource commands in the Tiltfile's directory, in workspace mode.
	cmd.Dir = repoRoot
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "GOWORK=") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	cmd.Env = append(cmd.Env, c.env...)
	if output, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s (env %v): %v\n%s", cmd, c.env, err, output)
	}
	return out
}

// tiltDeployment renders what the Tiltfile deploys with helm().
func tiltDeployment(t *testing.T, rec *tiltRecord) *manifest {
	t.Helper()
	if len(rec.helms) == 0 {
		t.Fatal("the Tiltfile deploys no chart")
	}
	m := &manifest{}
	for _, h := range rec.helms {
		objects, _ := renderCase(t, chartCase{name: "tilt", valueFiles: h.values, set: h.set, kubeVersion: h.kubeVersion})
		m = m.add(objects)
	}
	return m
}

// emptyDirAt is the emptyDir volume mounted (writable) over path in any of the pod's containers.
func emptyDirAt(w workload, path string) (corev1.Volume, bool) {
	best := ""
	var found corev1.Volume
	for _, c := range w.spec.Containers {
		for _, vm := range c.VolumeMounts {
			mount := strings.TrimSuffix(vm.MountPath, "/")
			if vm.ReadOnly || !strings.HasPrefix(path, mount+"/") || len(mount) <= len(best) {
				continue
			}
			for _, v := range w.spec.Volumes {
				if v.Name == vm.Name && v.EmptyDir != nil {
					best, found = mount, v
				}
			}
		}
	}
	return found, best != ""
}

// dirUsage is what the files under dir occupy, as the kubelet counts an emptyDir: allocated
// blocks, or the size when that is larger.
func dirUsage(t *testing.T, dir string) int64 {
	t.Helper()
	var total int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		n := info.Size()
		if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Blocks*512 > n {
			n = st.Blocks * 512
		}
		total += n
		return nil
	})
	if err != nil {
		t.Fatalf("usage of %s: %v", dir, err)
	}
	return total
}

// waitForLine polls the file until it has the line.
func waitForLine(t *testing.T, path, line string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		data, _ := os.ReadFile(path)
		for _, l := range strings.Split(string(data), "\n") {
			if l == line {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	data, _ := os.ReadFile(path)
	t.Fatalf("no %q within 20s; output:\n%s", line, data)
}

// writeFakeService writes the fake service (see fakeService) padded to size bytes, so that
// whatever tilt/live.sh keeps of it weighs what the real binary weighs. The shell never reads
// the padding: the script loops until SIGTERM before reaching it.
func writeFakeService(t *testing.T, path, version string, size int64) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	script := strings.ReplaceAll(fakeService, "VERSION", version)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(script); err != nil {
		t.Fatal(err)
	}
	line := []byte("#" + strings.Repeat("-", 1022) + "\n")
	for left := size - int64(len(script)); left > 0; left -= int64(len(line)) {
		if left < int64(len(line)) {
			line = append(line[:left-1:left-1], '\n')
		}
		if _, err := f.Write(line); err != nil {
			t.Fatal(err)
		}
	}
}

// liveShPeak runs tilt/live.sh through its start and two live updates of a binary of the given
// size and returns the most its directory held at any of the moments sampled. A sync is
// written next to the file it replaces and then renamed over it, the most a tar extraction
// holds at once.
func liveShPeak(t *testing.T, binary string, size int64) int64 {
	t.Helper()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal("no sh: ", err)
	}
	dir := t.TempDir()
	liveDir := filepath.Join(dir, "tmp")
	out := filepath.Join(dir, "out")
	image := filepath.Join(dir, "image", binary)
	writeFakeService(t, image, "v1", size)
	cmd := exec.Command(sh, repoPath("tilt", "live.sh"), "serve")
	cmd.Env = append(os.Environ(), "SHOP_BINARY="+image, "SHOP_LIVE_DIR="+liveDir, "OUT="+out)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	var peak int64
	sample := func() {
		if u := dirUsage(t, liveDir); u > peak {
			peak = u
		}
	}
	waitForLine(t, out, "start v1 serve")
	sample()
	synced := filepath.Join(liveDir, "live", binary)
	for _, version := range []string{"v2", "v3"} {
		writeFakeService(t, synced+".tar-new", version, size)
		sample()
		if err := os.Rename(synced+".tar-new", synced); err != nil {
			t.Fatal(err)
		}
		sample()
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitForLine(t, out, "start "+version+" serve")
		sample()
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("live.sh exited with %v after SIGTERM, want 0", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("live.sh did not exit within 20s of SIGTERM")
	}
	return peak
}

// The development pods' /tmp must hold what tilt/live.sh keeps there with room to spare: the
// kubelet evicts a pod whose emptyDir outgrows its sizeLimit, and a live-update pod would be
// evicted, recreated and evicted again. Each service is built exactly as the Tiltfile's
// compile resource builds it, tilt/live.sh is run through two live updates of a binary that
// size, and the sizeLimit of the volume the sync lands on must be at least twice the most it
// held. Production pods keep their tight limit.
func TestLiveUpdateFitsTmp(t *testing.T) {
	rec, err := evalTiltfile(t, ctlptlContext(t), nil)
	if err != nil {
		t.Fatalf("Tiltfile: %v", err)
	}
	deployed := tiltDeployment(t, rec)
	production, _ := renderCase(t, chartCases[0])
	for _, c := range tiltCompiles(t, rec) {
		t.Run(c.resource, func(t *testing.T) {
			t.Parallel()
			// The image that receives this binary by live update, and the pods that run it.
			var ref, remote string
			for _, b := range rec.dockerBuilds {
				for _, step := range b.liveUpdate {
					if step.kind == "sync" && step.local == c.out {
						ref, remote = b.ref, step.remote
					}
				}
			}
			if ref == "" {
				t.Fatalf("no docker_build syncs %s", c.out)
			}
			var users []workload
			for _, w := range deployed.workloads() {
				for _, ctr := range w.spec.Containers {
					if imageName(ctr.Image) == ref {
						users = append(users, w)
					}
				}
			}
			if len(users) == 0 {
				t.Fatalf("no deployed workload runs %s", ref)
			}

			bin := c.build(t, t.TempDir())
			info, err := os.Stat(bin)
			if err != nil {
				t.Fatal(err)
			}
			size := info.Size()
			peak := liveShPeak(t, filepath.Base(c.out), size)
			t.Logf("%s: binary %.1f MiB (%d bytes, flags %v); tilt/live.sh holds up to %.1f MiB in /tmp",
				c.resource, mib(size), size, c.flags, mib(peak))

			for _, w := range users {
				vol, ok := emptyDirAt(w, remote)
				if !ok {
					t.Errorf("%s: the live update syncs to %s, which is on no writable emptyDir", w, remote)
					continue
				}
				limit := vol.EmptyDir.SizeLimit
				switch {
				case limit == nil:
					t.Errorf("%s: emptyDir %s has no sizeLimit", w, vol.Name)
				case limit.Value() < 2*peak:
					t.Errorf("%s: emptyDir %s (%s) has sizeLimit %s (%.1f MiB), but tilt/live.sh keeps up to %.1f MiB there "+
						"(binary %.1f MiB): want at least twice that, or the kubelet evicts the pod",
						w, vol.Name, remote, limit, mib(limit.Value()), mib(peak), mib(size))
				default:
					t.Logf("%s: sizeLimit %s = %.1fx the peak", w, limit, float64(limit.Value())/float64(peak))
				}
				// The same workload in production keeps the tight limit.
				prod, ok := production.workload(w.name)
				if !ok {
					t.Errorf("%s is not in the default render", w)
					continue
				}
				pvol, ok := emptyDirAt(prod, remote)
				if !ok || pvol.EmptyDir.SizeLimit == nil || pvol.EmptyDir.SizeLimit.Cmp(productionTmpLimit) > 0 {
					t.Errorf("%s in production: /tmp sizeLimit %v, want at most %s (only the development values raise it)",
						w, pvol.EmptyDir, productionTmpLimit.String())
				}
			}
		})
	}
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func TestParseTiltCompile(t *testing.T) {
	c, ok, err := parseTiltCompile("x", `CGO_ENABLED=0 GOOS=linux GOARCH=arm64 go build -trimpath -ldflags='-s -w' -o build/tilt/shop-x ./services/x`)
	if err != nil || !ok {
		t.Fatalf("ok=%v err=%v", ok, err)
	}
	want := tiltCompile{resource: "x", env: []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64"},
		flags: []string{"-trimpath", "-ldflags=-s -w"}, out: "build/tilt/shop-x", pkg: "./services/x"}
	if fmt.Sprint(c) != fmt.Sprint(want) {
		t.Errorf("got %+v, want %+v", c, want)
	}
	if _, ok, err := parseTiltCompile("t", "go test ./..."); ok || err != nil {
		t.Errorf("go test: ok=%v err=%v, want neither", ok, err)
	}
	for _, bad := range []string{"go build -o out ./a && rm out", "go build ./a", "cd x && go build -o y ./z"} {
		if _, _, err := parseTiltCompile("b", bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
