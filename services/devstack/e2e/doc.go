// Package e2e holds the end-to-end tests of the whole shop: the real
// binaries as processes on PostgreSQL and Redis, under load, with crashes
// and replicas, checked against the invariants of the payment flow.
package e2e
