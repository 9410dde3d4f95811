package deploytest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeService is a stand-in binary: it records its start (with its arguments) and its
// graceful stop in $OUT.
const fakeService = `#!/bin/sh
echo "start VERSION $*" >> "$OUT"
trap 'echo "stop VERSION" >> "$OUT"; exit 0' TERM
while :; do sleep 0.05; done
`

// tilt/live.sh restarts the service with the synced binary on SIGHUP and passes SIGTERM on.
// The test runs it with the machine's sh; the image runs it with busybox sh. What it keeps in
// /tmp meanwhile is measured by TestLiveUpdateFitsTmp.
func TestLiveUpdateSupervisor(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal("no sh: ", err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	binary := filepath.Join(dir, "image", "shop-fake")
	write := func(path, version string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		// Write aside and rename, as tar extraction of a new file does.
		tmp := path + ".new"
		if err := os.WriteFile(tmp, []byte(strings.ReplaceAll(fakeService, "VERSION", version)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write(binary, "v1")
	cmd := exec.Command(sh, repoPath("tilt", "live.sh"), "serve", "--flag")
	cmd.Env = append(os.Environ(), "SHOP_BINARY="+binary, "SHOP_LIVE_DIR="+dir, "OUT="+out)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
	})
	waitFor := func(line string) {
		t.Helper()
		waitForLine(t, out, line)
	}

	waitFor("start v1 serve --flag")
	// Tilt syncs the new binary to $SHOP_LIVE_DIR/live/<name>, then runs `kill -HUP 1`.
	write(filepath.Join(dir, "live", "shop-fake"), "v2")
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor("stop v1")
	waitFor("start v2 serve --flag")
	// Kubernetes stops the pod: the service gets SIGTERM and the supervisor exits with it.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("supervisor exited with %v, want the service's status 0", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("supervisor did not exit within 10s of SIGTERM")
	}
	waitFor("stop v2")
}
