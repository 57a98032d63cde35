package role

import (
	"testing"

	"github.com/qmgr/qmgr/internal/layouttable"
)

// TestLayoutTables: the byte layouts documented as tables above their
// offset constants in layout.go match the constants and record sizes.
func TestLayoutTables(t *testing.T) {
	layouttable.Verify(t,
		layouttable.Layout{File: "layout.go", Title: "Role record", Prefix: "rl", SizeName: "RecordSize"},
		layouttable.Layout{File: "layout.go", Title: "Position entry", Prefix: "pe", SizeName: "posSize"},
		layouttable.Layout{File: "layout.go", Title: "Progress record", Prefix: "pg", SizeName: "RecordSize"},
	)
}
