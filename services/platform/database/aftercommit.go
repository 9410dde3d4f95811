package database

import (
	"context"
	"sync"
)

// Work that may only happen once a transaction's changes are visible, such
// as waking the outbox relay that publishes the messages it wrote, is
// registered with AfterCommit by the code that writes in the transaction,
// and run by the code that commits it. A transaction that rolls back runs
// none of it, and one that wrote nothing that needs it runs nothing.

type afterCommitKey struct{}

type afterCommit struct {
	mu  sync.Mutex
	fns []func()
}

// WithAfterCommit returns ctx for a transaction to run under, and ended, to
// call once the transaction has ended: ended(true) after a commit runs, in
// order, what AfterCommit registered under ctx; ended(false) drops it.
func WithAfterCommit(ctx context.Context) (_ context.Context, ended func(committed bool)) {
	a := &afterCommit{}
	return context.WithValue(ctx, afterCommitKey{}, a), func(committed bool) {
		a.mu.Lock()
		fns := a.fns
		a.fns = nil
		a.mu.Unlock()
		if committed {
			for _, fn := range fns {
				fn()
			}
		}
	}
}

// AfterCommit registers fn to run after the commit of the transaction that
// ctx (or a context derived from it) runs under, when ctx comes from
// WithAfterCommit, and reports whether it does. Otherwise it does nothing
// and returns false: the caller runs fn itself once it has committed.
func AfterCommit(ctx context.Context, fn func()) bool {
	a, ok := ctx.Value(afterCommitKey{}).(*afterCommit)
	if !ok {
		return false
	}
	a.mu.Lock()
	a.fns = append(a.fns, fn)
	a.mu.Unlock()
	return true
}
