package mqsc

import (
	"testing"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/lockfree"
)

// TestCFAttrsOfMQZeroes: MQ's MAXDEPTH(0) and MAXMSGL(0) become the CF's
// named limits, not zero (which would take the CF's defaults).
func TestCFAttrsOfMQZeroes(t *testing.T) {
	q := defs.DefaultQueue("Q")
	q.MaxDepth, q.MaxMsgL = 0, 0
	if a := CFAttrs(q); a.MaxDepth != lockfree.MaxDepthNone || a.MaxMsgLen != lockfree.MaxMsgLenEmpty {
		t.Fatalf("CFAttrs of MAXDEPTH(0) MAXMSGL(0): %+v", a)
	}
	q = defs.DefaultQueue("Q")
	if a := CFAttrs(q); a.MaxDepth != 5000 || a.MaxMsgLen != 4<<20 {
		t.Fatalf("CFAttrs of the defaults: %+v", a)
	}
}
