package database_test

import (
	"context"
	"slices"
	"testing"

	"shop/services/platform/database"
)

func TestAfterCommit(t *testing.T) {
	if database.AfterCommit(context.Background(), func() { t.Error("ran outside a transaction's after-commit work") }) {
		t.Error("AfterCommit registered without WithAfterCommit")
	}

	var ran []int
	ctx, ended := database.WithAfterCommit(context.Background())
	derived, cancel := context.WithCancel(ctx) // as a handler's span and deadline derive it
	defer cancel()
	for i := range 3 {
		if !database.AfterCommit(derived, func() { ran = append(ran, i) }) {
			t.Fatal("AfterCommit did not register under a derived context")
		}
	}
	if len(ran) != 0 {
		t.Fatalf("ran %v before the transaction ended", ran)
	}
	ended(true)
	if !slices.Equal(ran, []int{0, 1, 2}) {
		t.Fatalf("after the commit ran %v, want 0, 1, 2 in order", ran)
	}
	ended(true)
	if len(ran) != 3 {
		t.Fatalf("ran %v: a second call ran the work again", ran)
	}

	ctx, ended = database.WithAfterCommit(context.Background())
	database.AfterCommit(ctx, func() { t.Error("ran after a rollback") })
	ended(false)
	ended(true)
}
