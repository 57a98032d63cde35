package buildinfo

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestShortAndString(t *testing.T) {
	rev := "46816a0c1b2d3e4f5a6b7c8d9e0f112233445566"
	for _, c := range []struct {
		bi    debug.BuildInfo
		short string
		text  string
	}{
		{debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.0"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.time", Value: "2026-12-03T11:00:00Z"}, {Key: "vcs.modified", Value: "false"}}},
			"v1.2.0-46816a0c1b2d",
			"qmgr v1.2.0\ngo: go1.26.8\nrevision: " + rev + "\ncommit time: 2026-12-03T11:00:00Z\n"},
		{debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261203110000-46816a0c1b2d+dirty"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "true"}}},
			"v0.0.0-20261203110000-46816a0c1b2d+dirty",
			"qmgr v0.0.0-20261203110000-46816a0c1b2d+dirty\ngo: go1.26.8\nrevision: " + rev + " (modified)\n"},
		{debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}},
			"devel",
			"qmgr (devel)\ngo: go1.26.8\nrevision: unknown (built without VCS information)\n"},
		{debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "true"}}},
			"devel-46816a0c1b2d+dirty", ""},
	} {
		i := FromBuildInfo(&c.bi)
		if got := i.Short(); got != c.short {
			t.Errorf("%+v: Short() = %q, want %q", c.bi.Main, got, c.short)
		}
		if got := i.String(); c.text != "" && got != c.text {
			t.Errorf("%+v: String() = %q, want %q", c.bi.Main, got, c.text)
		}
	}
}

func TestReadNamesGo(t *testing.T) {
	if i := Read(); !strings.HasPrefix(i.Go, "go") || i.Version == "" {
		t.Errorf("Read() = %+v", i)
	}
}
