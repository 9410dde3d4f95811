// Package kubebins builds, once per pinned version, the etcd, kube-apiserver and
// kube-controller-manager that the API-server tests run, and caches them under the user cache
// directory (${XDG_CACHE_HOME:-$HOME/.cache}/shop/kube-...). The versions are those the wrapper
// modules in ../bins pin; a change to either module's go.mod or go.sum names a new cache folder.
package kubebins

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Binaries are the paths of the built programs.
type Binaries struct {
	Etcd              string
	KubeAPIServer     string
	ControllerManager string
	// KubeVersion is the Kubernetes version they were built from, e.g. "v1.34.4".
	KubeVersion string
}

// bins is the folder of the wrapper modules (services/kubeapitest/bins).
var bins = func() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		panic("no caller information")
	}
	return filepath.Join(filepath.Dir(file), "..", "bins")
}()

// build is one `go build` run in a wrapper module.
type build struct {
	module   string // folder under bins
	pinned   string // module path whose version names the cache folder
	packages []string
	outputs  []string
	ldflags  func(version string) string
}

var builds = []build{
	{
		module:   "etcd",
		pinned:   "go.etcd.io/etcd/server/v3",
		packages: []string{"go.etcd.io/etcd/server/v3"},
		outputs:  []string{"etcd"},
		ldflags:  func(string) string { return "-s -w" },
	},
	{
		module:   "kubernetes",
		pinned:   "k8s.io/kubernetes",
		packages: []string{"k8s.io/kubernetes/cmd/kube-apiserver", "k8s.io/kubernetes/cmd/kube-controller-manager"},
		outputs:  []string{"kube-apiserver", "kube-controller-manager"},
		// The version the binaries report (/version, and the base of their emulated version).
		ldflags: func(v string) string {
			major, minor, _ := strings.Cut(strings.TrimPrefix(v, "v"), ".")
			minor, _, _ = strings.Cut(minor, ".")
			pkg := "k8s.io/component-base/version"
			return fmt.Sprintf("-s -w -X %[1]s.gitVersion=%[2]s -X %[1]s.gitMajor=%[3]s -X %[1]s.gitMinor=%[4]s -X %[1]s.gitTreeState=clean",
				pkg, v, major, minor)
		},
	},
}

// Dir is the cache folder of the pinned versions, whether or not they are built yet.
func Dir() (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	var names []string
	for _, b := range builds {
		v, err := version(b)
		if err != nil {
			return "", err
		}
		names = append(names, strings.TrimPrefix(b.module, "kubernetes")+v)
		for _, f := range []string{"go.mod", "go.sum"} {
			data, err := os.ReadFile(filepath.Join(bins, b.module, f))
			if err != nil {
				return "", err
			}
			h.Write(data)
		}
		h.Write([]byte(b.ldflags(v)))
	}
	// e.g. kube-v1.34.4-etcdv3.6.8-0123456789ab
	name := fmt.Sprintf("kube-%s-%s-%s", names[1], names[0], hex.EncodeToString(h.Sum(nil))[:12])
	return filepath.Join(cache, "shop", name), nil
}

// Ensure returns the cached binaries, building those that are missing first (when nothing is
// cached, about 15 CPU-minutes and 2 GB of memory), with progress on log.
func Ensure(ctx context.Context, log io.Writer) (Binaries, error) {
	dir, err := Dir()
	if err != nil {
		return Binaries{}, err
	}
	kubeVersion, err := version(builds[1])
	if err != nil {
		return Binaries{}, err
	}
	out := Binaries{
		Etcd:              filepath.Join(dir, "etcd"),
		KubeAPIServer:     filepath.Join(dir, "kube-apiserver"),
		ControllerManager: filepath.Join(dir, "kube-controller-manager"),
		KubeVersion:       kubeVersion,
	}
	for _, b := range builds {
		if allExecutable(dir, b.outputs) {
			continue
		}
		if err := b.run(ctx, dir, log); err != nil {
			return Binaries{}, err
		}
	}
	return out, nil
}

func allExecutable(dir string, names []string) bool {
	for _, n := range names {
		fi, err := os.Stat(filepath.Join(dir, n))
		if err != nil || fi.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

// run builds into a temporary folder beside dir and then renames each binary into place, so
// that a concurrent or interrupted build never leaves a partial binary under its final name.
func (b build) run(ctx context.Context, dir string, log io.Writer) error {
	v, err := version(b)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(dir, ".build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	fmt.Fprintf(log, "kubebins: building %s %s into %s (a few minutes the first time)\n",
		strings.Join(b.outputs, ", "), v, dir)
	start := time.Now()
	// -o names a file for one package (etcd's would be called "server") and a folder for several.
	output := tmp + string(filepath.Separator)
	if len(b.packages) == 1 {
		output = filepath.Join(tmp, b.outputs[0])
	}
	args := append([]string{"build", "-trimpath", "-ldflags", b.ldflags(v), "-o", output}, b.packages...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = filepath.Join(bins, b.module)
	cmd.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0", "GOFLAGS=-mod=readonly")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build %s: %w", strings.Join(b.outputs, ", "), err)
	}
	for _, n := range b.outputs {
		if err := os.Rename(filepath.Join(tmp, n), filepath.Join(dir, n)); err != nil {
			return err
		}
	}
	fmt.Fprintf(log, "kubebins: built %s in %s\n", strings.Join(b.outputs, ", "), time.Since(start).Round(time.Second))
	return nil
}

// version is the version of b.pinned that the wrapper module's go.mod requires.
func version(b build) (string, error) {
	data, err := os.ReadFile(filepath.Join(bins, b.module, "go.mod"))
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "require "))
		if len(f) >= 2 && f[0] == b.pinned {
			return f[1], nil
		}
	}
	return "", fmt.Errorf("%s/go.mod requires no %s", b.module, b.pinned)
}
