// Package buildinfo says which version of the shop a binary is: the one
// stamped at link time (-ldflags "-X shop/services/platform/buildinfo.version=1.2.3"),
// else the module version Go recorded from version control, else DefaultVersion.
// Every binary and every API description reports this one version.
package buildinfo

import (
	"runtime/debug"
	"strings"
	"sync"
)

// DefaultVersion is reported by a binary built without a version: go run,
// go test, or a build outside version control.
const DefaultVersion = "0.0.0-dev"

// version is set by the linker: -X shop/services/platform/buildinfo.version=…
var version string

// Version returns the shop's version without a leading "v": "1.2.3",
// "0.0.0-20261201161500-55daabf3a66b+dirty", or DefaultVersion.
var Version = sync.OnceValue(func() string {
	return pick(version, debug.ReadBuildInfo)
})

func pick(stamped string, read func() (*debug.BuildInfo, bool)) string {
	if v := strings.TrimSpace(stamped); v != "" {
		return strings.TrimPrefix(v, "v")
	}
	if bi, ok := read(); ok {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			return strings.TrimPrefix(v, "v")
		}
	}
	return DefaultVersion
}

// Revision returns the version-control revision the binary was built from,
// or "".
func Revision() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			return s.Value
		}
	}
	return ""
}
