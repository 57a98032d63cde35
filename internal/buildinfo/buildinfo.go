// Package buildinfo says which qmgr this is: its version, the Go version
// that built it and the VCS revision it was built from, read from the
// binary's build information (runtime/debug.ReadBuildInfo). qmgr version
// prints it, a member logs it when it starts and stores its Short form in
// its peer record (DISPLAY GROUP VERSION), so a group whose members run
// different binaries shows it.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Info is what the binary knows of its build.
type Info struct {
	Version  string // the main module's version: a tag, a pseudo-version, or "(devel)"
	Go       string // the Go version that built it
	Revision string // the VCS revision ("" when built without VCS information)
	Time     string // the revision's commit time, RFC 3339 ("" when unknown)
	Modified bool   // the working tree had changes the revision does not hold
}

// Read reads the running binary's build information.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Info{Version: "(unknown)", Go: runtime.Version()}
	}
	return FromBuildInfo(bi)
}

// FromBuildInfo extracts Info from build information.
func FromBuildInfo(bi *debug.BuildInfo) Info {
	i := Info{Version: bi.Main.Version, Go: bi.GoVersion}
	if i.Version == "" {
		i.Version = "(devel)"
	}
	if i.Go == "" {
		i.Go = runtime.Version()
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			i.Revision = s.Value
		case "vcs.time":
			i.Time = s.Value
		case "vcs.modified":
			i.Modified = s.Value == "true"
		}
	}
	return i
}

// Short is one word naming the build, for records and logs: the version
// ("devel" for "(devel)": no parenthesis, which would end an MQSC value),
// then the first 12 digits of the revision unless the version holds them
// (a pseudo-version does), then "+dirty" when the tree was modified unless
// the version says so already.
func (i Info) Short() string {
	s := strings.Trim(i.Version, "()")
	if rev := i.Revision; rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if !strings.Contains(s, rev) {
			s += "-" + rev
		}
	}
	if i.Modified && !strings.HasSuffix(s, "+dirty") {
		s += "+dirty"
	}
	return s
}

// String is the text of qmgr version.
func (i Info) String() string {
	rev := i.Revision
	if rev == "" {
		rev = "unknown (built without VCS information)"
	} else if i.Modified {
		rev += " (modified)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "qmgr %s\n", i.Version)
	fmt.Fprintf(&b, "go: %s\n", i.Go)
	fmt.Fprintf(&b, "revision: %s\n", rev)
	if i.Time != "" {
		fmt.Fprintf(&b, "commit time: %s\n", i.Time)
	}
	return b.String()
}
