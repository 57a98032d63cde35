package smds

import (
	"testing"

	"github.com/qmgr/qmgr/internal/layouttable"
)

// TestLayoutTables: the byte layouts documented as tables above their
// offset constants in layout.go match the constants and record sizes.
func TestLayoutTables(t *testing.T) {
	layouttable.Verify(t,
		layouttable.Layout{File: "layout.go", Title: "Data set file header", Prefix: "dsh", SizeName: "dsHeaderSize", Except: []string{"dshUsed"}},
		layouttable.Layout{File: "layout.go", Title: "Space map header", Prefix: "mh", SizeName: "mapHeaderSize"},
		layouttable.Layout{File: "layout.go", Title: "Owner slot fields", Prefix: "ow", SizeName: "ownerSize"},
		layouttable.Layout{File: "layout.go", Title: "Run header", Prefix: "rh", SizeName: "runHdrSize"},
		layouttable.Layout{File: "layout.go", Title: "Encoded reference", Prefix: "rf", SizeName: "RefSize"},
	)
}
