package testtool

import (
	"os"
	"testing"
)

// EnvRequire, when set to anything but empty or "0", makes a missing tool
// fail the test that needs it (CI sets it, having installed the tools).
const EnvRequire = "QMGR_REQUIRE_TOOLS"

// Required reports whether missing tools fail tests (EnvRequire).
func Required() bool {
	v := os.Getenv(EnvRequire)
	return v != "" && v != "0"
}

// Need checks that a tool is usable with probe, which says why not; when it
// is not, the test skips (or fails, when Required), naming the tool and how
// to install it.
func Need(t testing.TB, tool, install string, probe func() error) {
	t.Helper()
	err := probe()
	if err == nil {
		return
	}
	if Required() {
		t.Fatalf("%s is needed and %s is set, but it is not usable: %v (install: %s)", tool, EnvRequire, err, install)
		return
	}
	t.Skipf("%s is not usable (%v): install it to run this test (%s)", tool, err, install)
}
