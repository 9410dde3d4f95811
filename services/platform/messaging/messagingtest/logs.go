package messagingtest

import (
	"context"
	"log/slog"
	"slices"
	"sync"
)

// LogRecorder is a slog handler that keeps the messages logged, for tests
// that check a failure was reported.
type LogRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (l *LogRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (l *LogRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, r.Message)
	return nil
}

func (l *LogRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *LogRecorder) WithGroup(string) slog.Handler      { return l }

// Contains reports whether msg was logged.
func (l *LogRecorder) Contains(msg string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Contains(l.msgs, msg)
}

// Count reports how many times msg was logged.
func (l *LogRecorder) Count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if m == msg {
			n++
		}
	}
	return n
}
