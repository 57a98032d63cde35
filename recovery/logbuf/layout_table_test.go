package logbuf

import (
	"testing"

	"github.com/qmgr/qmgr/internal/layouttable"
)

// TestLayoutTables: the buffer header, ring header and record header
// tables in logbuf.go match their offset constants and sizes.
func TestLayoutTables(t *testing.T) {
	layouttable.Verify(t,
		layouttable.Layout{File: "logbuf.go", Title: "Buffer header (the start", Prefix: "h", SizeName: "ringHdrs"},
		layouttable.Layout{File: "logbuf.go", Title: "Ring header (ringHdrSize", Prefix: "r", SizeName: "ringHdrSize"},
		layouttable.Layout{File: "logbuf.go", Title: "Record header (recHdr", Prefix: "rec", SizeName: "recHdr"},
	)
	if hReserve+maxReserve > ringHdrs || hReason+maxReason > hReserve {
		t.Errorf("header text fields overlap: reason [%d,%d), reserve [%d,%d), ring headers at %d",
			hReason, hReason+maxReason, hReserve, hReserve+maxReserve, ringHdrs)
	}
}
