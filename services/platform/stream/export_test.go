package stream

// SetAfterCommit makes c call f between a handler's commit and the ack; an
// error from f skips the ack, as a crash there would.
func SetAfterCommit(c *Consumer, f func(entryID string) error) { c.afterCommit = f }
