package outbox

// SetBeforeCommit makes r call f after a batch is on its streams and before
// it is marked published; an error from f rolls the batch back, as a crash
// there would.
func SetBeforeCommit(r *Relay, f func() error) { r.beforeCommit = f }

// SetListening makes r call f each time its LISTEN is in place.
func SetListening(r *Relay, f func()) { r.listening = f }
