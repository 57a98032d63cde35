package rlog

import (
	"testing"

	"github.com/qmgr/qmgr/internal/layouttable"
)

// TestLayoutTables: the segment header and record header tables in
// format.go match their offset constants and sizes.
func TestLayoutTables(t *testing.T) {
	layouttable.Verify(t,
		layouttable.Layout{File: "format.go", Title: "Segment header (segHeaderSize", Prefix: "sh", SizeName: "segHeaderSize"},
		layouttable.Layout{File: "format.go", Title: "Record header (recHeaderSize", Prefix: "rh", SizeName: "recHeaderSize"},
	)
}
