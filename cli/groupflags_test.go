package cli

import (
	"strings"
	"testing"
)

// TestGroupFlagsReachMembers: every field of the test group's
// configuration reaches its member processes. The element size of the
// application structures once did not (the harness dropped
// --app-element-size): the member created APPL1 with 256-byte elements.
func TestGroupFlagsReachMembers(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	g := newTestGroupSized(t, 48<<20)
	g.cfg.AppElementSize = 1024
	g.start("QM1")
	out := g.mqsc("DISPLAY CFSTRUCT(APPL1)")
	for _, want := range []string{"SIZE(48)", "ELEMSIZE(1024)"} {
		if !strings.Contains(out, want) {
			t.Errorf("APPL1 lacks %s:\n%s", want, out)
		}
	}
}
