// Package browsertest starts a headless Chromium for tests that drive the
// docs page in a real browser, so every such test finds and starts it the
// same way.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/chromedp/chromedp"
)

// Chromium returns the Chromium to drive: $CHROMIUM_PATH, else
// /usr/bin/chromium, else chromium on the PATH. Without one the test skips,
// except in CI, which installs Chromium and so must not pass by skipping.
// A CHROMIUM_PATH that names no program is a mistake, not a reason to skip.
func Chromium(t testing.TB) string {
	t.Helper()
	if env := os.Getenv("CHROMIUM_PATH"); env != "" {
		path, err := exec.LookPath(env)
		if err != nil {
			t.Fatalf("CHROMIUM_PATH: %v", err)
		}
		return path
	}
	for _, candidate := range []string{"/usr/bin/chromium", "chromium"} {
		if path, err := exec.LookPath(candidate); err == nil {
			return path
		}
	}
	const msg = "no Chromium found ($CHROMIUM_PATH, /usr/bin/chromium, chromium on PATH); install it with: apt-get install -y chromium"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// New starts a headless Chromium, with a fresh profile, that lives as long
// as ctx and the test, and returns the context to drive it with.
func New(ctx context.Context, t testing.TB, chromium string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
		// Root, as in CI containers, cannot use Chromium's sandbox.
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		// Keep the browser from calling home, so that every request it makes
		// is the page's.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	return browserCtx
}
