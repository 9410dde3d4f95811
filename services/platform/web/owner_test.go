package web_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/danielgtaylor/huma/v2"

	"shop/services/platform/web"
)

func TestActingUser(t *testing.T) {
	anonymous, five := context.Background(), web.ContextWithUser(context.Background(), 5)
	rows := []struct {
		name   string
		ctx    context.Context
		named  int64
		want   int64
		status int // 0 for no error
	}{
		{"omitted: the authenticated user", five, 0, 5, 0},
		{"naming the authenticated user", five, 5, 5, 0},
		{"naming another user", five, 6, 0, http.StatusForbidden},
		{"omitted and anonymous", anonymous, 0, 0, http.StatusUnprocessableEntity},
		{"anonymous: as named", anonymous, 6, 6, 0},
	}
	for _, r := range rows {
		got, err := web.ActingUser(r.ctx, r.named, "body.user_id")
		var se huma.StatusError
		switch {
		case r.status == 0 && (err != nil || got != r.want):
			t.Errorf("%s: %d, %v; want %d", r.name, got, err, r.want)
		case r.status != 0 && (!errors.As(err, &se) || se.GetStatus() != r.status):
			t.Errorf("%s: %v, want status %d", r.name, err, r.status)
		}
	}
	if !web.Owns(five, 5) || web.Owns(five, 6) || !web.Owns(anonymous, 6) {
		t.Error("Owns: only the authenticated user's own, or anything when anonymous")
	}
}
