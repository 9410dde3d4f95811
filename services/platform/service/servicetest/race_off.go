//go:build !race

package servicetest

// buildFlags build the service binaries the way this test binary was built:
// without the race detector (and so without a C compiler) when the tests
// run without -race.
var buildFlags []string
