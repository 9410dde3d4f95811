package buildinfo

import (
	"runtime/debug"
	"testing"
)

func TestPick(t *testing.T) {
	info := func(v string) func() (*debug.BuildInfo, bool) {
		return func() (*debug.BuildInfo, bool) { return &debug.BuildInfo{Main: debug.Module{Version: v}}, true }
	}
	none := func() (*debug.BuildInfo, bool) { return nil, false }
	tests := []struct {
		name, stamped string
		read          func() (*debug.BuildInfo, bool)
		want          string
	}{
		{"stamped wins", "v1.2.3", info("v0.0.0-x"), "1.2.3"},
		{"module version", "", info("v0.0.0-20261201161500-55daabf3a66b+dirty"), "0.0.0-20261201161500-55daabf3a66b+dirty"},
		{"workspace build", "", info("(devel)"), DefaultVersion},
		{"no build info", "", none, DefaultVersion},
	}
	for _, tt := range tests {
		if got := pick(tt.stamped, tt.read); got != tt.want {
			t.Errorf("%s: pick = %q, want %q", tt.name, got, tt.want)
		}
	}
}
