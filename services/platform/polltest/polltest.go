// Package polltest waits in tests for what happens in the background: it
// polls a condition with a deadline, the one replacement for sleeping.
package polltest

import (
	"testing"
	"time"
)

// Until polls cond, every few milliseconds at first and then less often,
// until it returns nil, and fails the test with the last error cond
// returned if that does not happen within timeout.
func Until(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := 5 * time.Millisecond
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %v", timeout, err)
		}
		time.Sleep(wait)
		wait = min(2*wait, 100*time.Millisecond)
	}
}
