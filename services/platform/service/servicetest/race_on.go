//go:build race

package servicetest

// buildFlags build the service binaries the way this test binary was built:
// with the race detector when the tests run under -race.
var buildFlags = []string{"-race"}
