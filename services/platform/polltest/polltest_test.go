package polltest_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"shop/services/platform/polltest"
)

func TestUntilReturnsOnceTheConditionHolds(t *testing.T) {
	calls := 0
	polltest.Until(t, 5*time.Second, func() error {
		if calls++; calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if calls != 3 {
		t.Fatalf("cond ran %d times, want 3", calls)
	}
}

// fatalT records a failure instead of ending the test; Until then polls
// once more, and the condition ends it.
type fatalT struct {
	testing.TB
	msg string
}

func (f *fatalT) Helper()                           {}
func (f *fatalT) Fatalf(format string, args ...any) { f.msg = fmt.Sprintf(format, args...) }

func TestUntilFailsWithTheLastReason(t *testing.T) {
	f := &fatalT{TB: t}
	n := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		polltest.Until(f, 50*time.Millisecond, func() error {
			n++
			if f.msg != "" {
				return nil // Fatalf returned: stop polling
			}
			return errors.New("still 3 orders NEW")
		})
	}()
	<-done
	if !strings.Contains(f.msg, "still 3 orders NEW") || n < 2 {
		t.Fatalf("failure %q after %d polls, want the last reason after several", f.msg, n)
	}
}
