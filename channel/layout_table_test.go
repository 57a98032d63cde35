package channel

import (
	"testing"

	"github.com/qmgr/qmgr/internal/layouttable"
)

// TestLayoutTables: the byte layouts documented as tables above their
// offset constants match the constants and the record sizes.
func TestLayoutTables(t *testing.T) {
	layouttable.Verify(t,
		layouttable.Layout{File: "status.go", Title: "Status record layout", Prefix: "rec", SizeName: "recSize"},
	)
}
