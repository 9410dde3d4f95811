package database

// Queued is how many callers of g wait for their batch to start.
func Queued[T any](g *GroupCommit[T]) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.queue)
}
