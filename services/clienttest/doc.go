// Package clienttest is the shop's contract test from a client's side: it
// generates a Go client with oapi-codegen from the live gateway's OpenAPI
// description, checks that it is exactly shopclient (committed), and drives
// the README's walk-through through that client against devstack, amounts
// and typed error answers included.
//
// It is a module of its own, outside go.work, so that oapi-codegen and its
// dependencies never raise the services' versions; run it with
// `make test-client` or `cd services/clienttest && GOWORK=off go test ./...`.
// After an intended API change, UPDATE_CLIENT=1 regenerates shopclient.
package clienttest
