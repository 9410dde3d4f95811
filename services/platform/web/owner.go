package web

import (
	"context"

	"github.com/danielgtaylor/huma/v2"
)

// ActingUser returns the user a request acts for, from the user_id its
// input names (0 when omitted) at location ("body.user_id"): the named
// user, or the authenticated one (see WithUser) when none is named. An
// omitted user_id without an authenticated user is 422, and a named user
// other than the authenticated one is 403. A request without an
// authenticated user (no gateway in front) acts for the user it names.
// Call it after validation, so invalid input is 422 before it is 403.
func ActingUser(ctx context.Context, named int64, location string) (int64, error) {
	user, authenticated := User(ctx)
	switch {
	case named == 0 && !authenticated:
		return 0, huma.Error422UnprocessableEntity("user_id is required",
			&huma.ErrorDetail{Location: location, Message: "user_id is required: the request carries no authenticated user"})
	case named == 0:
		return user, nil
	case authenticated && named != user:
		return 0, huma.Error403Forbidden("this user_id belongs to another user")
	}
	return named, nil
}

// Owns reports whether the request's user may act on what belongs to
// owner: the authenticated user only on its own, an anonymous request (no
// gateway in front) on anything.
func Owns(ctx context.Context, owner int64) bool {
	user, authenticated := User(ctx)
	return !authenticated || user == owner
}
