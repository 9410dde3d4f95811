package access

import (
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// verifiedTokens remembers the tokens that passed every check, by their whole
// raw text, with their user, until the earlier of their exp and a short
// bound. Only successes go in: a refused token is checked again each time.
type verifiedTokens struct {
	tokens *lru.Cache[string, verifiedToken]
	bound  time.Duration
}

type verifiedToken struct {
	user  int64
	until time.Time
}

func newVerifiedTokens(size int, bound time.Duration) (*verifiedTokens, error) {
	tokens, err := lru.New[string, verifiedToken](size)
	if err != nil {
		return nil, err
	}
	return &verifiedTokens{tokens: tokens, bound: bound}, nil
}

// user returns the user of raw if it passed its checks and is still
// remembered. A token past its time is forgotten here, so it is checked,
// and refused, again.
func (c *verifiedTokens) user(raw string) (int64, bool) {
	v, ok := c.tokens.Get(raw)
	if !ok {
		return 0, false
	}
	if !time.Now().Before(v.until) {
		c.tokens.Remove(raw)
		return 0, false
	}
	return v.user, true
}

// add remembers raw, which passed every check, as user's until exp at the
// latest.
func (c *verifiedTokens) add(raw string, user int64, exp time.Time) {
	until := time.Now().Add(c.bound)
	if exp.Before(until) {
		until = exp
	}
	c.tokens.Add(raw, verifiedToken{user: user, until: until})
}
